import crypto from 'node:crypto';
import os from 'node:os';
import type { Knex } from 'knex';
import type { AppContext } from '../app.ts';
import { handlerFor, PERIODIC_JOBS } from '../jobs.ts';
import * as jobs from '../models/jobs.ts';
import type { Clock } from './clock.ts';
import { inTransaction } from './transaction.ts';

/**
 * The job queue every server process shares (docs/operations.md, "Job queue"). Jobs live in the
 * `jobs` table; a runner claims a due one with a lease (a guarded update, so one job runs once at a
 * time across processes and cluster nodes), runs its handler outside any transaction, and marks it
 * done — or queues it again with backoff, or fails it for good after its last attempt.
 */

export interface JobSpec {
  kind: string;
  /** JSON; never secrets in clear (store ids, load the rest in the handler). */
  payload: Record<string, unknown>;
  runAt?: Date;
  /** A second enqueue with the same key is silently ignored (unique index), e.g. a daily check. */
  uniqueKey?: string;
  maxAttempts?: number;
}

export interface JobRun {
  id: number;
  kind: string;
  // biome-ignore lint/suspicious/noExplicitAny: a handler reads its own payload's shape.
  payload: Record<string, any>;
  /** 1-based. */
  attempt: number;
}

export type JobHandler = (ctx: AppContext, job: JobRun) => Promise<void>;

/** Thrown by a handler to choose when the next attempt runs. */
export class RetryJobAt extends Error {
  constructor(
    readonly at: Date,
    message: string,
  ) {
    super(message);
    this.name = 'RetryJobAt';
  }
}

/** Thrown by a handler to fail the job for good, without further attempts. */
export class FailJob extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FailJob';
  }
}

export const DEFAULT_MAX_ATTEMPTS = 8;
/** How long a claim holds; a running job's lease is renewed well before it ends. */
export const LEASE_MS = 5 * 60_000;
const LEASE_RENEW_MS = 60_000;
const BACKOFF_BASE_MS = 30_000;
const BACKOFF_CAP_MS = 60 * 60_000;

/** Inserts a job; in the caller's transaction when given one, so it exists only if that commits. Null when uniqueKey existed. */
export async function enqueue(db: Knex, clock: Clock, spec: JobSpec): Promise<number | null> {
  const now = clock.now();
  const maxAttempts = spec.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new RangeError('maxAttempts must be a whole number ≥ 1');
  return jobs.insert(
    db,
    {
      kind: spec.kind,
      payload: spec.payload,
      runAt: spec.runAt ?? now,
      uniqueKey: spec.uniqueKey ?? null,
      maxAttempts,
    },
    now,
  );
}

/** The wait before attempt `attempt + 1`: 30 s × 2^(attempt-1), ±20 % jitter (runners do not retry in step), at most 1 h. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  const base = BACKOFF_BASE_MS * 2 ** Math.min(attempt - 1, 20);
  return Math.min(BACKOFF_CAP_MS, Math.round(base * (0.8 + 0.4 * random())));
}

const defaultWorkerId = () => `${os.hostname()}:${process.pid}:${crypto.randomBytes(3).toString('hex')}`;

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err)) || 'error';

/** How long finished jobs stay visible in the console before housekeeping deletes them. */
export const KEEP_DONE_MS = 7 * 86_400_000;
export const KEEP_FAILED_MS = 30 * 86_400_000;

/** Housekeeping (server.ts, every ten minutes): deletes done jobs after 7 days, failed ones after 30. */
export function purgeFinishedJobs({ db, clock }: { db: Knex; clock: Clock }): Promise<number> {
  const now = clock.now().getTime();
  return jobs.purgeFinished(db, new Date(now - KEEP_DONE_MS), new Date(now - KEEP_FAILED_MS));
}

/** Claims one due job for `workerId` (short transaction; retried on conflicts by the transaction helper). */
async function claimNext(ctx: AppContext, workerId: string): Promise<jobs.Job | null> {
  return inTransaction(ctx.db, async (trx) => {
    const now = ctx.clock.now();
    const id = await jobs.nextDueId(trx, now);
    // The guarded update decides; it fails only when another runner took the job between the read and
    // the update (a Galera node's lock does not reach the others): the next poll looks again.
    if (id === null || !(await jobs.claim(trx, id, workerId, now, new Date(now.getTime() + LEASE_MS)))) return null;
    return (await jobs.findById(trx, id)) ?? null;
  });
}

