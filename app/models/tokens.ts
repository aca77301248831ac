import type { Knex } from 'knex';
import { affected, parseJson, toDate } from './normalise.ts';

/** Password-reset tokens and one-time codes: stored hashed, consumed with a guarded update. */

export async function insertResetToken(
  db: Knex,
  accountId: number,
  tokenHash: string,
  expiresAt: Date,
  ip: string | null,
  now: Date,
) {
  await db('password_reset_tokens').insert({
    account_id: accountId,
    token_hash: tokenHash,
    expires_at: expiresAt,
    requested_ip: ip,
    created_at: now,
  });
}

export async function findUsableResetToken(db: Knex, tokenHash: string, now: Date) {
  const row = await db('password_reset_tokens')
    .where({ token_hash: tokenHash })
    .whereNull('used_at')
    .where('expires_at', '>', now)
    .first();
  return row
    ? { id: Number(row.id), accountId: Number(row.account_id), expiresAt: toDate(row.expires_at)! }
    : undefined;
}

/** Marks the token used; true only for the one caller that wins (a link works once, even under races). */
export async function consumeResetToken(db: Knex, id: number, now: Date): Promise<boolean> {
  return (
    affected(
      await db('password_reset_tokens')
        .where({ id })
        .whereNull('used_at')
        .where('expires_at', '>', now)
        .update({ used_at: now }),
    ) === 1
  );
}

export async function invalidateResetTokens(db: Knex, accountId: number, now: Date) {
  await db('password_reset_tokens').where({ account_id: accountId }).whereNull('used_at').update({ used_at: now });
}

export async function insertOneTimeCode(
  db: Knex,
  purpose: string,
  codeHash: string,
  expiresAt: Date,
  now: Date,
  data: unknown = null,
) {
  await db('one_time_codes').insert({
    purpose,
    code_hash: codeHash,
    expires_at: expiresAt,
    created_at: now,
    data: data === null ? null : JSON.stringify(data),
  });
}

export async function findUsableOneTimeCode(db: Knex, purpose: string, codeHash: string, now: Date) {
  const row = await db('one_time_codes')
    .where({ purpose, code_hash: codeHash })
    .whereNull('used_at')
    .where('expires_at', '>', now)
    .first();
  return row ? { id: Number(row.id), data: parseJson<unknown>(row.data) } : undefined;
}

export async function consumeOneTimeCode(db: Knex, id: number, now: Date): Promise<boolean> {
  return (
    affected(
      await db('one_time_codes')
        .where({ id })
        .whereNull('used_at')
        .where('expires_at', '>', now)
        .update({ used_at: now }),
    ) === 1
  );
}

export async function invalidateOneTimeCodes(db: Knex, purpose: string, now: Date) {
  await db('one_time_codes').where({ purpose }).whereNull('used_at').update({ used_at: now });
}
