import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { Knex } from 'knex';
import { enqueue } from '../../app/lib/queue.ts';
import { inTransaction } from '../../app/lib/transaction.ts';
import { systemClock } from '../../app/lib/clock.ts';

/** The table the test-only job kind `test.record` (app/jobs.ts) writes one row per run into. */
export async function createJobRunsTable(db: Knex): Promise<void> {
  await db.schema.createTable('test_job_runs', (t) => {
    t.increments('id');
    t.integer('job_id').notNullable().index();
    t.integer('attempt').notNullable();
    t.string('runner', 32).notNullable();
  });
}

/** How many times each job ran (job id → runs). */
export async function runsPerJob(db: Knex): Promise<Map<number, number>> {
  const rows = (await db('test_job_runs').select('job_id').count({ n: '*' }).groupBy('job_id')) as {
    job_id: unknown;
    n: unknown;
  }[];
  return new Map(rows.map((r) => [Number(r.job_id), Number(r.n)]));
}

/** Enqueues `count` jobs of the test-only kind `test.record`, 100 per transaction; returns their ids. */
export async function enqueueTestJobs(db: Knex, count: number): Promise<number[]> {
  const ids: number[] = [];
  for (let batch = 0; batch < count / 100; batch++)
    await inTransaction(db, async (trx) => {
      for (let i = 0; i < Math.min(100, count - batch * 100); i++)
        ids.push((await enqueue(trx, systemClock, { kind: 'test.record', payload: { i } }))!);
    });
  return ids;
}

/**
 * Waits until every job is done, then checks the promise: each job ran exactly once, no job
 * is left in another state, every server ran some, and no process outside `runners` ran any.
 * `runners`: per server, the process ids that run its jobs (itself, or its cluster workers).
 */
export async function assertEachRanOnce(db: Knex, ids: number[], runners: number[][], timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // The test's own jobs only: the runners also enqueue the registry's periodic jobs (webhook.expiring, webhook.purge).
    const done = Number((await db('jobs').where({ kind: 'test.record', state: 'done' }).count({ n: '*' }).first())!.n);
    if (done === ids.length) break;
    assert.ok(Date.now() < deadline, `only ${done} of ${ids.length} jobs done after ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const runs = await runsPerJob(db);
  assert.equal(runs.size, ids.length, 'every job ran');
  assert.deepEqual(
    [...runs].filter(([, n]) => n !== 1),
    [],
    'no job ran more than once',
  );
  assert.deepEqual(
    [...runs.keys()].sort((a, b) => a - b),
    [...ids].sort((a, b) => a - b),
  );
  const perRunner = (await db('test_job_runs').select('runner').count({ n: '*' }).groupBy('runner')) as {
    runner: string;
  }[];
  const ran = new Set(perRunner.map((r) => Number(r.runner)));
  assert.deepEqual(
    [...ran].filter((pid) => !runners.flat().includes(pid)),
    [],
    'no other process ran a job',
  );
  for (const [i, group] of runners.entries())
    assert.ok(
      group.some((pid) => ran.has(pid)),
      `server ${i + 1} (processes ${group.join(', ')}) ran some: ${[...ran].join(', ')}`,
    );
  assert.equal(
    Number((await db('jobs').where({ kind: 'test.record' }).whereNot({ state: 'done' }).count({ n: '*' }).first())!.n),
    0,
  );
}

/** The processes of a server that run jobs: its cluster workers, or the process itself (WORKERS=1). */
export function runnerProcessesOf(pid: number): number[] {
  const workers = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => n > 0);
  return workers.length > 0 ? workers : [pid];
}
