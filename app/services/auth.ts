import type { TFunction } from 'i18next';
import type { Knex } from 'knex';
import * as accounts from '../models/accounts.ts';
import * as tokens from '../models/tokens.ts';
import { dummyPasswordHash, hashPassword, verifyPassword } from '../lib/passwords.ts';
import { hashToken, randomToken } from '../lib/tokens.ts';
import { RateLimiter, type RateRule } from '../lib/rate-limiter.ts';
import type { Mailer } from '../lib/mailer.ts';
import { HttpError, ValidationError } from '../lib/errors.ts';
import { recordAudit } from './audit.ts';
import type { Actor, ServiceDeps } from './context.ts';
import { inTransaction } from '../lib/transaction.ts';

/** Failed logins per client and address: the client is slowed, the account stays usable for others. */
export const LOGIN_FAILURES_PER_CLIENT_AND_EMAIL: RateRule = { limit: 5, windowMs: 15 * 60_000 };
/** Failed logins per client across all addresses (password spraying). */
export const LOGIN_FAILURES_PER_CLIENT: RateRule = { limit: 30, windowMs: 15 * 60_000 };
export const RESET_REQUESTS_PER_CLIENT: RateRule = { limit: 10, windowMs: 15 * 60_000 };
export const RESET_REQUESTS_PER_EMAIL: RateRule = { limit: 3, windowMs: 60 * 60_000 };
export const RESET_LINK_MINUTES = 60;

export function rateLimited(retryAfterSeconds: number): HttpError {
  return new HttpError(429, 'errors.tooManyRequests', { 'Retry-After': String(retryAfterSeconds) });
}

export interface AuthDeps extends ServiceDeps {
  limiter: RateLimiter;
}

export type LoginResult = { ok: true; account: accounts.Account } | { ok: false };

/** Checks credentials. Throws 429 while this client is over its failure budget. */
export async function authenticate({ db, clock, limiter }: AuthDeps, actor: Actor, email: string, password: string): Promise<LoginResult> {
  const ip = actor.ip ?? 'unknown';
  const pairKey = RateLimiter.key('login-failures', ip, accounts.normaliseEmail(email));
  const clientKey = RateLimiter.key('login-failures-client', ip);
  const [pair, client] = await Promise.all([limiter.peek(pairKey), limiter.peek(clientKey)]);
  const blocked = pair.hits >= LOGIN_FAILURES_PER_CLIENT_AND_EMAIL.limit ? pair : client.hits >= LOGIN_FAILURES_PER_CLIENT.limit ? client : null;
  if (blocked) {
    await recordAudit(db, { ...actor, label: accounts.normaliseEmail(email) }, clock.now(), { action: 'auth.login_rate_limited', after: { email: accounts.normaliseEmail(email) } });
    throw rateLimited(blocked.retryAfterSeconds);
  }

  const account = await accounts.findByEmail(db, email);
  const valid = await verifyPassword(account?.passwordHash ?? (await dummyPasswordHash()), password);
  const now = clock.now();
  if (!account || !valid || account.disabled) {
    await limiter.hit(pairKey, LOGIN_FAILURES_PER_CLIENT_AND_EMAIL);
    await limiter.hit(clientKey, LOGIN_FAILURES_PER_CLIENT);
    await recordAudit(db, { ...actor, accountId: account?.id ?? null, label: accounts.normaliseEmail(email) }, now, {
      action: 'auth.login_failed',
      objectType: account ? 'account' : undefined,
      objectId: account?.id,
      after: { email: accounts.normaliseEmail(email), reason: !account ? 'unknown_email' : account.disabled ? 'disabled' : 'wrong_password' },
    });
    return { ok: false };
  }
  await limiter.reset(pairKey);
  if (account.totpEnabledAt) {
    // The password was right, but the login completes (and is audited as auth.login) after the second factor.
    await recordAudit(db, { ...actor, accountId: account.id, label: account.email }, now, { action: 'auth.two_factor_required', objectType: 'account', objectId: account.id });
    return { ok: true, account };
  }
  await inTransaction(db, (trx) => recordLogin(trx, actor, account, now));
  return { ok: true, account };
}

/** What a completed login writes: the last-login time and the `auth.login` event (pass the transaction). */
export async function recordLogin(trx: Knex, actor: Actor, account: accounts.Account, now: Date, after?: Record<string, unknown>): Promise<void> {
  await accounts.update(trx, account.id, { lastLoginAt: now }, now);
  await recordAudit(trx, { ...actor, accountId: account.id, label: account.email }, now, { action: 'auth.login', objectType: 'account', objectId: account.id, after });
}

export async function recordLogout({ db, clock }: ServiceDeps, actor: Actor): Promise<void> {
  await recordAudit(db, actor, clock.now(), { action: 'auth.logout', objectType: 'account', objectId: actor.accountId });
}

