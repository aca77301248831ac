import assert from 'node:assert/strict';
import { usingMysql } from '../helpers/db.ts';
import { exitOf, startServer, useProcessWorld } from '../helpers/process.ts';
import { assertEachRanOnce, createJobRunsTable, enqueueTestJobs } from '../helpers/queue.ts';

/**
 * The issue's queue test: two real server.ts processes on one database (the SQLite file, or MariaDB
 * when DATABASE_URL says so), 1,000 jobs of the test-only kind `test.record` (app/jobs.ts), each run
 * exactly once, by both processes' runners.
 */
describe(`job queue: two server processes, one ${usingMysql ? 'MySQL/MariaDB' : 'SQLite'} database`, function () {
  this.timeout(120_000);
  const JOBS = 1000;
  // The signing key and an admin exist: no setup link printed.
  const world = useProcessWorld('queue', {
    installed: 'key+admin',
    setUp: ({ database }) => createJobRunsTable(database.db),
  });

  it('runs each of 1,000 jobs exactly once, spread over both processes (not a third with QUEUE_RUNNER=off); all stop cleanly', async () => {
    const { database } = world;
    const servers = await Promise.all(
      ['on', 'on', 'off'].map((queueRunner) =>
        startServer(world, { NODE_ENV: 'test', WORKERS: '1', QUEUE_RUNNER: queueRunner }),
      ),
    );
    const children = servers.map((s) => s.child);
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
