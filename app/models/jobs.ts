import type { Knex } from 'knex';
import { isSqlite } from '../../db/knexfile.ts';
import { affected, countOf, isUniqueViolation, parseJson, toDate } from './normalise.ts';

/** A job's life: queued → running (leased) → done, or back to queued for a retry, or failed for good. */
export const JOB_STATES = ['queued', 'running', 'done', 'failed'] as const;
export type JobState = (typeof JOB_STATES)[number];

export interface Job {
  id: number;
  kind: string;
  payload: Record<string, unknown>;
  state: JobState;
  attempts: number;
  maxAttempts: number;
  runAt: Date;
  lockedUntil: Date | null;
  lockedBy: string | null;
  lastError: string | null;
  uniqueKey: string | null;
  createdAt: Date;
  finishedAt: Date | null;
}

export interface NewJob {
  kind: string;
  payload: Record<string, unknown>;
  runAt: Date;
  uniqueKey: string | null;
  maxAttempts: number;
}

/** Error texts kept on a job are cut here: a receiver's whole answer is not worth a row. */
export const MAX_ERROR_LENGTH = 1000;

function fromRow(r: Record<string, unknown>): Job {
  return {
    id: Number(r.id),
    kind: String(r.kind),
    payload: parseJson<Record<string, unknown>>(r.payload) ?? {},
    state: String(r.state) as JobState,
    attempts: Number(r.attempts),
    maxAttempts: Number(r.max_attempts),
    runAt: toDate(r.run_at)!,
    lockedUntil: toDate(r.locked_until),
    lockedBy: (r.locked_by as string | null) ?? null,
    lastError: (r.last_error as string | null) ?? null,
    uniqueKey: (r.unique_key as string | null) ?? null,
    createdAt: toDate(r.created_at)!,
    finishedAt: toDate(r.finished_at),
  };
}

/** Inserts a job; null when its unique key exists already (the database decides, whatever the number of processes). */
export async function insert(db: Knex, job: NewJob, now: Date): Promise<number | null> {
  try {
    const [id] = await db('jobs').insert({
      kind: job.kind,
      payload: JSON.stringify(job.payload),
      state: 'queued',
      attempts: 0,
      max_attempts: job.maxAttempts,
      run_at: job.runAt,
      unique_key: job.uniqueKey,
      created_at: now,
    });
    return Number(id);
  } catch (err) {
    if (job.uniqueKey && isUniqueViolation(err)) return null;
    throw err;
  }
}

export async function findById(db: Knex, id: number): Promise<Job | undefined> {
  const row = await db('jobs').where({ id }).first();
  return row ? fromRow(row) : undefined;
}

/**
 * The id of one job that is due: queued with run_at reached, or running with an expired lease (its
 * process died). On MySQL/MariaDB the row is locked FOR UPDATE SKIP LOCKED so that concurrent claimers
 * on one server pass each other by; on SQLite the caller's transaction holds the write lock. Either way
 * the claim itself is the guarded update in `claim`.
 */
export async function nextDueId(trx: Knex, now: Date): Promise<number | null> {
  const lock = (q: Knex.QueryBuilder) => (isSqlite(trx) ? q : q.forUpdate().skipLocked());
  const queued = await lock(
    trx('jobs').where('state', 'queued').where('run_at', '<=', now).orderBy('run_at').orderBy('id').first('id'),
  );
  if (queued) return Number(queued.id);
  const stale = await lock(
    trx('jobs').where('state', 'running').where('locked_until', '<', now).orderBy('locked_until').first('id'),
  );
  return stale ? Number(stale.id) : null;
}

/**
 * Takes a job for `workerId` until `leaseUntil`, only if it is still due: the guarded update is what
 * makes a job run once at a time, also on a Galera cluster where SKIP LOCKED is local to one node
 * (the second node's update of the same row fails certification and is retried, then finds it taken).
 */
export async function claim(trx: Knex, id: number, workerId: string, now: Date, leaseUntil: Date): Promise<boolean> {
  const n = await trx('jobs')
    .where({ id })
    .where((q) =>
      q
        .where((d) => d.where('state', 'queued').where('run_at', '<=', now))
        .orWhere((s) => s.where('state', 'running').where('locked_until', '<', now)),
    )
    .update({ state: 'running', locked_by: workerId, locked_until: leaseUntil, attempts: trx.raw('attempts + 1') });
  return affected(n) === 1;
}

