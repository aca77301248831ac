import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { makeDevice } from '../helpers/device.ts';
import { exitOf, spawnServer, startServer, stopProcess, useProcessWorld, waitFor } from '../helpers/process.ts';
import {
  GRANTED,
  NO_SEATS,
  licenseRow,
  PRODUCT,
  assertFullLicense,
  openBrowser,
  range,
  seedVendor,
  tally,
  told,
  upload,
} from '../helpers/concurrency.ts';

/**
 * server.ts with WORKERS > 1 (node:cluster, docs/decisions.md "Workers"), as real processes: the
 * primary prints the start-up lines once, each worker answers /readyz for itself, a killed worker is
 * replaced, SIGTERM drains them all, and the seat rules hold across workers sharing one database.
 */

/** The worker pids: the primary's children (Linux /proc). */
function childrenOf(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const alive = (pid: number) => fs.existsSync(`/proc/${pid}`);

/** GET /readyz on a connection of its own (no keep-alive: the cluster hands each new connection to the next worker). */
function readyz(base: string): Promise<{ status: number; body: { status: string; worker?: number } }> {
  return new Promise((resolve, reject) => {
    http
      .get(`${base}/readyz`, { agent: false, headers: { connection: 'close' } }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      })
      .on('error', reject);
  });
}

async function workersAnswering(base: string, n = 12): Promise<Set<number>> {
  const ids = new Set<number>();
  for (let i = 0; i < n; i++) {
    const r = await readyz(base);
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'ready');
    ids.add(r.body.worker!);
  }
  return ids;
}

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('server.ts with WORKERS=2 (node:cluster) as real processes', function () {
  this.timeout(120_000);
  const world = useProcessWorld('workers', { migrate: false });

  it('prints the start-up lines and the setup link once; two workers answer /readyz; a killed worker is replaced; SIGTERM drains all and exits 0', async () => {
    const { child, base } = await startServer(world, { WORKERS: '2' });
    let workers: number[] = [];
    try {
      await waitFor(child, /one-time link[^\n]*\n\s+(http:\/\/\S+)/);
      workers = childrenOf(child.pid!);
      assert.equal(workers.length, 2, `two workers: ${workers}`);

      assert.deepEqual([...(await workersAnswering(base))].sort(), [1, 2]);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(child.output().match(/listening on/g)?.length, 1, child.output());
      assert.equal(child.output().match(/one-time link/g)?.length, 1, child.output());
      assert.equal(fs.readdirSync(path.join(world.dataDir, 'keys')).length, 1, 'one signing key, made once');

      // SIGKILL one worker: the other goes on answering, and the primary starts a replacement (worker 3).
      const [victim, survivor] = workers as [number, number];
      process.kill(victim, 'SIGKILL');
      await until('the killed worker to be gone', () => !alive(victim));
      for (let i = 0; i < 10; i++) assert.equal((await readyz(base)).status, 200);
      const replaced = await until('a replacement worker', () => {
        const now = childrenOf(child.pid!);
        return now.length === 2 && !now.includes(victim) && now.includes(survivor) && now;
      });
      let answering = new Set<number>();
      const started = Date.now();
      while (!answering.has(3) && Date.now() - started < 20_000) {
        answering = new Set([...answering, ...(await workersAnswering(base, 4))]);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(answering.has(3), `worker 3 answers (saw ${[...answering]})`);
      assert.match(child.output(), /"msg":"worker died; starting another"/);
      workers = replaced;
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exitOf(child), 0, child.output());
    for (const pid of workers) assert.ok(!alive(pid), `worker ${pid} stopped with the primary`);
    assert.equal(child.output().match(/listening on/g)?.length, 1, 'no new start-up lines for the replacement');
  });

  it('stops with exit 1 when the workers cannot start (port taken)', async () => {
    const blocker = http.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const child = spawnServer(world, { PORT: String(port), WORKERS: '2' });
      assert.equal(await exitOf(child), 1, child.output());
      assert.match(child.output(), /a worker failed to start; stopping/);
      assert.doesNotMatch(child.output(), /listening on/);
    } finally {
      blocker.close();
    }
  });
});

