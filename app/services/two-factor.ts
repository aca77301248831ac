import type { Knex } from 'knex';
import * as accounts from '../models/accounts.ts';
import * as twoFactor from '../models/two-factor.ts';
import type { SecretBox } from '../crypto/secret-box.ts';
import { HttpError, ValidationError } from '../lib/errors.ts';
import { dummyPasswordHash, verifyPassword } from '../lib/passwords.ts';
import { hashToken } from '../lib/tokens.ts';
import {
  groupSecret,
  looksLikeRecoveryCode,
  matchTotp,
  newRecoveryCodes,
  newTotpSecret,
  normaliseRecoveryCode,
  qrCodeDataUrl,
  totpUri,
} from '../lib/totp.ts';
import { endOtherSessions, recordLogin, type AuthDeps } from './auth.ts';
import { throttledCode } from './throttles.ts';
import { recordAudit } from './audit.ts';
import type { Actor } from './context.ts';
import { inTransaction } from '../lib/transaction.ts';

/** Wrong codes per client and account (5 per 15 minutes) and per account from every client (20 an hour): throttles.ts. */
export {
  CODE_FAILURES_PER_ACCOUNT as TWO_FACTOR_FAILURES_PER_ACCOUNT,
  CODE_FAILURES_PER_CLIENT_AND_ACCOUNT as TWO_FACTOR_FAILURES_PER_CLIENT_AND_ACCOUNT,
} from './throttles.ts';

export interface TwoFactorDeps extends AuthDeps {
  secretBox: SecretBox;
}

/** Where a code was asked for, as the audit trail names it. */
type Purpose = 'login' | 'disable' | 'recovery_codes';
type Factor = { method: 'totp' } | { method: 'recovery_code'; recoveryCodesLeft: number };
type FailureReason = 'wrong_code' | 'reused_code' | 'wrong_password';

// The sealed secret only opens for its own account and use: copied to another row it is useless.
const storedContext = (accountId: number) => `totp:${accountId}`;
const setupContext = (accountId: number) => `totp-setup:${accountId}`;

const factorAudit = (f: Factor) =>
  f.method === 'totp'
    ? { secondFactor: 'totp' }
    : { secondFactor: 'recovery_code', recoveryCodesLeft: f.recoveryCodesLeft };

export interface TwoFactorStatus {
  enabledAt: Date | null;
  recoveryCodesLeft: number;
}

export async function twoFactorStatus({ db }: TwoFactorDeps, account: accounts.Account): Promise<TwoFactorStatus> {
  return {
    enabledAt: account.totpEnabledAt,
    recoveryCodesLeft: account.totpEnabledAt ? await twoFactor.countUnusedRecoveryCodes(db, account.id) : 0,
  };
}

/** Enrolment, step 1: a new secret, sealed for the session. The account is unchanged until a code confirms it. */
export function beginEnrolment({ secretBox }: TwoFactorDeps, account: accounts.Account): string {
  if (account.totpEnabledAt) throw new HttpError(409, 'twoFactor.alreadyOn');
  return secretBox.seal(newTotpSecret(), setupContext(account.id));
}

export interface EnrolmentView {
  /** The secret in groups of four, for typing it in by hand. */
  groupedSecret: string;
  qrCode: string;
}

/** What the enrolment page shows for a started set-up: the QR code of the otpauth URI and the secret. Null when the set-up is not this account's. */
export async function enrolmentView(
  { secretBox }: TwoFactorDeps,
  account: accounts.Account,
  sealedSetup: string,
  issuer: string,
): Promise<EnrolmentView | null> {
  const secret = secretBox.open(sealedSetup, setupContext(account.id));
  if (!secret) return null;
  return { groupedSecret: groupSecret(secret), qrCode: await qrCodeDataUrl(totpUri(issuer, account.email, secret)) };
}

/**
 * Enrolment, step 2: a current code from the app proves it holds the secret. Stores the secret
 * (sealed), turns TOTP on and returns the recovery codes, in clear this once (only hashes are kept).
 */
export async function confirmEnrolment(
  deps: TwoFactorDeps,
  actor: Actor,
  account: accounts.Account,
  sealedSetup: string,
  code: string,
): Promise<string[]> {
  const { db, clock, secretBox } = deps;
  if (account.totpEnabledAt) throw new HttpError(409, 'twoFactor.alreadyOn');
  const secret = secretBox.open(sealedSetup, setupContext(account.id));
  if (!secret) throw new HttpError(409, 'twoFactor.setup.expired');
  const now = clock.now();
  const step = await matchTotp(secret, code, now);
  if (step === null) throw new ValidationError({ code: 'twoFactor.codeWrong' });
  const codes = newRecoveryCodes();
  await inTransaction(db, async (trx) => {
    await twoFactor.enableTotp(trx, account.id, secretBox.seal(secret, storedContext(account.id)), step, now);
    await endOtherSessions(trx, actor, account.id);
    await twoFactor.replaceRecoveryCodes(trx, account.id, codes.map(hashToken), now);
    await recordAudit(trx, actor, now, {
      action: 'account.two_factor_enabled',
      objectType: 'account',
      objectId: account.id,
      after: { recoveryCodes: codes.length },
    });
  });
  return codes;
}