export async function changePassword({ db, clock }: ServiceDeps, actor: Actor, accountId: number, currentPassword: string, newPassword: string): Promise<void> {
  const account = await accounts.findById(db, accountId);
  if (!account || !(await verifyPassword(account.passwordHash, currentPassword))) {
    throw new ValidationError({ current_password: 'validation.currentPasswordWrong' });
  }
  if (currentPassword === newPassword) throw new ValidationError({ password: 'validation.passwordUnchanged' });
  const passwordHash = await hashPassword(newPassword);
  const now = clock.now();
  await inTransaction(db, async (trx) => {
    await accounts.update(trx, accountId, { passwordHash, mustChangePassword: false }, now);
    await tokens.invalidateResetTokens(trx, accountId, now);
    await recordAudit(trx, actor, now, {
      action: account.mustChangePassword ? 'account.initial_password_changed' : 'account.password_changed',
      objectType: 'account',
      objectId: accountId,
      before: { mustChangePassword: account.mustChangePassword },
      after: { mustChangePassword: false },
    });
  });
}

export async function updateProfile({ db, clock }: ServiceDeps, actor: Actor, accountId: number, changes: { name: string; language: string }): Promise<void> {
  const now = clock.now();
  await inTransaction(db, async (trx) => {
    const before = (await accounts.findById(trx, accountId))!;
    await accounts.update(trx, accountId, changes, now);
    await recordAudit(trx, actor, now, {
      action: 'account.profile_updated',
      objectType: 'account',
      objectId: accountId,
      before: { name: before.name, language: before.language },
      after: changes,
    });
  });
}

/**
 * Starts a password reset. The caller answers the same whether the address exists or not; only the
 * client's request rate can change the answer (429).
 */
export async function requestPasswordReset(
  deps: AuthDeps & LinkMailDeps,
  actor: Actor,
  email: string,
): Promise<void> {
  const { db, clock, limiter } = deps;
  const address = accounts.normaliseEmail(email);
  for (const [key, rule] of [
    [RateLimiter.key('reset-client', actor.ip ?? 'unknown'), RESET_REQUESTS_PER_CLIENT],
    [RateLimiter.key('reset-email', address), RESET_REQUESTS_PER_EMAIL],
  ] as const) {
    const state = await limiter.hit(key, rule);
    if (state.hits > rule.limit) {
      await recordAudit(db, { ...actor, label: address }, clock.now(), { action: 'auth.password_reset_rate_limited', after: { email: address } });
      throw rateLimited(state.retryAfterSeconds);
    }
  }
  const account = await accounts.findByEmail(db, address);
  const now = clock.now();
  if (!account || account.disabled) {
    await recordAudit(db, { ...actor, label: address }, now, { action: 'auth.password_reset_requested', after: { email: address, known: false } });
    return;
  }
  await inTransaction(db, async (trx) => {
    await recordAudit(trx, { ...actor, label: address }, now, { action: 'auth.password_reset_requested', objectType: 'account', objectId: account.id, after: { email: address, known: true } });
  });
  await mailAccountLink(deps, account, 'reset');
}

export const INVITE_LINK_DAYS = 7;

export interface LinkMailDeps extends ServiceDeps {
  mailer: Mailer;
  baseUrl: string;
  translatorFor: (lng: string) => TFunction;
}

/**
 * E-mails a single-use link to choose a password: `reset` (valid 60 minutes) for a forgotten
 * password, `invite` (valid 7 days) for an account the vendor created.
 */
export async function mailAccountLink(deps: LinkMailDeps, account: accounts.Account, kind: 'reset' | 'invite'): Promise<void> {
  const now = deps.clock.now();
  const token = randomToken();
  const minutes = kind === 'reset' ? RESET_LINK_MINUTES : INVITE_LINK_DAYS * 24 * 60;
  await tokens.insertResetToken(deps.db, account.id, hashToken(token), new Date(now.getTime() + minutes * 60_000), null, now);
  const t = deps.translatorFor(account.language);
  await deps.mailer.send({
    to: account.email,
    subject: t(`mail.${kind}.subject`),
    text: t(`mail.${kind}.body`, { name: account.name, link: `${deps.baseUrl}/password/reset/${token}`, minutes, days: INVITE_LINK_DAYS }),
  });
}

export async function isResetTokenUsable({ db, clock }: ServiceDeps, token: string): Promise<boolean> {
  return !!(await tokens.findUsableResetToken(db, hashToken(token), clock.now()));
}

/** Sets the new password and burns the link; a used or expired link throws 410. */
export async function resetPassword({ db, clock }: ServiceDeps, actor: Actor, token: string, newPassword: string): Promise<accounts.Account> {
  const passwordHash = await hashPassword(newPassword);
  const now = clock.now();
  const accountId = await inTransaction(db, async (trx) => {
    const found = await tokens.findUsableResetToken(trx, hashToken(token), now);
    if (!found || !(await tokens.consumeResetToken(trx, found.id, now))) throw new HttpError(410, 'auth.reset.linkInvalid');
    await accounts.update(trx, found.accountId, { passwordHash, mustChangePassword: false }, now);
    await tokens.invalidateResetTokens(trx, found.accountId, now);
    const account = (await accounts.findById(trx, found.accountId))!;
    await recordAudit(trx, { ...actor, accountId: account.id, label: account.email }, now, { action: 'account.password_reset', objectType: 'account', objectId: account.id });
    return account.id;
  });
  return (await accounts.findById(db, accountId))!;
}
