import type { Knex } from 'knex';

/**
 * THE transaction helper: every service transaction runs through it. A transaction that meets a
 * serialization failure — MySQL/MariaDB deadlock (1213, also how a Galera certification failure
 * surfaces), lock wait timeout (1205), SQLite busy — is rolled back by knex and run again from the
 * start, a bounded number of times with a random wait, so nobody above this function ever sees a
 * conflict. The work must therefore be safe to run again: it reads what it needs inside the
 * transaction and keeps nothing from a failed attempt.
 */

export const MAX_ATTEMPTS = 10;
const BASE_DELAY_MS = 5;
const MAX_DELAY_MS = 400;

/** MySQL/MariaDB errno or SQLite code of a failure that a second attempt can get past. */
const MYSQL_RETRYABLE = new Set([1213, 1205]);
const SQLITE_RETRYABLE = new Set(['SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_BUSY_RECOVERY', 'SQLITE_LOCKED']);

export function isSerializationFailure(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { errno?: unknown; code?: unknown; message?: unknown };
  if (typeof e.errno === 'number' && MYSQL_RETRYABLE.has(e.errno)) return true;
  if (typeof e.code === 'string' && SQLITE_RETRYABLE.has(e.code)) return true;
  // Galera's certification failure: "WSREP detected deadlock/conflict and aborted the transaction".
  return typeof e.message === 'string' && /WSREP detected deadlock\/conflict/i.test(e.message);
}

export type RetryReason = 'deadlock' | 'lock_wait_timeout' | 'galera_conflict' | 'sqlite_busy';

/** Which serialization failure it was (for the retry counter of app/lib/metrics.ts). */
export function retryReasonOf(err: unknown): RetryReason {
  const e = err as { errno?: unknown; message?: unknown };
  if (typeof e.message === 'string' && /WSREP detected deadlock\/conflict/i.test(e.message)) return 'galera_conflict';
  if (e.errno === 1213) return 'deadlock';
  if (e.errno === 1205) return 'lock_wait_timeout';
  return 'sqlite_busy';
}

/** Who is told of each retry of a transaction on `db` (app/lib/metrics.ts); one listener per database handle. */
const retryListeners = new WeakMap<Knex, (reason: RetryReason) => void>();

export function onTransactionRetry(db: Knex, listener: (reason: RetryReason) => void): () => void {
  retryListeners.set(db, listener);
  return () => {
    if (retryListeners.get(db) === listener) retryListeners.delete(db);
  };
}

/** Fault injection for tests: each transaction of `db` fails its first `attempts` attempts with a deadlock. */
const injected = new WeakMap<Knex, { attempts: number; failures: number }>();

export function injectSerializationFailures(db: Knex, attempts: number): { failures: () => number; stop: () => void } {
  if (attempts >= MAX_ATTEMPTS) throw new RangeError(`at most ${MAX_ATTEMPTS - 1} failing attempts can be absorbed`);
  const state = { attempts, failures: 0 };
  injected.set(db, state);
  return { failures: () => state.failures, stop: () => injected.delete(db) };
}

function simulatedDeadlock(): Error {
  return Object.assign(
    new Error('Deadlock found when trying to get lock; try restarting transaction (injected by a test)'),
    { errno: 1213, code: 'ER_LOCK_DEADLOCK' },
  );
}

const pause = (attempt: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** attempt)));

/**
 * One statement outside a transaction (autocommit), run again on a serialization failure like a
 * transaction. On a Galera cluster an autocommit write is certified like any transaction: two nodes
 * bumping one row at once (a per-address rate-limit counter hit by many requests from one client)
 * make one of them fail with 1213. The statement must be safe to run again (it was rolled back).
 */
export async function retryOnConflict<T>(statement: () => Promise<T>, db?: Knex): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await statement();
    } catch (err) {
      if (!isSerializationFailure(err) || attempt >= MAX_ATTEMPTS) throw err;
      if (db) retryListeners.get(db)?.(retryReasonOf(err));
      await pause(attempt);
    }
  }
}

export async function inTransaction<T>(db: Knex, work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  // Inside a transaction already: a conflict aborts the outer one, so only the outermost retries.
  if (db.isTransaction) return db.transaction(work);
  const injection = injected.get(db);
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction(async (trx) => {
        const result = await work(trx);
        // After the work, before the commit: what the attempt wrote is rolled back, as in a real conflict.
        if (injection && attempt <= injection.attempts) {
          injection.failures += 1;
          throw simulatedDeadlock();
        }
        return result;
      });
    } catch (err) {
      if (!isSerializationFailure(err) || attempt >= MAX_ATTEMPTS) throw err;
      retryListeners.get(db)?.(retryReasonOf(err));
      await pause(attempt);
    }
  }
}
