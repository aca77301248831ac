import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureSigningKey } from '../../app/services/signing-keys.ts';
import { createAccount } from '../helpers/app.ts';
import { serverProcess, stopProcess, type ServerProcess } from '../helpers/concurrency.ts';
import { createTestDatabase, usingMysql, type TestDatabase } from '../helpers/db.ts';
import { exitOf, waitFor } from '../helpers/process.ts';
import { assertEachRanOnce, createJobRunsTable, enqueueTestJobs } from '../helpers/queue.ts';

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
    const ids = await enqueueTestJobs(database.db, JOBS);
    await assertEachRanOnce(
      database.db,
      ids,
      children.slice(0, 2).map((c) => [c.pid!]),
    );
    for (const child of children) child.kill('SIGTERM');
    assert.deepEqual(await Promise.all(children.map(exitOf)), [0, 0, 0], 'graceful shutdown with the runner stopped');
  });
});
