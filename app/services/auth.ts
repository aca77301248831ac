import crypto from 'node:crypto';
import type { Knex } from 'knex';
import * as accounts from '../models/accounts.ts';
import * as tokens from '../models/tokens.ts';
import * as sessions from '../models/sessions.ts';
import { hashPassword, verifyPassword } from '../lib/passwords.ts';
import { hashToken, randomToken } from '../lib/tokens.ts';
import { RateLimiter, clientOf, type RateRule } from '../lib/rate-limiter.ts';
import type { Delivery } from '../lib/mailer.ts';
import { HttpError, ValidationError } from '../lib/errors.ts';
import { checkPassword, rateLimited, throttleKeys, type OnAccountCeiling } from './throttles.ts';
import { recordAudit } from './audit.ts';
import type { Actor, ServiceDeps } from './context.ts';
import { inTransaction } from '../lib/transaction.ts';
import { type MailDeps, sendMail } from './mail.ts';
import { type LdapDeps, ldapAuthority } from './ldap.ts';

export const RESET_REQUESTS_PER_CLIENT: RateRule = { limit: 10, windowMs: 15 * 60_000 };
export const RESET_REQUESTS_PER_EMAIL: RateRule = { limit: 3, windowMs: 60 * 60_000 };
export const RESET_LINK_MINUTES = 60;
export const UNLOCK_LINK_MINUTES = 60;

export { rateLimited } from './throttles.ts';

export interface AuthDeps extends ServiceDeps {
  limiter: RateLimiter;
}

export type LoginResult = { ok: true; account: accounts.Account } | { ok: false };

/** The account-wide ceiling was crossed: the owner gets a link that lifts it (docs/decisions.md, "Throttles"). */
export const mailUnlockLink =
  (deps: LinkMailDeps): OnAccountCeiling =>
  async (account) => {
    const now = deps.clock.now();
    const token = randomToken();
    await tokens.insertOneTimeCode(
      deps.db,
      'login_unlock',
      hashToken(token),
      new Date(now.getTime() + UNLOCK_LINK_MINUTES * 60_000),
      now,
      { accountId: account.id },
    );
    await recordAudit(deps.db, { accountId: account.id, label: account.email, ip: null, requestId: null }, now, {
      action: 'auth.account_throttled',
      objectType: 'account',
      objectId: account.id,
      after: { unlockLinkMinutes: UNLOCK_LINK_MINUTES },
    });
    await sendMail(deps, 'unlock', {
      to: account.email,
      language: account.language,
      data: (url) => ({
        name: account.name,
        link: url('account', (p) => p.unlockLogin(token)),
        minutes: UNLOCK_LINK_MINUTES,
      }),
    });
  };

/**
 * Checks login credentials (throttles.ts checkPassword; the vendor's LDAP directory for staff
 * addresses, services/ldap.ts). Throws 429 while a budget is spent, 503/403 for a directory refusal.
 */
export async function authenticate(
  deps: AuthDeps & LinkMailDeps & LdapDeps,
  actor: Actor,
  email: string,
  password: string,
): Promise<LoginResult> {
  const account = await checkPassword(deps, actor, email, password, mailUnlockLink(deps), ldapAuthority(deps, actor));
  const now = deps.clock.now();
  if (!account || account.disabled) {
    if (account)
      await recordAudit(deps.db, { ...actor, accountId: account.id, label: account.email }, now, {
        action: 'auth.login_failed',
        objectType: 'account',
        objectId: account.id,
        after: { email: account.email, reason: 'disabled' },
      });
    return { ok: false };
  }
  if (account.totpEnabledAt) {
    // The password was right, but the login completes (and is audited as auth.login) after the second factor.
    await recordAudit(deps.db, { ...actor, accountId: account.id, label: account.email }, now, {
      action: 'auth.two_factor_required',
      objectType: 'account',
      objectId: account.id,
    });
    return { ok: true, account };
  }
  await inTransaction(deps.db, (trx) =>
    recordLogin(trx, actor, account, now, account.directoryDn ? { via: 'ldap' } : undefined),
  );
  return { ok: true, account };
}

/** Lifts the account-wide throttle with the e-mailed link (single use). False when the link is used or expired. */
export async function unlockAccount(deps: AuthDeps, actor: Actor, token: string): Promise<boolean> {
  const now = deps.clock.now();
  const account = await inTransaction(deps.db, async (trx) => {
    const code = await tokens.findUsableOneTimeCode(trx, 'login_unlock', hashToken(token), now);
    if (!code || !(await tokens.consumeOneTimeCode(trx, code.id, now))) return null;
    const found = await accounts.findById(trx, (code.data as { accountId: number }).accountId);
    if (found)
      await recordAudit(trx, { ...actor, accountId: found.id, label: found.email }, now, {
        action: 'auth.account_unlocked',
        objectType: 'account',
        objectId: found.id,
      });
    return found ?? null;
  });
  if (account) await deps.limiter.reset(throttleKeys.passwordAccount(account.email));
  return account !== null;
}

