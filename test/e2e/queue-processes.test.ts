import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { enqueue } from '../../app/lib/queue.ts';
import { inTransaction } from '../../app/lib/transaction.ts';
import { systemClock } from '../../app/lib/clock.ts';
import { ensureSigningKey } from '../../app/services/signing-keys.ts';
import { createAccount } from '../helpers/app.ts';
import { serverProcess, stopProcess, type ServerProcess } from '../helpers/concurrency.ts';
import { createTestDatabase, usingMysql, type TestDatabase } from '../helpers/db.ts';
import { exitOf, waitFor } from '../helpers/process.ts';
import { createJobRunsTable, runsPerJob } from '../helpers/queue.ts';

/**
 * The issue's queue test: two real server.ts processes on one database (the SQLite file, or MariaDB
 * when DATABASE_URL says so), 1,000 jobs of the test-only kind `test.record` (app/jobs.ts), each run
 * exactly once, by both processes' runners.
 */
describe(`job queue: two server processes, one ${usingMysql ? 'MySQL/MariaDB' : 'SQLite'} database`, function () {
  this.timeout(120_000);
  const JOBS = 1000;
  let database: TestDatabase;
  let dataDir: string;
  const children: ServerProcess[] = [];

  before(async () => {
    database = await createTestDatabase();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-queue-'));
    await ensureSigningKey(database.db, dataDir, new Date());
    await createAccount(database.db, { role: 'admin' }); // no setup link printed
    await createJobRunsTable(database.db);
  });
  after(async () => {
    await Promise.all(children.map((c) => stopProcess(c, 'SIGKILL')));
    await database.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('runs each of 1,000 jobs exactly once, spread over both processes (not a third with QUEUE_RUNNER=off); all stop cleanly', async () => {
    for (const queueRunner of ['on', 'on', 'off'])
      children.push(
        serverProcess({
          PORT: '0',
          HOST: '127.0.0.1',
          DATA_DIR: dataDir,
          DATABASE_URL: database.url,
          LOG_LEVEL: 'warn',
          NODE_ENV: 'test',
          WORKERS: '1',
          QUEUE_RUNNER: queueRunner,
        }),
      );
    await Promise.all(children.map((c) => waitFor(c, /listening on/, 30_000)));
    // Enqueued once both runners poll, in batches of one transaction each.
    const ids: number[] = [];
    for (let batch = 0; batch < JOBS / 100; batch++)
      await inTransaction(database.db, async (trx) => {
        for (let i = 0; i < 100; i++)
          ids.push((await enqueue(trx, systemClock, { kind: 'test.record', payload: { i } }))!);
      });
    const deadline = Date.now() + 60_000;
    for (;;) {
      // This test's jobs only: the runners also enqueue the registry's periodic jobs (webhook.expiring).
      const done = Number(
        (await database.db('jobs').where({ kind: 'test.record', state: 'done' }).count({ n: '*' }).first())!.n,
      );
      if (done === JOBS) break;
      assert.ok(Date.now() < deadline, `only ${done} of ${JOBS} jobs done after 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const runs = await runsPerJob(database.db);
    assert.equal(runs.size, JOBS, 'every job ran');
    const twice = [...runs].filter(([, n]) => n !== 1);
    assert.deepEqual(twice, [], 'no job ran more than once');
    assert.deepEqual(
      [...runs.keys()].sort((a, b) => a - b),
      ids.sort((a, b) => a - b),
    );
    const perRunner = (await database.db('test_job_runs').select('runner').count({ n: '*' }).groupBy('runner')) as {
      runner: string;
      n: unknown;
    }[];
    const pids = children
      .slice(0, 2)
      .map((c) => String(c.pid))
      .sort();
    assert.deepEqual(perRunner.map((r) => r.runner).sort(), pids, 'both runners ran some; the one turned off none');
    const failed = Number(
      (await database.db('jobs').where({ kind: 'test.record' }).whereNot({ state: 'done' }).count({ n: '*' }).first())!
        .n,
    );
    assert.equal(failed, 0);
    for (const child of children) child.kill('SIGTERM');
    assert.deepEqual(await Promise.all(children.map(exitOf)), [0, 0, 0], 'graceful shutdown with the runner stopped');
  });
});
