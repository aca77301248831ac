import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { usingMysql } from '../helpers/db.ts';
import { makeDevice } from '../helpers/device.ts';
import { startServer, stopProcess, useProcessWorld } from '../helpers/process.ts';
import {
  GRANTED,
  NO_SEATS,
  PRODUCT,
  activeDevices,
  assertFullLicense,
  licenseAudit,
  licenseRow,
  openBrowser,
  range,
  seedVendor,
  tally,
  told,
  upload,
} from '../helpers/concurrency.ts';

/**
 * Seat limits under concurrency across server.ts processes sharing one database (real processes, real
 * HTTP, the real database); the one-process scenarios are in test/requests/concurrency.test.ts.
 */

/** The SQLite driver itself (it ships no type declarations): a lock probe beside the processes. */
const SqliteDatabase = createRequire(import.meta.url)('better-sqlite3') as new (
  file: string,
  options: { timeout: number },
) => { exec(sql: string): void; close(): void };

describe('Seat limits under concurrency (real HTTP, real database)', function () {
  this.timeout(120_000);

  describe('server.ts processes sharing one database', () => {
    let addLicense: Awaited<ReturnType<typeof seedVendor>>;
    // The signing key exists before the processes start (they share it through DATA_DIR), and an admin
    // exists, so no process prints a setup link.
    const world = useProcessWorld('conc', {
      installed: 'key+admin',
      setUp: async ({ database }) => {
        addLicense = await seedVendor(database.db, new Date());
      },
    });

    const start = () =>
      startServer(world, {
        // Every simultaneous upload gets a slot: the seat rules are under test here, the slots in upload-limits.test.ts.
        TRUST_PROXY: 'true',
        NODE_ENV: 'test',
        OFFLINE_UPLOAD_SLOTS: '100',
        // Each process serves in itself (no cluster): the crash test kills the very process inside the
        // transaction. Workers sharing one database: test/e2e/workers.test.ts.
        WORKERS: '1',
      });

    it('two processes: 50 simultaneous activations split across both leave exactly 5 devices', async () => {
      // On SQLite too: its transactions begin IMMEDIATE (db/knexfile.ts), so the two processes queue for
      // the file's write lock (busy_timeout) instead of failing with "database is locked".
      const { database } = world;
      const SEATS = 5;
      const DEVICES = 50;
      const servers = await Promise.all([start(), start()]);
      try {
        const { id, licenseKey } = await addLicense({ maxActivations: SEATS, maxTransfers: 0 });
        // Each browser opens its session on one process and uploads to the other: sessions, CSRF tokens and rate limits live in the database.
        const browsers = await Promise.all(range(DEVICES).map((i) => openBrowser(servers[i % 2]!.base)));
        const devices = range(DEVICES).map((i) => makeDevice(`HW-P${i}`));
        const files = devices.map((d) => d.activationRequest({ product: PRODUCT, licenseKey }).text);
        const responses = await Promise.all(
          files.map((text, i) => upload(servers[(i + 1) % 2]!.base, browsers[i]!, text, `10.100.${i}.1`)),
        );
        assert.deepEqual(
          tally(responses.map(told)),
          { [GRANTED]: SEATS, [NO_SEATS]: DEVICES - SEATS },
          servers
            .map((s) => s.child.output())
            .join('\n')
            .slice(-3000),
        );
        const granted = responses.flatMap((r, i) => (r.status === 200 ? [devices[i]!.hardwareId] : []));
        await assertFullLicense(database.db, id, SEATS, DEVICES, granted, 'two processes');
      } finally {
        await Promise.all(servers.map((s) => stopProcess(s.child, 'SIGTERM')));
      }
      for (const s of servers) assert.equal(s.child.exitCode, 0, s.child.output());
      assert.doesNotMatch(servers.map((s) => s.child.output()).join('\n'), /"level":(50|60)/, 'no errors logged');
    });

    it('SQLite: a process killed in the middle of an activation leaves no half-written rows; after a restart the same request succeeds', async function () {
      if (usingMysql) this.skip();
      const { database } = world;
      const { id, licenseKey } = await addLicense({ maxActivations: 2 });
      const device = makeDevice('HW-CRASH');
      const req = device.activationRequest({ product: PRODUCT, licenseKey });
      const file = database.url.slice('sqlite:'.length);
      // A slow step inside the transaction, in the test database only: after the activation has taken
      // its seat and written its device and nonce rows, inserting this nonce runs a query that never ends.
      await database.db.raw('CREATE TABLE test_spin (x INTEGER)');
      await database.db.raw(
        'INSERT INTO test_spin (x) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) SELECT x FROM c',
      );
      await database.db.raw(
        `CREATE TRIGGER test_hang AFTER INSERT ON request_nonces WHEN NEW.nonce = '${req.nonce}' BEGIN SELECT count(*) FROM test_spin a, test_spin b, test_spin c, test_spin d; END`,
      );

      const first = await start();
      const browser = await openBrowser(first.base);
      const pending = upload(first.base, browser, req.text, '10.150.0.1').then(
        (r) => r.status,
        () => 'connection lost',
      );
      // The process holds the write lock without letting go only while it is inside that transaction.
      const probe = new SqliteDatabase(file, { timeout: 0 });
      try {
        let lockedSince: number | null = null;
        for (
          const started = Date.now();
          lockedSince === null || Date.now() - lockedSince < 200;
          await new Promise((r) => setTimeout(r, 10))
        ) {
          assert.ok(Date.now() - started < 15_000, 'the activation never got stuck in its transaction');
          try {
            probe.exec('BEGIN IMMEDIATE');
            probe.exec('ROLLBACK');
            lockedSince = null;
          } catch (err) {
            assert.equal((err as { code?: string }).code, 'SQLITE_BUSY');
            lockedSince ??= Date.now();
          }
        }
      } finally {
        probe.close();
      }
      await stopProcess(first.child, 'SIGKILL');
      assert.equal(first.child.signalCode, 'SIGKILL');
      assert.equal(await pending, 'connection lost');

      assert.equal(
        Number((await database.db('devices').where({ license_id: id }).count({ n: '*' }).first())!.n),
        0,
        'no device row',
      );
      assert.equal(
        Number((await database.db('request_nonces').where({ nonce: req.nonce }).count({ n: '*' }).first())!.n),
        0,
        'no nonce row',
      );
      assert.deepEqual(await licenseRow(database.db, id), { timesActivated: 0, transferCount: 0 }, 'no seat taken');
      assert.equal(
        Number((await database.db('activation_history').where({ license_id: id }).count({ n: '*' }).first())!.n),
        0,
        'no history row',
      );
      assert.deepEqual(await licenseAudit(database.db, id), [], 'no audit event');
      await database.db.raw('DROP TRIGGER test_hang');

      const second = await start();
      try {
        const res = await upload(second.base, await openBrowser(second.base), req.text, '10.150.0.2');
        assert.equal(res.status, 200, res.text);
        assert.match(res.text, /License activated/);
        assert.deepEqual(
          (await activeDevices(database.db, id)).map((d) => d.hardwareId),
          ['HW-CRASH'],
        );
        assert.deepEqual(await licenseRow(database.db, id), { timesActivated: 1, transferCount: 0 });
        assert.deepEqual(
          (await licenseAudit(database.db, id)).map((e) => e.action),
          ['activation.granted'],
        );
      } finally {
        await stopProcess(second.child, 'SIGTERM');
      }
      assert.equal(second.child.exitCode, 0, second.child.output());
    });
  });
});