export async function isUnlockTokenUsable({ db, clock }: ServiceDeps, token: string): Promise<boolean> {
  return !!(await tokens.findUsableOneTimeCode(db, 'login_unlock', hashToken(token), clock.now()));
}

/**
 * Credentials changed (password, one-time password, reset, second factor, disabled): every other
 * session of the account ends. The acting session stays when it is the account's own (the
 * controller renews its id); a manager's or admin's change ends all of the account's sessions.
 */
export async function endOtherSessions(db: Knex, actor: Actor, accountId: number): Promise<number> {
  return sessions.endForAccount(db, accountId, actor.accountId === accountId ? (actor.sessionId ?? null) : null);
}

export interface SessionView {
  /** A name for the session in pages and forms: a hash of its id (the id itself is a credential). */
  id: string;
  current: boolean;
  client: sessions.SessionClient | null;
  since: Date | null;
  lastSeenAt: Date;
}

const sessionHandle = (sid: string) => crypto.createHash('sha256').update(sid).digest('base64url').slice(0, 16);

/**
 * The account's live sessions for its own page; `idleMs` turns the stored expiry back into "last
 * seen". The current session's client is the live one (it may not have been stored yet).
 */
export async function sessionsOf(
  { db, clock }: ServiceDeps,
  actor: Actor,
  accountId: number,
  idleMs: number,
  currentClient: sessions.SessionClient | null,
): Promise<SessionView[]> {
  return (await sessions.listForAccount(db, accountId, clock.now())).map((s) => ({
    id: sessionHandle(s.sid),
    current: s.sid === actor.sessionId,
    client: s.sid === actor.sessionId ? (currentClient ?? s.client) : s.client,
    since: s.since,
    lastSeenAt: new Date(s.expiresAt.getTime() - idleMs),
  }));
}

/** Ends the account's other sessions ("sign out everywhere else"), or one of them by its handle. */
export async function endSessions(
  { db, clock }: ServiceDeps,
  actor: Actor,
  accountId: number,
  which: 'others' | string,
): Promise<number> {
  const now = clock.now();
  return inTransaction(db, async (trx) => {
    let ended = 0;
    if (which === 'others') ended = await endOtherSessions(trx, actor, accountId);
    else {
      const target = (await sessions.listForAccount(trx, accountId, now, 500)).find(
        (s) => sessionHandle(s.sid) === which && s.sid !== actor.sessionId,
      );
      if (target && (await sessions.endOne(trx, accountId, target.sid))) ended = 1;
    }
    if (ended)
      await recordAudit(trx, actor, now, {
        action: 'account.sessions_ended',
        objectType: 'account',
        objectId: accountId,
        after: { sessions: ended },
      });
    return ended;
  });
}

/** What a completed login writes: the last-login time and the `auth.login` event (pass the transaction). */
export async function recordLogin(
  trx: Knex,
  actor: Actor,
  account: accounts.Account,
  now: Date,
  after?: Record<string, unknown>,
): Promise<void> {
  await accounts.update(trx, account.id, { lastLoginAt: now }, now);
  await recordAudit(trx, { ...actor, accountId: account.id, label: account.email }, now, {
    action: 'auth.login',
    objectType: 'account',
    objectId: account.id,
    after,
  });
}

export async function recordLogout({ db, clock }: ServiceDeps, actor: Actor): Promise<void> {
  await recordAudit(db, actor, clock.now(), {
    action: 'auth.logout',
    objectType: 'account',
    objectId: actor.accountId,
  });
}

export async function changePassword(
  { db, clock }: ServiceDeps,
  actor: Actor,
  accountId: number,
  currentPassword: string,
  newPassword: string,
): Promise<void> {
  const account = await accounts.findById(db, accountId);
  // A directory (LDAP) account has no local password: the directory holds it (services/ldap.ts).
  if (account?.directoryDn) throw new HttpError(409, 'ldap.passwordInDirectory');
  if (!account || !(await verifyPassword(account.passwordHash, currentPassword))) {
    throw new ValidationError({ current_password: 'validation.currentPasswordWrong' });
  }
  if (currentPassword === newPassword) throw new ValidationError({ password: 'validation.passwordUnchanged' });
  const passwordHash = await hashPassword(newPassword);
  const now = clock.now();
  await inTransaction(db, async (trx) => {
    await accounts.update(trx, accountId, { passwordHash, mustChangePassword: false }, now);
    await tokens.invalidateResetTokens(trx, accountId, now);
    await endOtherSessions(trx, actor, accountId);
    await recordAudit(trx, actor, now, {
      action: account.mustChangePassword ? 'account.initial_password_changed' : 'account.password_changed',
      objectType: 'account',
      objectId: accountId,
      before: { mustChangePassword: account.mustChangePassword },
      after: { mustChangePassword: false },
    });
  });
}

