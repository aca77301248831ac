import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import { buildTestApp, type TestApp } from '../helpers/app.ts';
import { listen } from '../helpers/browser.ts';
import { projectRoot } from '../helpers/process.ts';
import * as catalog from '../../app/models/catalog.ts';

/**
 * The SDK as its users get it: `npm pack` of sdk/ (its prepack compiles sdk/src to dist/ with .d.ts),
 * the tarball installed into an empty folder outside the repository, and the installed
 * `portico-device` CLI activating online against a live server. PORTICO_SDK_TARBALL=<file.tgz> tests
 * a tarball packed before instead of packing one.
 *
 * The pack runs on a copy of sdk/ in a temporary folder (its node_modules a link to the repository's,
 * for tsc and @types/node), so a test run never writes into the working tree.
 */

const SDK = path.join(projectRoot, 'sdk');
const NAME = '@portico/device-sdk';

/** The environment of a user's shell: no npm lifecycle variables, no tsx loader from the test runner. */
function plainEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!/^npm_/i.test(k) && k !== 'NODE_OPTIONS' && k !== 'PORTICO_DEVICE_DIR') env[k] = v;
  return env;
}

function run(file: string, args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env: plainEnv(), encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err
        ? typeof (err as { code?: unknown }).code === 'number'
          ? Number((err as { code: number }).code)
          : null
        : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

function packSdk(work: string): string {
  if (process.env.PORTICO_SDK_TARBALL) return path.resolve(process.env.PORTICO_SDK_TARBALL);
  const copy = path.join(work, 'sdk');
  fs.mkdirSync(copy);
  for (const f of ['package.json', 'README.md', 'tsconfig.build.json'])
    fs.copyFileSync(path.join(SDK, f), path.join(copy, f));
  fs.cpSync(path.join(SDK, 'src'), path.join(copy, 'src'), { recursive: true });
  fs.symlinkSync(path.join(projectRoot, 'node_modules'), path.join(copy, 'node_modules'), 'dir');
  const name = execFileSync('npm', ['pack', '--pack-destination', work, '--loglevel', 'error'], {
    cwd: copy,
    env: plainEnv(),
    encoding: 'utf8',
  })
    .trim()
    .split('\n')
    .pop()!;
  return path.join(work, name);
}

describe('SDK package: npm pack of sdk/ installs into an empty folder and its CLI activates against a live server', function () {
  this.timeout(180_000);
  let work: string;
  let tarball: string;
  let scratch: string;
  let bin: string;
  let t: TestApp;
  let server: Server;
  let base: string;

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-sdk-package-'));
    tarball = packSdk(work);
    // Outside the repository: nothing can be found in its node_modules.
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-sdk-install-'));
    fs.writeFileSync(
      path.join(scratch, 'package.json'),
      JSON.stringify({ name: 'scratch', private: true, type: 'module' }),
    );
    // --offline: the package has no dependencies, so nothing may need the registry.
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', '--loglevel', 'error', tarball], {
      cwd: scratch,
      env: plainEnv(),
      encoding: 'utf8',
    });
    bin = path.join(scratch, 'node_modules', '.bin', 'portico-device');
    t = await buildTestApp();
    ({ url: base, server } = await listen(t.app));
  });
  after(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await t?.close();
    for (const dir of [work, scratch]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('sdk/src imports only node: built-ins and its own files (the SDK does not depend on the server)', () => {
    const src = path.join(SDK, 'src');
    for (const file of fs.readdirSync(src).filter((f) => f.endsWith('.ts'))) {
      const text = fs.readFileSync(path.join(src, file), 'utf8');
      for (const [, spec] of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)['"]([^'"]+)['"]/g)) {
        assert.ok(spec!.startsWith('node:') || /^\.\/[\w.-]+\.ts$/.test(spec!), `sdk/src/${file} imports "${spec}"`);
      }
    }
  });

  it('the tarball holds dist/ (JavaScript and .d.ts), README and package.json, and declares no dependencies', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).trim().split('\n').sort();
    for (const f of [
      'package/package.json',
      'package/README.md',
      'package/dist/index.js',
      'package/dist/index.d.ts',
      'package/dist/cli.js',
      'package/dist/online.d.ts',
    ])
      assert.ok(files.includes(f), `${f} in ${files.join(', ')}`);
    assert.deepEqual(
      files.filter((f) => !/^package\/(package\.json|README\.md|dist\/[\w-]+\.(js|d\.ts))$/.test(f)),
      [],
      'nothing else (no sources, no tests)',
    );
    const installed = path.join(scratch, 'node_modules', ...NAME.split('/'));
    const pkg = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8'));
    assert.equal(pkg.name, NAME);
    assert.deepEqual(pkg.bin, { 'portico-device': 'dist/cli.js' });
    for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies', 'bundleDependencies'])
      assert.equal(pkg[field], undefined, field);
    assert.deepEqual(
      fs.readdirSync(path.join(scratch, 'node_modules')).filter((d) => !d.startsWith('.')),
      ['@portico'],
      'the install added nothing else',
    );
    assert.match(fs.readFileSync(path.join(installed, 'dist', 'cli.js'), 'utf8'), /^#!\/usr\/bin\/env node\n/);
  });

  it('npx portico-device help runs on plain node; the package imports by name, with its types', async () => {
    const help = await run('npx', ['--no-install', 'portico-device', 'help'], scratch);
    assert.equal(help.code, 0, help.out);
    assert.match(help.out, /Usage: portico-device/);

    const imported = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import * as sdk from '${NAME}'; console.log(typeof sdk.verifyLicense, typeof sdk.PorticoClient, typeof sdk.createActivationRequest)`,
      ],
      scratch,
    );
    assert.equal(imported.code, 0, imported.out);
    assert.equal(imported.out.trim(), 'function function function');

    // A TypeScript user's view: the declarations resolve through "exports" and are real types (not any).
    fs.writeFileSync(
      path.join(scratch, 'consumer.ts'),
      [
        `import { PorticoClient, verifyLicense, type LicenseInfo } from '${NAME}';`,
        `export const client = new PorticoClient({ baseUrl: 'https://licenses.example.com', trustedKeys: new Map() });`,
        `export const product = (info: LicenseInfo): string => info.product;`,
        `// @ts-expect-error: a number is not a license file`,
        `export const wrong = () => verifyLicense(42);`,
        `void verifyLicense;`,
      ].join('\n'),
    );
    const tsc = path.join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    const typeRoots = path.join(projectRoot, 'node_modules', '@types');
    const checked = await run(
      process.execPath,
      [
        tsc,
        '--noEmit',
        '--strict',
        '--module',
        'nodenext',
        '--target',
        'es2023',
        '--typeRoots',
        typeRoots,
        '--types',
        'node',
        'consumer.ts',
      ],
      scratch,
    );
    assert.equal(checked.code, 0, checked.out);
  });

  it('the installed CLI: init → activate --online → status → deactivate --online → status 3', async () => {
    const now = t.clock.now();
    const product = await catalog.insertProduct(
      t.db,
      { name: 'Acme CAD', code: 'acme-cad', authorizationMethod: 'key' },
      now,
    );
    const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Globex' }, now);
    const order = await catalog.insertOrder(t.db, { orderRef: 'PKG-1', customerId: customer }, now);
    const key = Array(7).fill('PKG0').join('-');
    const licenseId = await catalog.insertLicense(
      t.db,
      {
        orderId: order,
        productId: product,
        policyId: null,
        licenseKey: key,
        entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, maxActivations: 1 },
        startDate: now,
      },
      now,
    );
    const keysFile = path.join(scratch, 'portico-keys.json');
    fs.writeFileSync(keysFile, await (await fetch(`${base}/.well-known/portico-keys.json`)).text());
    const dir = path.join(scratch, 'device');
    const ok = async (args: string[]) => {
      const r = await run(bin, ['--dir', dir, ...args], scratch);
      assert.equal(r.code, 0, `portico-device ${args.join(' ')}: ${r.out}`);
      return r.out;
    };

    await ok(['init', '--product', 'acme-cad', '--key', key, '--keys', keysFile, '--hardware-id', 'PKG-MACHINE-1']);
    assert.match(await ok(['activate', '--online', '--server', base]), /License activated online/);
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 1);
    assert.match(await ok(['status']), /PKG-MACHINE-1/);
    assert.match(await ok(['deactivate', '--online']), /Deactivation confirmed/);
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 0);
    assert.equal((await run(bin, ['--dir', dir, 'status'], scratch)).code, 3, 'no license after deactivation');
  });
});
