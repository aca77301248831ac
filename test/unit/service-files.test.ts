import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../config/index.ts';
import { LOGO_MAX_BYTES } from '../../app/forms/brandings.ts';
import { MAX_REQUEST_BYTES, MAX_ZIP_BYTES } from '../../app/services/offline.ts';
import { projectRoot } from '../helpers/process.ts';

/**
 * The service files of docs/ (docs/deployment.md, "systemd and nginx"): the settings they must carry,
 * checked against the app's own limits and configuration; `systemd-analyze verify` and `nginx -t`
 * when those binaries exist (skipped without them, unless REQUIRE_SERVICE_CHECKS=1, which .ci/run sets).
 */

const read = (name: string) => fs.readFileSync(path.join(projectRoot, 'docs', name), 'utf8');
const required = process.env.REQUIRE_SERVICE_CHECKS === '1';

/** A systemd unit as section → key → values (a key may repeat; comments and blank lines dropped). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(\w+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    assert.ok(kv && current, `a key=value line in a section: ${line}`);
    current.set(kv[1]!, [...(current.get(kv[1]!) ?? []), kv[2]!]);
  }
  return sections;
}

/** KEY=VALUE lines of an environment file. */
function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const kv = /^([A-Z_]+)=(.*)$/.exec(line);
    assert.ok(kv, `a KEY=value line: ${line}`);
    env[kv[1]!] = kv[2]!;
  }
  return env;
}

/** nginx's size syntax (9m, 512k, 1g, bytes). */
function nginxBytes(size: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(size);
  assert.ok(m, `an nginx size: ${size}`);
  return (
    Number(m[1]) * ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as Record<string, number>)[m[2]!.toLowerCase()]!
  );
}

/** The body of the first block `name {` … `}` (blocks nested one level deep at most inside it). */
function block(text: string, opening: RegExp): string {
  const m = opening.exec(text);
  assert.ok(m, `a block ${opening}`);
  let depth = 0;
  for (let i = m.index + m[0].length - 1; i < text.length; i++) {
    if (text[i] === '{') depth++;
    if (text[i] === '}' && --depth === 0) return text.slice(m.index + m[0].length, i);
  }
  throw new Error(`unclosed block ${opening}`);
}

/** Directives of a block without its nested blocks and comments (a `;` inside quotes does not end one). */
const directives = (body: string) =>
  (
    body
      .replace(/#[^\n]*/g, '')
      .replace(/\{[^{}]*\}/g, ';')
      .match(/(?:"[^"]*"|[^;"])+/g) ?? []
  )
    .map((d) => d.trim().replace(/\s+/g, ' '))
    .filter(Boolean);

const firstExisting = (paths: string[]) => paths.find((p) => fs.existsSync(p)) ?? null;