export async function updateProfile(
  { db, clock }: ServiceDeps,
  actor: Actor,
  accountId: number,
  changes: { name: string; language: string },
): Promise<void> {
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
export async function requestPasswordReset(deps: AuthDeps & LinkMailDeps, actor: Actor, email: string): Promise<void> {
  const { db, clock, limiter } = deps;
  const address = accounts.normaliseEmail(email);
  for (const [key, rule] of [
    [RateLimiter.key('reset-client', clientOf(actor.ip)), RESET_REQUESTS_PER_CLIENT],
    [RateLimiter.key('reset-email', address), RESET_REQUESTS_PER_EMAIL],
  ] as const) {
    const state = await limiter.hit(key, rule);
    if (state.hits > rule.limit) {
      await recordAudit(db, { ...actor, label: address }, clock.now(), {
        action: 'auth.password_reset_rate_limited',
        after: { email: address },
      });
      throw rateLimited(state.retryAfterSeconds);
    }
  }
  const account = await accounts.findByEmail(db, address);
  const now = clock.now();
  // A directory account has no local password to reset: the directory holds it (services/ldap.ts).
  if (!account || account.disabled || account.directoryDn) {
    await recordAudit(db, { ...actor, label: address }, now, {
      action: 'auth.password_reset_requested',
      after: { email: address, known: false, ...(account?.directoryDn ? { directory: true } : {}) },
    });
    return;
  }
  await inTransaction(db, async (trx) => {
    await recordAudit(trx, { ...actor, label: address }, now, {
      action: 'auth.password_reset_requested',
      objectType: 'account',
      objectId: account.id,
      after: { email: address, known: true },
    });
  });
  await mailAccountLink(deps, account, 'reset');
}

export const INVITE_LINK_DAYS = 7;

/** What sends a mail (app/services/mail.ts): `origin`, the host a request came on, brands it. */
export interface LinkMailDeps extends ServiceDeps, MailDeps {}

/**
 * E-mails a single-use link to choose a password: `reset` (valid 60 minutes) for a forgotten
 * password, `invite` (valid 7 days) for an account the vendor created.
 */
export async function mailAccountLink(
  deps: LinkMailDeps,
  account: accounts.Account,
  kind: 'reset' | 'invite',
  causedBy: number | null = null,
): Promise<Delivery> {
  const now = deps.clock.now();
  const token = randomToken();
  const minutes = kind === 'reset' ? RESET_LINK_MINUTES : INVITE_LINK_DAYS * 24 * 60;
  await tokens.insertResetToken(
    deps.db,
    account.id,
    hashToken(token),
    new Date(now.getTime() + minutes * 60_000),
    null,
    now,
  );
  return sendMail(
    deps,
    kind,
    {
      to: account.email,
      language: account.language,
      data: (url) => ({
        name: account.name,
        link: url('account', (p) => p.resetPassword(token)),
        minutes,
        days: INVITE_LINK_DAYS,
      }),
    },
    { causedBy },
  );
}

export async function isResetTokenUsable({ db, clock }: ServiceDeps, token: string): Promise<boolean> {
  return !!(await tokens.findUsableResetToken(db, hashToken(token), clock.now()));
}

/** Sets the new password and burns the link; a used or expired link throws 410. */
export async function resetPassword(
  { db, clock, limiter }: AuthDeps,
  actor: Actor,
  token: string,
  newPassword: string,
): Promise<{ account: accounts.Account; signIn: boolean }> {
  const passwordHash = await hashPassword(newPassword);
  const now = clock.now();
  const { accountId, signIn } = await inTransaction(db, async (trx) => {
    const found = await tokens.findUsableResetToken(trx, hashToken(token), now);
    if (!found || !(await tokens.consumeResetToken(trx, found.id, now)))
      throw new HttpError(410, 'auth.reset.linkInvalid');
    const before = (await accounts.findById(trx, found.accountId))!;
    // An invitation: the account never had a password. Choosing one through the mailed link signs the
    // person in, unless a second factor is set (it still must be given at the login form).
    const invitation = before.passwordHash === null;
    const signIn = invitation && !before.disabled && !before.totpEnabledAt;
    await accounts.update(trx, found.accountId, { passwordHash, mustChangePassword: false }, now);
    await tokens.invalidateResetTokens(trx, found.accountId, now);
    await endOtherSessions(trx, actor, found.accountId);
    await recordAudit(trx, { ...actor, accountId: before.id, label: before.email }, now, {
      action: 'account.password_reset',
      objectType: 'account',
      objectId: before.id,
      after: invitation ? { invitation: true } : undefined,
    });
    if (signIn) await recordLogin(trx, actor, before, now, { via: 'invitation' });
    return { accountId: before.id, signIn };
  });
  const account = (await accounts.findById(db, accountId))!;
  // Whoever reset the password holds the mailbox: the account-wide sign-in ceiling is lifted too.
  await limiter.reset(throttleKeys.passwordAccount(account.email));
  return { account, signIn };
}

/** Whether a usable password link belongs to an invitation (an account that has never had a password). */
export async function isInvitationToken({ db, clock }: ServiceDeps, token: string): Promise<boolean> {
  const found = await tokens.findUsableResetToken(db, hashToken(token), clock.now());
  return !!found && (await accounts.findById(db, found.accountId))?.passwordHash === null;
}