describe('SQLite (or MariaDB) with WORKERS=2: seat limits across workers, draining', function () {
  this.timeout(120_000);
  let addLicense: Awaited<ReturnType<typeof seedVendor>>;
  // The signing key and an admin exist before the servers start: no setup link.
  const world = useProcessWorld('workers-conc', {
    installed: 'key+admin',
    setUp: async ({ database }) => {
      addLicense = await seedVendor(database.db, new Date());
    },
  });
  const start = (logLevel = 'warn') =>
    startServer(world, {
      TRUST_PROXY: 'true',
      LOG_LEVEL: logLevel,
      NODE_ENV: 'test',
      OFFLINE_UPLOAD_SLOTS: '100',
      WORKERS: '2',
    });

  it('50 simultaneous activations through two workers leave exactly 5 devices', async () => {
    const { child, base } = await start();
    const SEATS = 5;
    const DEVICES = 50;
    try {
      assert.equal((await workersAnswering(base, 6)).size, 2, 'both workers answer');
      const { id, licenseKey } = await addLicense({ maxActivations: SEATS, maxTransfers: 0 });
      const browsers = await Promise.all(range(DEVICES).map(() => openBrowser(base)));
      const devices = range(DEVICES).map((i) => makeDevice(`HW-W${i}`));
      const files = devices.map((d) => d.activationRequest({ product: PRODUCT, licenseKey }).text);
      const responses = await Promise.all(files.map((text, i) => upload(base, browsers[i]!, text, `10.120.${i}.1`)));
      assert.deepEqual(
        tally(responses.map(told)),
        { [GRANTED]: SEATS, [NO_SEATS]: DEVICES - SEATS },
        child.output().slice(-3000),
      );
      const granted = responses.flatMap((r, i) => (r.status === 200 ? [devices[i]!.hardwareId] : []));
      await assertFullLicense(world.database.db, id, SEATS, DEVICES, granted, 'two workers');
    } finally {
      await stopProcess(child, 'SIGTERM');
    }
    assert.equal(child.exitCode, 0, child.output());
    assert.doesNotMatch(child.output(), /"level":(50|60)/, 'no errors logged');
  });

  it('SIGTERM to the primary lets an upload in flight finish (its worker drains), then exits 0', async () => {
    const { child, base } = await start('info');
    try {
      const { id, licenseKey } = await addLicense({ maxActivations: 1 });
      const browser = await openBrowser(base);
      const text = makeDevice('HW-DRAIN').activationRequest({ product: PRODUCT, licenseKey }).text;
      const boundary = 'portico-drain-boundary';
      const body = Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="activation-request.req"\r\n` +
          `Content-Type: application/octet-stream\r\n\r\n${text}\r\n--${boundary}--\r\n`,
      );
      const url = new URL(browser.action, base);
      let answered!: (r: { status: number; text: string }) => void;
      const answer = new Promise<{ status: number; text: string }>((r) => (answered = r));
      const req = http.request(
        url,
        {
          method: 'POST',
          agent: false,
          headers: {
            cookie: browser.cookie,
            'x-forwarded-for': '10.121.0.1',
            'content-type': `multipart/form-data; boundary=${boundary}`,
            'content-length': body.length,
          },
        },
        (res) => {
          let t = '';
          res.on('data', (d) => (t += d));
          res.on('end', () => answered({ status: res.statusCode!, text: t }));
        },
      );
      req.on('error', (err) => answered({ status: 0, text: String(err) }));
      // Half the body, then SIGTERM: both workers start draining while this upload is in flight.
      req.write(body.subarray(0, body.length >> 1));
      await new Promise((r) => setTimeout(r, 300));
      child.kill('SIGTERM');
      await until(
        'both workers draining',
        () => (child.output().match(/"msg":"shutting down: no new connections/g)?.length ?? 0) >= 2,
      );
      assert.equal(child.exitCode, null, 'still running: one request is in flight');
      req.end(body.subarray(body.length >> 1));
      const res = await answer;
      assert.equal(res.status, 200, res.text.slice(0, 500));
      assert.match(res.text, /License activated/);
      assert.deepEqual(await licenseRow(world.database.db, id), { timesActivated: 1, transferCount: 0 });
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exitOf(child), 0, child.output());
  });
});
