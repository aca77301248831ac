import * as accounts from '../models/accounts.ts';
import * as sessions from '../models/sessions.ts';
import * as twoFactor from '../models/two-factor.ts';
import * as tokens from '../models/tokens.ts';
import { HttpError } from '../lib/errors.ts';
import { hashToken, randomToken } from '../lib/tokens.ts';
import { inTransaction } from '../lib/transaction.ts';
import { recordAudit } from './audit.ts';
import { RESET_LINK_MINUTES } from './auth.ts';
import type { Actor, ServiceDeps } from './context.ts';

/**
 * What the operator CLI (`npm run portico -- …`, app/cli/portico.ts) does to accounts, for someone
 * with shell access to the installation and no console login: a new administrator, or a way back in
 * for a locked-out one. Both hand out a one-time password link (the password-reset tokens of
 * services/auth.ts, stored hashed, consumed by the /password/reset page), never a password on a
 * command line; both are audited with the operator's actor label.
 */

/** The actor of everything the CLI does: no account, labelled so in the audit trail. */
export const operatorActor = (): Actor => ({ accountId: null, label: 'operator CLI', ip: null, requestId: null });

/** How long the link `create-admin` prints stays usable. */
export const CREATE_ADMIN_LINK_HOURS = 24;

export interface NewAdmin {
  email: string;
  name: string;
  language: string;
}

/**
 * Creates an administrator without a password and returns a one-time link to choose one (the account
 * is an invitation: the first password signs in, unless a second factor is set later). An address
 * already in use is refused (409), nothing written.
 */
export async function createAdmin(
  { db, clock }: ServiceDeps,
  actor: Actor,
  admin: NewAdmin,
): Promise<{ account: accounts.Account; token: string; expiresAt: Date }> {
  const now = clock.now();
  const token = randomToken();
  const expiresAt = new Date(now.getTime() + CREATE_ADMIN_LINK_HOURS * 3600_000);
  const id = await inTransaction(db, async (trx) => {
    if (await accounts.findByEmail(trx, admin.email)) throw new HttpError(409, 'operator.emailTaken');
    const accountId = await accounts.insert(trx, { ...admin, passwordHash: null, role: 'admin' }, now);
    await tokens.insertResetToken(trx, accountId, hashToken(token), expiresAt, null, now);
    const created = (await accounts.findById(trx, accountId))!;
    await recordAudit(trx, actor, now, {
      action: 'operator.admin_created',
      objectType: 'account',
      objectId: accountId,
      after: { ...accounts.auditView(created), linkExpiresAt: expiresAt.toISOString() },
    });
    return accountId;
  });
  return { account: (await accounts.findById(db, id))!, token, expiresAt };
}

/**
 * A one-time link to choose a new password for an existing local account (valid as long as a
 * mailed reset link). Earlier unused links of the account stop working. A directory (LDAP) account
 * has no local password (409); a disabled one stays disabled, so no link for it either (409).
 */
export async function issuePasswordLink(
  { db, clock }: ServiceDeps,
  actor: Actor,
  email: string,
): Promise<{ account: accounts.Account; token: string; expiresAt: Date }> {
  const now = clock.now();
  const token = randomToken();
  const expiresAt = new Date(now.getTime() + RESET_LINK_MINUTES * 60_000);
  const account = await inTransaction(db, async (trx) => {
    const found = await accounts.findByEmail(trx, email);
    if (!found) throw new HttpError(404, 'operator.noSuchAccount');
    if (found.directoryDn) throw new HttpError(409, 'operator.directoryAccount');
    if (found.disabled) throw new HttpError(409, 'operator.accountDisabled');
    await tokens.invalidateResetTokens(trx, found.id, now);
    await tokens.insertResetToken(trx, found.id, hashToken(token), expiresAt, null, now);
    await recordAudit(trx, actor, now, {
      action: 'operator.password_link_issued',
      objectType: 'account',
      objectId: found.id,
      after: { email: found.email, role: found.role, linkExpiresAt: expiresAt.toISOString() },
    });
    return found;
  });
  return { account, token, expiresAt };
}

/**
 * For an account whose owner lost their authenticator and recovery codes: removes the second factor
 * (the TOTP secret and every recovery code) and ends all its sessions, so the password alone signs in
 * and the owner sets up a new authenticator. The password is not changed (combine with
 * `reset-password` when both are lost). No second factor to remove: 409, nothing written.
 */
export async function removeSecondFactor(
  { db, clock }: ServiceDeps,
  actor: Actor,
  email: string,
): Promise<{ account: accounts.Account; sessionsEnded: number }> {
  const now = clock.now();
  return inTransaction(db, async (trx) => {
    const found = await accounts.findByEmail(trx, email);
    if (!found) throw new HttpError(404, 'operator.noSuchAccount');
    if (!found.totpEnabledAt) throw new HttpError(409, 'operator.noSecondFactor');
    await twoFactor.disableTotp(trx, found.id, now);
    const sessionsEnded = await sessions.endForAccount(trx, found.id, null);
    await recordAudit(trx, actor, now, {
      action: 'operator.two_factor_removed',
      objectType: 'account',
      objectId: found.id,
      after: { email: found.email, role: found.role, sessionsEnded },
    });
    return { account: found, sessionsEnded };
  });
}