/** The guard of every change a runner makes to a job it claimed: still running, still its own lease. */
const ours = (db: Knex, id: number, workerId: string) =>
  db('jobs').where({ id, state: 'running', locked_by: workerId });

export async function extendLease(db: Knex, id: number, workerId: string, leaseUntil: Date): Promise<boolean> {
  return affected(await ours(db, id, workerId).update({ locked_until: leaseUntil })) === 1;
}

export async function markDone(db: Knex, id: number, workerId: string, now: Date): Promise<boolean> {
  const n = await ours(db, id, workerId).update({
    state: 'done',
    finished_at: now,
    locked_until: null,
    last_error: null,
  });
  return affected(n) === 1;
}

export async function reschedule(db: Knex, id: number, workerId: string, runAt: Date, error: string): Promise<boolean> {
  const n = await ours(db, id, workerId).update({
    state: 'queued',
    run_at: runAt,
    locked_until: null,
    last_error: error.slice(0, MAX_ERROR_LENGTH),
  });
  return affected(n) === 1;
}

export async function markFailed(db: Knex, id: number, workerId: string, now: Date, error: string): Promise<boolean> {
  const n = await ours(db, id, workerId).update({
    state: 'failed',
    finished_at: now,
    locked_until: null,
    last_error: error.slice(0, MAX_ERROR_LENGTH),
  });
  return affected(n) === 1;
}

/** Console: a failed job runs again from its first attempt. */
export async function requeueFailed(db: Knex, id: number, now: Date): Promise<boolean> {
  const n = await db('jobs').where({ id, state: 'failed' }).update({
    state: 'queued',
    attempts: 0,
    run_at: now,
    finished_at: null,
    locked_by: null,
    locked_until: null,
  });
  return affected(n) === 1;
}

/** Console: a queued job will not run (it stays, failed, with the reason; it can be run again). */
export async function cancelQueued(db: Knex, id: number, now: Date, reason: string): Promise<boolean> {
  const n = await db('jobs')
    .where({ id, state: 'queued' })
    .update({ state: 'failed', finished_at: now, last_error: reason.slice(0, MAX_ERROR_LENGTH) });
  return affected(n) === 1;
}

export interface JobFilter {
  state?: JobState;
  kind?: string;
}

const filtered = (db: Knex, f: JobFilter) => {
  const q = db('jobs');
  if (f.state) q.where('state', f.state);
  if (f.kind) q.where('kind', f.kind);
  return q;
};

export async function list(db: Knex, f: JobFilter, limit: number, offset: number): Promise<Job[]> {
  return (await filtered(db, f).orderBy('id', 'desc').limit(limit).offset(offset)).map(fromRow);
}

export async function count(db: Knex, f: JobFilter): Promise<number> {
  return countOf(await filtered(db, f).count({ n: '*' }).first());
}

export async function countsByState(db: Knex): Promise<Record<JobState, number>> {
  const rows = await db('jobs').select('state').count({ n: '*' }).groupBy('state');
  const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
  for (const r of rows as { state: string; n: unknown }[])
    if (r.state in counts) counts[r.state as JobState] = Number(r.n);
  return counts;
}

export async function kinds(db: Knex): Promise<string[]> {
  return (await db('jobs').distinct('kind').orderBy('kind')).map((r: { kind: string }) => r.kind);
}

/**
 * Housekeeping: done jobs older than `doneBefore` and failed ones older than `failedBefore` are deleted,
 * in batches (the table would otherwise grow by a row per mail for ever). Returns how many.
 */
export async function purgeFinished(db: Knex, doneBefore: Date, failedBefore: Date, batch = 1000): Promise<number> {
  let deleted = 0;
  for (const [state, before] of [
    ['done', doneBefore],
    ['failed', failedBefore],
  ] as const) {
    for (;;) {
      const ids = (await db('jobs')
        .where({ state })
        .where('finished_at', '<', before)
        .limit(batch)
        .pluck('id')) as number[];
      if (!ids.length) break;
      deleted += affected(await db('jobs').whereIn('id', ids).where({ state }).delete());
    }
  }
  return deleted;
}