/** Login, second step: the account whose password was accepted, once its code is right. */
export async function completeLogin(
  deps: TwoFactorDeps,
  actor: Actor,
  accountId: number,
  code: string,
): Promise<accounts.Account> {
  const account = await accounts.findById(deps.db, accountId);
  if (!account || account.disabled || !account.totpEnabledAt) throw new HttpError(410, 'twoFactor.login.expired');
  return withSecondFactor(deps, actor, account, { code }, 'login', async (trx, now, factor) => {
    await recordLogin(trx, actor, account, now, factorAudit(factor));
    return account;
  });
}

/** Turns the second factor off: needs the current password and a code (or a recovery code). */
export async function disableTwoFactor(
  deps: TwoFactorDeps,
  actor: Actor,
  account: accounts.Account,
  password: string,
  code: string,
): Promise<void> {
  if (!account.totpEnabledAt) throw new HttpError(409, 'twoFactor.notOn');
  await withSecondFactor(deps, actor, account, { code, password }, 'disable', async (trx, now, factor) => {
    await twoFactor.disableTotp(trx, account.id, now);
    await endOtherSessions(trx, actor, account.id);
    await recordAudit(trx, actor, now, {
      action: 'account.two_factor_disabled',
      objectType: 'account',
      objectId: account.id,
      after: factorAudit(factor),
    });
  });
}

/** Replaces every recovery code with ten new ones (shown once); needs a code. */
export async function regenerateRecoveryCodes(
  deps: TwoFactorDeps,
  actor: Actor,
  account: accounts.Account,
  code: string,
): Promise<string[]> {
  if (!account.totpEnabledAt) throw new HttpError(409, 'twoFactor.notOn');
  const codes = newRecoveryCodes();
  await withSecondFactor(deps, actor, account, { code }, 'recovery_codes', async (trx, now, factor) => {
    await twoFactor.replaceRecoveryCodes(trx, account.id, codes.map(hashToken), now);
    await endOtherSessions(trx, actor, account.id);
    await recordAudit(trx, actor, now, {
      action: 'account.recovery_codes_regenerated',
      objectType: 'account',
      objectId: account.id,
      after: { ...factorAudit(factor), recoveryCodes: codes.length },
    });
  });
  return codes;
}

/**
 * The one path every code check takes: refuses while the client (or the account) is over its budget
 * (429), checks the password when one is asked for, then uses the code and runs `change` in one
 * transaction, so a code is spent only with the change it allowed. A wrong code counts against the
 * budget, is audited and comes back as a field error (422).
 */
async function withSecondFactor<T>(
  deps: TwoFactorDeps,
  actor: Actor,
  account: accounts.Account,
  input: { code: string; password?: string },
  purpose: Purpose,
  change: (trx: Knex, now: Date, factor: Factor) => Promise<T>,
): Promise<T> {
  const { db, clock } = deps;
  const who: Actor = { ...actor, accountId: account.id, label: account.email };
  const fail = (reason: FailureReason) =>
    recordAudit(db, who, clock.now(), {
      action: 'auth.two_factor_failed',
      objectType: 'account',
      objectId: account.id,
      after: { purpose, reason },
    });
  // Counted before it is checked (throttles.ts): however many arrive at once, at most the budget is checked.
  const outcome = await throttledCode(deps, actor, account, purpose, async () => {
    if (
      input.password !== undefined &&
      !(await verifyPassword(account.passwordHash ?? (await dummyPasswordHash()), input.password))
    )
      return { ok: false as const, reason: 'wrong_password' as const };
    const now = clock.now();
    return inTransaction(db, async (trx) => {
      const factor = await useSecondFactor(trx, deps.secretBox, account, input.code, now);
      if ('reason' in factor) return { ok: false as const, reason: factor.reason };
      return { ok: true as const, value: await change(trx, now, factor) };
    });
  });
  if (!outcome.ok) {
    await fail(outcome.reason);
    if (outcome.reason === 'wrong_password')
      throw new ValidationError({ current_password: 'validation.currentPasswordWrong' });
    throw new ValidationError({
      code: outcome.reason === 'reused_code' ? 'twoFactor.codeReused' : 'twoFactor.codeWrong',
    });
  }
  return outcome.value;
}

/** Spends a recovery code, or claims the time step of a TOTP code (a step is good once). */
async function useSecondFactor(
  trx: Knex,
  secretBox: SecretBox,
  account: accounts.Account,
  code: string,
  now: Date,
): Promise<Factor | { reason: FailureReason }> {
  if (looksLikeRecoveryCode(code)) {
    if (!(await twoFactor.useRecoveryCode(trx, account.id, hashToken(normaliseRecoveryCode(code)), now)))
      return { reason: 'wrong_code' };
    return { method: 'recovery_code', recoveryCodesLeft: await twoFactor.countUnusedRecoveryCodes(trx, account.id) };
  }
  const secret = account.totpSecret ? secretBox.open(account.totpSecret, storedContext(account.id)) : null;
  // A secret that does not open means a lost or replaced DATA_DIR/secret-box.key: recovery codes still work.
  if (!secret)
    throw new Error(`the TOTP secret of account ${account.id} cannot be opened with this server's secret-box key`);
  const step = await matchTotp(secret, code, now);
  if (step === null) return { reason: 'wrong_code' };
  if (!(await twoFactor.claimTotpStep(trx, account.id, step))) return { reason: 'reused_code' };
  return { method: 'totp' };
}