/** Runs one claimed job to its end state; the lease is renewed while the handler works. */
async function runClaimed(ctx: AppContext, job: jobs.Job, workerId: string): Promise<void> {
  const { db, clock, logger } = ctx;
  const log = logger.child({ job: job.id, kind: job.kind, attempt: job.attempts });
  if (job.attempts > job.maxAttempts) {
    // Its process died during the last attempt: the lease ran out, and no attempt is left.
    ctx.metrics.job(job.kind, 'failed');
    await jobs.markFailed(db, job.id, workerId, clock.now(), 'stopped during its last attempt (lease expired)');
    return;
  }
  const handler = handlerFor(ctx, job.kind);
  const renew = setInterval(() => {
    jobs
      .extendLease(db, job.id, workerId, new Date(clock.now().getTime() + LEASE_MS))
      .catch((err) => log.warn({ err: messageOf(err) }, 'could not extend a job lease'));
  }, LEASE_RENEW_MS);
  renew.unref();
  // Only the handler's own failure decides a retry; a failure to record the outcome leaves the lease to expire.
  let failure: { err: unknown } | null = null;
  try {
    if (!handler) throw new FailJob(`no handler for job kind ${job.kind}`);
    await handler(ctx, { id: job.id, kind: job.kind, payload: job.payload, attempt: job.attempts });
  } catch (err) {
    failure = { err };
  } finally {
    clearInterval(renew);
  }
  const now = clock.now();
  if (!failure) {
    ctx.metrics.job(job.kind, 'done');
    if (!(await jobs.markDone(db, job.id, workerId, now))) log.warn('job finished after its lease was taken over');
    return;
  }
  const { err } = failure;
  const message = messageOf(err);
  if (err instanceof FailJob || job.attempts >= job.maxAttempts) {
    log.warn({ err: message }, 'job failed');
    ctx.metrics.job(job.kind, 'failed');
    await jobs.markFailed(db, job.id, workerId, now, message);
  } else {
    const at = err instanceof RetryJobAt ? err.at : new Date(now.getTime() + backoffMs(job.attempts));
    log.info({ err: message, retryAt: at.toISOString() }, 'job will be retried');
    ctx.metrics.job(job.kind, 'retried');
    await jobs.reschedule(db, job.id, workerId, at, message);
  }
}

/** Claims and runs due jobs until none is due or `limit` ran; returns how many ran. */
export async function runDueJobs(ctx: AppContext, opts: { limit?: number; workerId?: string } = {}): Promise<number> {
  const limit = opts.limit ?? Number.POSITIVE_INFINITY;
  const workerId = opts.workerId ?? defaultWorkerId();
  let ran = 0;
  while (ran < limit) {
    const job = await claimNext(ctx, workerId);
    if (!job) break;
    await runClaimed(ctx, job, workerId);
    ran += 1;
  }
  return ran;
}

/** The start of the period of length `everyMs` that `now` falls in (periods counted from the epoch). */
export const periodStart = (now: Date, everyMs: number) => new Date(Math.floor(now.getTime() / everyMs) * everyMs);

/** Which periods this process has enqueued already (it asks the database only once per period). */
const enqueuedPeriods = new WeakMap<AppContext, Map<string, number>>();

/** Enqueues each periodic job once per period; across processes the unique key decides who does. */
export async function enqueuePeriodicJobs(ctx: AppContext): Promise<void> {
  const seen = enqueuedPeriods.get(ctx) ?? new Map<string, number>();
  enqueuedPeriods.set(ctx, seen);
  for (const { kind, everyMs, when } of PERIODIC_JOBS) {
    const start = periodStart(ctx.clock.now(), everyMs);
    if (seen.get(kind) === start.getTime()) continue;
    if (when && !(await when(ctx))) {
      seen.set(kind, start.getTime());
      continue;
    }
    await enqueue(ctx.db, ctx.clock, {
      kind,
      payload: { periodStart: start.toISOString() },
      runAt: start,
      uniqueKey: `${kind}:${start.toISOString()}`,
    });
    seen.set(kind, start.getTime());
  }
}

/** This process's runner: polls every `pollMs`; stop() lets the running job finish and waits for it. */
export function startQueueRunner(ctx: AppContext, opts: { pollMs?: number } = {}): { stop(): Promise<void> } {
  const pollMs = opts.pollMs ?? 1000;
  const workerId = defaultWorkerId();
  let stopped = false;
  let wake: (() => void) | null = null;
  const loop = (async () => {
    while (!stopped) {
      try {
        await enqueuePeriodicJobs(ctx);
        // One job at a time, so that stop() waits for one job at most.
        while (!stopped && (await runDueJobs(ctx, { limit: 1, workerId })) > 0);
      } catch (err) {
        ctx.logger.warn({ err: messageOf(err) }, 'job queue runner: poll failed');
      }
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = null;
    }
  })();
  return {
    async stop() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}
