import crypto from 'node:crypto';
import type { Knex } from 'knex';

/**
 * Per-process caches of what every request reads and the console rarely changes (settings, the
 * branding of a host, the trusted and active signing keys), invalidated through one generation
 * token (docs/performance.md, "Caches"):
 *
 * - every write of such data calls `bumpGeneration` in its own transaction: a new token (the one
 *   row of `cache_generation`) and, once that transaction commits, this process's caches emptied at once;
 * - every process reads the token at most once per `checkEveryMs` and stops using what it cached
 *   under another token. A console change is thus seen by its own process at once and by every
 *   other within that interval.
 *
 * A value is loaded through the handle the caller has (inside its transaction: on SQLite the pool
 * has one connection), together with the token as that same handle sees it, and kept under that
 * token: a transaction that began before a change cannot leave its older view in the cache for
 * longer than the interval. A transaction that changed cached data reads past the cache.
 */

/** The caches of each database (knex instance) in this process, so that a commit can empty them. */
const registry = new WeakMap<object, Set<GenerationCache>>();
/** Transactions that changed cached data: their reads go past the cache. */
const changedIn = new WeakSet<object>();

export class GenerationCache {
  private values = new Map<string, { token: string; value: unknown }>();
  private token: string | undefined;
  private checkedAt = Number.NEGATIVE_INFINITY;

  constructor(
    db: Knex,
    private readonly checkEveryMs: number,
    /** At most this many entries (the branding of a host is keyed by the Host header: bounded). */
    private readonly maxEntries = 1000,
  ) {
    const set = registry.get(registryKey(db)) ?? new Set();
    set.add(this);
    registry.set(registryKey(db), set);
  }

  /** `key`'s value as of the current generation, loaded through `handle` when missing or outdated. */
  async get<T>(handle: Knex, key: string, load: (handle: Knex) => Promise<T>): Promise<T> {
    if (changedIn.has(handle)) return load(handle);
    if (performance.now() - this.checkedAt >= this.checkEveryMs) {
      this.token = await readToken(handle);
      this.checkedAt = performance.now();
    }
    const entry = this.values.get(key);
    if (entry && entry.token === this.token) return entry.value as T;
    const token = await readToken(handle);
    const value = await load(handle);
    if (this.values.size >= this.maxEntries) this.values.clear();
    this.values.set(key, { token, value });
    return value;
  }

  /** Forgets everything and reads the token again on the next use (a change committed by this process). */
  clear(): void {
    this.values.clear();
    this.checkedAt = Number.NEGATIVE_INFINITY;
  }
}

/**
 * The key of `db`'s database in the registry: its client's configuration, which a transaction's
 * client shares with the knex instance it was started from.
 */
const registryKey = (db: Knex): object => (db.client as { config: object }).config;

async function readToken(db: Knex): Promise<string> {
  const row = await db('cache_generation').where({ id: 1 }).first('token');
  return row ? String(row.token) : '';
}

/**
 * Marks cached data as changed: a new token in the same transaction as the change, and this
 * process's caches emptied once it commits (at once when `db` is no transaction).
 */
export async function bumpGeneration(db: Knex, now: Date): Promise<void> {
  await db('cache_generation').where({ id: 1 }).update({ token: crypto.randomUUID(), updated_at: now });
  const clearAll = () => {
    for (const cache of registry.get(registryKey(db)) ?? []) cache.clear();
  };
  const trx = db as Knex.Transaction;
  if (db.isTransaction && trx.executionPromise) {
    changedIn.add(db);
    trx.executionPromise.then(clearAll, clearAll);
  } else clearAll();
}
