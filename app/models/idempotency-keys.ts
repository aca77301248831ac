import type { Knex } from 'knex';
import { retryOnConflict } from '../lib/transaction.ts';
import { affected, isUniqueViolation, toDate } from './normalise.ts';

/** The Idempotency-Key records of the Management API (app/api/manage/idempotency.ts). */

export type Claim =
  | { state: 'claimed'; id: number }
  | { state: 'running' }
  | { state: 'mismatch' }
  | { state: 'done'; status: number; body: string };

/** A claim whose request never finished (its process died) is given up after this long. */
export const ABANDONED_AFTER_MS = 5 * 60_000;
export const KEPT_FOR_MS = 24 * 60 * 60_000;

/**
 * Claims (token, key) for one request: the unique key lets exactly one of several concurrent
 * requests insert the row; the others read what it holds. An expired or abandoned record is removed
 * (a guarded delete: only the row that was read) and the claim tried again.
 */
export async function claim(db: Knex, tokenId: number, key: string, fingerprint: string, now: Date): Promise<Claim> {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const [id] = await retryOnConflict(
        () =>
          db('api_idempotency_keys').insert({
            token_id: tokenId,
            idempotency_key: key,
            fingerprint,
            status: null,
            body: null,
            created_at: now,
            expires_at: new Date(now.getTime() + KEPT_FOR_MS),
          }),
        db,
      );
      return { state: 'claimed', id: Number(id) };
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
    }
    const row = await db('api_idempotency_keys').where({ token_id: tokenId, idempotency_key: key }).first();
    if (!row) continue;
    const status = row.status == null ? null : Number(row.status);
    const expired = toDate(row.expires_at)!.getTime() <= now.getTime();
    const abandoned = status === null && toDate(row.created_at)!.getTime() <= now.getTime() - ABANDONED_AFTER_MS;
    if (expired || abandoned) {
      await retryOnConflict(
        () =>
          db('api_idempotency_keys').where({ id: row.id, fingerprint: row.fingerprint, status: row.status }).delete(),
        db,
      );
      continue;
    }
    if (row.fingerprint !== fingerprint) return { state: 'mismatch' };
    if (status === null) return { state: 'running' };
    return { state: 'done', status, body: String(row.body) };
  }
  return { state: 'running' };
}

/** Stores the answer of the claimed request: replayed to the same key and request. */
export async function complete(db: Knex, id: number, status: number, body: string): Promise<void> {
  await retryOnConflict(() => db('api_idempotency_keys').where({ id }).update({ status, body }), db);
}

/** Gives the key up (the request was refused and changed nothing: the same key may run again). */
export async function release(db: Knex, id: number): Promise<void> {
  await retryOnConflict(() => db('api_idempotency_keys').where({ id }).whereNull('status').delete(), db);
}

/** Removes expired records; returns how many. */
export async function purgeExpired(db: Knex, now: Date): Promise<number> {
  return affected(await db('api_idempotency_keys').where('expires_at', '<=', now).delete());
}
