import type { Knex } from 'knex';
import { affected } from './normalise.ts';

/** Turns TOTP on with its (sealed) secret; the confirming code's step counts as used. */
export async function enableTotp(
  db: Knex,
  accountId: number,
  sealedSecret: string,
  usedStep: number,
  now: Date,
): Promise<void> {
  await db('accounts')
    .where({ id: accountId })
    .update({ totp_secret: sealedSecret, totp_enabled_at: now, totp_last_step: usedStep, updated_at: now });
}

export async function disableTotp(db: Knex, accountId: number, now: Date): Promise<void> {
  await db('accounts')
    .where({ id: accountId })
    .update({ totp_secret: null, totp_enabled_at: null, totp_last_step: null, updated_at: now });
  await db('recovery_codes').where({ account_id: accountId }).delete();
}

/**
 * Records `step` as used when it is later than the last one used. False when it is not: the code was
 * already used (or an older one arrives late). One guarded UPDATE, so two processes cannot both win.
 */
export async function claimTotpStep(db: Knex, accountId: number, step: number): Promise<boolean> {
  const changed = await db('accounts')
    .where({ id: accountId })
    .andWhere((q) => q.whereNull('totp_last_step').orWhere('totp_last_step', '<', step))
    .update({ totp_last_step: step });
  return affected(changed) === 1;
}

/** Replaces every recovery code of the account (used or not) with the given hashes. */
export async function replaceRecoveryCodes(
  db: Knex,
  accountId: number,
  codeHashes: string[],
  now: Date,
): Promise<void> {
  await db('recovery_codes').where({ account_id: accountId }).delete();
  await db('recovery_codes').insert(
    codeHashes.map((codeHash) => ({ account_id: accountId, code_hash: codeHash, created_at: now })),
  );
}

/** Marks the unused code with this hash as used; false when there is none (wrong or already used). */
export async function useRecoveryCode(db: Knex, accountId: number, codeHash: string, now: Date): Promise<boolean> {
  const changed = await db('recovery_codes')
    .where({ account_id: accountId, code_hash: codeHash })
    .whereNull('used_at')
    .update({ used_at: now });
  return affected(changed) >= 1;
}

export async function countUnusedRecoveryCodes(db: Knex, accountId: number): Promise<number> {
  const row = await db('recovery_codes')
    .where({ account_id: accountId })
    .whereNull('used_at')
    .count({ n: '*' })
    .first();
  return Number(row?.n ?? 0);
}
