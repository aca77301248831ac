import assert from 'node:assert/strict';
import type { AppContext } from '../../app/app.ts';
import {
  backoffMs,
  enqueue,
  enqueuePeriodicJobs,
  KEEP_DONE_MS,
  KEEP_FAILED_MS,
  LEASE_MS,
  periodStart,
  purgeFinishedJobs,
  runDueJobs,
  startQueueRunner,
} from '../../app/lib/queue.ts';
import { PERIODIC_JOBS } from '../../app/jobs.ts';
import * as jobs from '../../app/models/jobs.ts';
import { inTransaction } from '../../app/lib/transaction.ts';
import { buildTestApp, type TestApp } from '../helpers/app.ts';
import { createJobRunsTable, runsPerJob } from '../helpers/queue.ts';

/** The job queue (app/lib/queue.ts) on a real database, time driven by the test's ManualClock. */
describe('job queue', function () {
  this.timeout(60_000);
  let t: TestApp;
  let ctx: AppContext;
  before(async () => {
    t = await buildTestApp();
    ctx = t.app.locals.ctx;
    await createJobRunsTable(t.db);
  });
  after(async () => t.close());
  beforeEach(async () => {
    await t.db('jobs').delete();
    await t.db('test_job_runs').delete();
  });

  const job = async (id: number) => (await jobs.findById(t.db, id))!;
  const record = (payload: Record<string, unknown> = {}, extra: { maxAttempts?: number; runAt?: Date } = {}) =>
    enqueue(t.db, t.clock, { kind: 'test.record', payload, ...extra }) as Promise<number>;

  it('runs a due job once and marks it done; a job not yet due waits', async () => {
    const a = await record();
    const b = await record({}, { runAt: new Date(t.clock.now().getTime() + 60_000) });
    assert.equal(await runDueJobs(ctx), 1);
    assert.equal((await job(a)).state, 'done');
    assert.ok((await job(a)).finishedAt);
    assert.equal((await job(b)).state, 'queued');
    assert.equal(await runDueJobs(ctx), 0, 'nothing else is due');
    t.clock.advance(60_000);
    assert.equal(await runDueJobs(ctx), 1);
    assert.deepEqual([...(await runsPerJob(t.db)).entries()].sort(), [
      [a, 1],
      [b, 1],
    ]);
  });

  it('respects limit', async () => {
    for (let i = 0; i < 3; i++) await record();
    assert.equal(await runDueJobs(ctx, { limit: 2 }), 2);
    assert.equal(await runDueJobs(ctx), 1);
  });

  it('ignores a second enqueue with the same unique key (null), also inside a transaction', async () => {
    const first = await enqueue(t.db, t.clock, { kind: 'test.record', payload: {}, uniqueKey: 'daily:2026-01-01' });
    assert.ok(first);
    const second = await inTransaction(t.db, (trx) =>
      enqueue(trx, t.clock, { kind: 'test.record', payload: {}, uniqueKey: 'daily:2026-01-01' }),
    );
    assert.equal(second, null);
    assert.equal(await jobs.count(t.db, {}), 1);
  });

  it('a job enqueued in a transaction that rolls back does not exist', async () => {
    await assert.rejects(
      inTransaction(t.db, async (trx) => {
        await enqueue(trx, t.clock, { kind: 'test.record', payload: {} });
        throw new Error('rolled back');
      }),
      /rolled back/,
    );
    assert.equal(await jobs.count(t.db, {}), 0);
  });

  it('retries an ordinary error with exponential backoff, then fails with the error kept', async () => {
    const id = await record({ failUntil: 99 }, { maxAttempts: 3 });
    assert.equal(await runDueJobs(ctx), 1);
    let j = await job(id);
    assert.equal(j.state, 'queued');
    assert.equal(j.attempts, 1);
    assert.equal(j.lastError, 'test: attempt 1 failed');
    const wait1 = j.runAt.getTime() - t.clock.now().getTime();
    assert.ok(wait1 >= 24_000 && wait1 <= 36_000, `first retry after ~30 s, got ${wait1}`);
    assert.equal(await runDueJobs(ctx), 0, 'not before its time');
    t.clock.advance(wait1);
    assert.equal(await runDueJobs(ctx), 1);
    j = await job(id);
    const wait2 = j.runAt.getTime() - t.clock.now().getTime();
    assert.ok(wait2 >= 48_000 && wait2 <= 72_000, `second retry after ~60 s, got ${wait2}`);
    t.clock.advance(wait2);
    assert.equal(await runDueJobs(ctx), 1);
    j = await job(id);
    assert.equal(j.state, 'failed');
    assert.equal(j.attempts, 3);
    assert.equal(j.lastError, 'test: attempt 3 failed');
    t.clock.advance(24 * 3600_000);
    assert.equal(await runDueJobs(ctx), 0, 'a failed job is not run again');
    assert.equal((await runsPerJob(t.db)).get(id), 3);
  });

  it('a job that fails and then succeeds ends done, its error cleared', async () => {
    const id = await record({ failUntil: 1 });
    await runDueJobs(ctx);
    t.clock.advance(3600_000);
    await runDueJobs(ctx);
    const j = await job(id);
    assert.equal(j.state, 'done');
    assert.equal(j.attempts, 2);
    assert.equal(j.lastError, null);
  });

  it('backoff doubles from 30 s and is capped at 1 h, with jitter', () => {
    assert.equal(
      backoffMs(1, () => 0.5),
      30_000,
    );
    assert.equal(
      backoffMs(2, () => 0.5),
      60_000,
    );
    assert.equal(
      backoffMs(5, () => 0.5),
      480_000,
    );
    assert.equal(
      backoffMs(12, () => 0.5),
      3600_000,
    );
    assert.equal(
      backoffMs(1, () => 0),
      24_000,
    );
    assert.equal(
      backoffMs(1, () => 1),
      36_000,
    );
    assert.equal(
      backoffMs(40, () => 1),
      3600_000,
    );
  });

  it('RetryJobAt chooses the next attempt', async () => {
    const at = new Date(t.clock.now().getTime() + 7 * 60_000);
    const id = await record({ failUntil: 1, mode: 'retryAt', at: at.toISOString() });
    await runDueJobs(ctx);
    const j = await job(id);
    assert.equal(j.state, 'queued');
    assert.equal(j.runAt.getTime(), at.getTime());
    t.clock.advance(7 * 60_000 - 1);
    assert.equal(await runDueJobs(ctx), 0);
    t.clock.advance(1);
    assert.equal(await runDueJobs(ctx), 1);
    assert.equal((await job(id)).state, 'done');
  });

  it('FailJob fails the job at once, without further attempts', async () => {
    const id = await record({ failUntil: 99, mode: 'fail' });
    await runDueJobs(ctx);
    const j = await job(id);
    assert.equal(j.state, 'failed');
    assert.equal(j.attempts, 1);
    assert.equal(j.lastError, 'test: failed for good');
  });

  it('a job of an unknown kind fails with the reason', async () => {
    const id = (await enqueue(t.db, t.clock, { kind: 'no.such.kind', payload: {} }))!;
    await runDueJobs(ctx);
    const j = await job(id);
    assert.equal(j.state, 'failed');
    assert.match(j.lastError!, /no handler for job kind no\.such\.kind/);
  });

  it('a running job whose lease expired (its process died) is claimed again; the old runner cannot finish it', async () => {
    const id = await record();
    const now = t.clock.now();
    // A process claimed it and died.
    assert.equal(await jobs.claim(t.db, id, 'dead-runner', now, new Date(now.getTime() + LEASE_MS)), true);
    assert.equal(await runDueJobs(ctx), 0, 'leased: not due');
    t.clock.advance(LEASE_MS + 1);
    assert.equal(await runDueJobs(ctx, { workerId: 'alive' }), 1);
    const j = await job(id);
    assert.equal(j.state, 'done');
    assert.equal(j.attempts, 2, 'the lost run counts as an attempt');
    assert.equal(await jobs.markDone(t.db, id, 'dead-runner', t.clock.now()), false, 'a guarded update: not its lease');
    assert.equal(await jobs.claim(t.db, id, 'other', t.clock.now(), t.clock.now()), false, 'done is not claimable');
  });

  it('a lease that expired during the last attempt fails the job instead of running it again', async () => {
    const id = await record({}, { maxAttempts: 1 });
    const now = t.clock.now();
    await jobs.claim(t.db, id, 'dead-runner', now, new Date(now.getTime() + LEASE_MS));
    t.clock.advance(LEASE_MS + 1);
    await runDueJobs(ctx);
    const j = await job(id);
    assert.equal(j.state, 'failed');
    assert.match(j.lastError!, /lease expired/);
    assert.equal((await runsPerJob(t.db)).size, 0);
  });

  it('two runners of one process side by side run each job exactly once', async () => {
    const ids = [];
    for (let i = 0; i < 60; i++) ids.push(await record());
    const ran = await Promise.all([
      runDueJobs(ctx, { workerId: 'a' }),
      runDueJobs(ctx, { workerId: 'b' }),
      runDueJobs(ctx, { workerId: 'c' }),
    ]);
    assert.equal(
      ran.reduce((a, b) => a + b, 0),
      60,
    );
    const runs = await runsPerJob(t.db);
    assert.equal(runs.size, 60);
    assert.ok([...runs.values()].every((n) => n === 1));
  });

  it('a periodic job is enqueued once per period, whatever the number of runners', async () => {
    // This test's periodic job alone (the registry's own ones, such as webhook.expiring, would be enqueued too).
    const registered = PERIODIC_JOBS.splice(0, PERIODIC_JOBS.length, { kind: 'test.record', everyMs: 3600_000 });
    try {
      const other = { ...ctx }; // another process: its own memory of the periods it enqueued
      await Promise.all([enqueuePeriodicJobs(ctx), enqueuePeriodicJobs(other), enqueuePeriodicJobs(ctx)]);
      assert.equal(await jobs.count(t.db, { kind: 'test.record' }), 1);
      const [j] = await jobs.list(t.db, {}, 10, 0);
      const start = periodStart(t.clock.now(), 3600_000).toISOString();
      assert.deepEqual(j!.payload, { periodStart: start });
      assert.equal(j!.uniqueKey, `test.record:${start}`);
      t.clock.advance(3600_000);
      await enqueuePeriodicJobs(other);
      await enqueuePeriodicJobs(ctx);
      assert.equal(await jobs.count(t.db, { kind: 'test.record' }), 2, 'the next period: one more');
      assert.equal(await runDueJobs(ctx), 2);
    } finally {
      PERIODIC_JOBS.splice(0, PERIODIC_JOBS.length, ...registered);
    }
  });

  it('housekeeping deletes done jobs after 7 days and failed ones after 30; queued ones stay', async () => {
    const done = await record();
    const failed = await record({ failUntil: 1, mode: 'fail' });
    await runDueJobs(ctx);
    const queued = await record({}, { runAt: new Date(t.clock.now().getTime() + 60 * 86_400_000) });
    t.clock.advance(KEEP_DONE_MS - 1);
    assert.equal(await purgeFinishedJobs(ctx), 0);
    t.clock.advance(2);
    assert.equal(await purgeFinishedJobs(ctx), 1);
    assert.equal(await jobs.findById(t.db, done), undefined);
    t.clock.advance(KEEP_FAILED_MS - KEEP_DONE_MS);
    assert.equal(await purgeFinishedJobs(ctx), 1);
    assert.equal(await jobs.findById(t.db, failed), undefined);
    assert.equal((await job(queued)).state, 'queued');
  });

  it('the runner runs due jobs as they come; stop() waits for the running job', async () => {
    const runner = startQueueRunner(ctx, { pollMs: 20 });
    try {
      const id = await record();
      for (let i = 0; i < 250 && (await job(id)).state !== 'done'; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal((await job(id)).state, 'done');
    } finally {
      await runner.stop();
    }
    const after = await record();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await job(after)).state, 'queued', 'a stopped runner runs nothing');
  });

  it('periods are floored to their length', () => {
    assert.equal(periodStart(new Date('2026-03-04T05:06:07.089Z'), 3600_000).toISOString(), '2026-03-04T05:00:00.000Z');
  });
});