describe('service files in docs/', () => {
  const unitText = read('portico.service');
  const unit = parseUnit(unitText);
  const service = unit.get('Service')!;
  const one = (key: string) => {
    const v = service.get(key);
    assert.ok(v, `[Service] ${key}= is set`);
    return v.at(-1)!;
  };
  const envFile = parseEnv(read('portico.env'));
  const nginx = read('nginx-portico.conf');
  const httpsServer = block(nginx, /server\s*\{(?=[^}]*listen 443)/);

  describe('docs/portico.service', () => {
    it('runs the compiled server as a dedicated user, restarts on failure, reads an environment file', () => {
      assert.ok(unit.has('Unit') && unit.has('Service') && unit.has('Install'));
      assert.match(one('User'), /^[a-z][a-z0-9_-]*$/);
      assert.notEqual(one('User'), 'root');
      assert.equal(one('Group'), one('User'));
      assert.match(one('ExecStart'), /^\/\S*node( --max-old-space-size=\d+)? dist\/server\.js$/);
      assert.equal(one('Restart'), 'on-failure');
      assert.match(one('EnvironmentFile'), /^\/etc\/portico\/portico\.env$/);
      assert.match(one('Environment'), /\bNODE_ENV=production\b/);
      assert.equal(unit.get('Install')!.get('WantedBy')?.[0], 'multi-user.target');
      // SIGTERM to the primary alone, which drains its workers (10 s grace, server.ts) before systemd's stop timeout.
      assert.equal(one('KillMode'), 'mixed');
      assert.ok(Number.parseInt(one('TimeoutStopSec'), 10) >= 20);
    });

    it('carries the hardening options: ProtectSystem=strict with only the data directory writable, PrivateTmp, NoNewPrivileges, no capabilities', () => {
      assert.equal(one('ProtectSystem'), 'strict');
      assert.equal(one('ProtectHome'), 'yes');
      assert.equal(one('PrivateTmp'), 'yes');
      assert.equal(one('NoNewPrivileges'), 'yes');
      assert.equal(one('CapabilityBoundingSet'), '', 'an empty bounding set: no capability at all');
      assert.equal(one('AmbientCapabilities'), '');
      for (const key of [
        'PrivateDevices',
        'ProtectKernelTunables',
        'ProtectKernelModules',
        'ProtectControlGroups',
        'RestrictSUIDSGID',
        'LockPersonality',
      ])
        assert.equal(one(key), 'yes', key);
      assert.equal(one('SystemCallArchitectures'), 'native');
      assert.match(one('SystemCallFilter'), /@system-service/);
      assert.match(one('RestrictAddressFamilies'), /AF_INET\b.*AF_INET6|AF_INET6.*AF_INET\b/);
      assert.ok(
        !service.has('MemoryDenyWriteExecute'),
        "V8's JIT needs W+X memory: MemoryDenyWriteExecute would stop node",
      );
      // The data directory is DATA_DIR, the one writable path, and the state directory systemd makes.
      const dataDir = /\bDATA_DIR=(\S+)/.exec(one('Environment'))?.[1];
      assert.equal(dataDir, '/var/lib/portico');
      assert.deepEqual(one('ReadWritePaths').split(/\s+/), [dataDir]);
      assert.equal(`/var/lib/${one('StateDirectory')}`, dataDir);
      assert.equal(one('StateDirectoryMode'), '0700');
      assert.equal(one('UMask'), '0077');
    });

    it('passes systemd-analyze verify', function () {
      const analyze = firstExisting(['/usr/bin/systemd-analyze', '/bin/systemd-analyze']);
      if (!analyze) {
        if (required) assert.fail('systemd-analyze not found; REQUIRE_SERVICE_CHECKS=1 forbids skipping');
        this.skip();
      }
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-unit-'));
      try {
        // This machine's node stands in for /usr/bin/node (verify checks that ExecStart's binary exists).
        const file = path.join(dir, 'portico.service');
        fs.writeFileSync(file, unitText.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath}`));
        const r = spawnSync(analyze, ['verify', file], { encoding: 'utf8', cwd: dir });
        // verify exits 0 even for an unknown key or a bad value: it only warns, naming the file.
        const warnings = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('portico.service'));
        assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
        assert.deepEqual(warnings, []);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('docs/portico.env', () => {
    it('is a valid configuration: loopback only, behind the proxy (TRUST_PROXY=loopback), with /metrics protected', () => {
      const config = loadConfig(envFile);
      assert.equal(config.host, '127.0.0.1');
      assert.equal(config.trustProxy, 'loopback');
      assert.equal(config.cookieSecure, true, 'an https BASE_URL: Secure cookies and HSTS');
      assert.ok(config.metrics?.token, 'METRICS_TOKEN set');
      assert.equal(config.databaseUrl.startsWith('mysql://'), true);
    });
  });

  describe('docs/nginx-portico.conf', () => {
    const top = directives(httpsServer);

    it('passes to the port Portico listens on, on loopback, matching TRUST_PROXY=loopback', () => {
      const upstream = directives(block(nginx, /upstream portico\s*\{/));
      assert.deepEqual(
        upstream.filter((d) => d.startsWith('server ')),
        [`server 127.0.0.1:${envFile.PORT}`],
      );
      const locations = [...httpsServer.matchAll(/location\s+(=\s*)?(\S+)\s*\{([^}]*)\}/g)];
      assert.deepEqual(locations.map((l) => l[2]).sort(), ['/', '/metrics']);
      for (const l of locations) assert.match(l[3]!, /proxy_pass http:\/\/portico;/);
    });

    it('sets the headers Portico trusts from a loopback proxy: Host, X-Forwarded-For (the address nginx saw), X-Forwarded-Proto', () => {
      assert.ok(top.includes('proxy_set_header Host $host'));
      assert.ok(
        top.includes('proxy_set_header X-Forwarded-For $remote_addr'),
        'a client cannot prepend a forged address',
      );
      assert.ok(top.includes('proxy_set_header X-Forwarded-Proto $scheme'));
      assert.ok(top.includes('proxy_set_header X-Request-Id $request_id'));
    });

    it('takes TLS 1.2+ only, redirects http to https, sends one HSTS header of a year on every answer', () => {
      assert.ok(top.some((d) => /^listen 443 ssl\b/.test(d)));
      assert.ok(top.some((d) => d.startsWith('ssl_certificate ')));
      assert.ok(top.some((d) => d.startsWith('ssl_certificate_key ')));
      assert.deepEqual(
        top
          .find((d) => d.startsWith('ssl_protocols '))
          ?.split(' ')
          .slice(1),
        ['TLSv1.2', 'TLSv1.3'],
      );
      const hsts = top.find((d) => d.startsWith('add_header Strict-Transport-Security '));
      assert.ok(hsts, 'HSTS');
      assert.match(hsts, /max-age=(\d+)/);
      assert.ok(Number(/max-age=(\d+)/.exec(hsts)![1]) >= 31_536_000);
      assert.match(hsts, / always$/, 'also on error answers');
      assert.ok(top.includes('proxy_hide_header Strict-Transport-Security'), "Portico's own header is not sent twice");
      const plain = directives(block(nginx, /server\s*\{(?=[^}]*listen 80;)/));
      assert.ok(plain.includes('return 301 https://$host$request_uri'));
    });

    it('limits request bodies to what Portico takes: the largest upload passes, nothing far larger is sent on', () => {
      const limit = nginxBytes(top.find((d) => d.startsWith('client_max_body_size '))!.split(' ')[1]!);
      // streamToDisk (app/middleware/uploads.ts) takes the file plus its form fields (4 × a field's limit).
      const largestBody = MAX_ZIP_BYTES + 4 * MAX_REQUEST_BYTES;
      assert.ok(limit >= largestBody, `${limit} ≥ ${largestBody}`);
      assert.ok(limit >= LOGO_MAX_BYTES && limit >= 1024 * 1024, 'a logo and a dispatch CSV pass too');
      assert.ok(limit <= 2 * MAX_ZIP_BYTES, `${limit} is not far above the largest upload`);
    });

    it('serves /metrics to allowed addresses only, not in the access log', () => {
      const metrics = directives(block(httpsServer, /location\s*=\s*\/metrics\s*\{/));
      assert.ok(metrics.filter((d) => d.startsWith('allow ')).length >= 1);
      const deny = metrics.indexOf('deny all');
      assert.ok(deny > 0, 'deny all');
      assert.ok(
        metrics.slice(0, deny).every((d) => d.startsWith('allow ')),
        'the allows first, then deny all',
      );
      assert.ok(!metrics.slice(deny).some((d) => d.startsWith('allow ')));
      assert.ok(metrics.includes('access_log off'));
      assert.ok(!metrics.some((d) => d === 'allow all'));
    });

    it('passes nginx -t', function () {
      const bin = firstExisting(['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx']);
      const openssl = firstExisting(['/usr/bin/openssl', '/bin/openssl']);
      if (!bin || !openssl) {
        if (required) assert.fail('nginx or openssl not found; REQUIRE_SERVICE_CHECKS=1 forbids skipping');
        this.skip();
      }
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-nginx-'));
      try {
        const cert = path.join(dir, 'cert.pem');
        const key = path.join(dir, 'key.pem');
        const made = spawnSync(
          openssl,
          [
            'req',
            '-x509',
            '-newkey',
            'ec',
            '-pkeyopt',
            'ec_paramgen_curve:prime256v1',
            '-nodes',
            '-days',
            '1',
            '-subj',
            '/CN=portico.test',
            '-keyout',
            key,
            '-out',
            cert,
          ],
          { encoding: 'utf8' },
        );
        assert.equal(made.status, 0, made.stderr);
        // The site as shipped, with this test's certificate, inside a minimal nginx.conf of its own.
        const site = nginx
          .replace(/ssl_certificate\s+\S+;/, `ssl_certificate ${cert};`)
          .replace(/ssl_certificate_key\s+\S+;/, `ssl_certificate_key ${key};`);
        fs.writeFileSync(path.join(dir, 'site.conf'), site);
        const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
          .map((t) => `${t}_temp_path ${path.join(dir, t)};`)
          .join('\n  ');
        fs.writeFileSync(
          path.join(dir, 'nginx.conf'),
          `pid ${path.join(dir, 'nginx.pid')};\nerror_log stderr;\nevents {}\nhttp {\n  access_log off;\n  ${temp}\n  include ${path.join(dir, 'site.conf')};\n}\n`,
        );
        const r = spawnSync(bin, ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf')], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stderr, /test is successful/);
        assert.doesNotMatch(r.stderr, /\[(warn|emerg)\]/, r.stderr);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
