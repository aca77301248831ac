import crypto from 'node:crypto';
import type { Knex } from 'knex';
import * as accounts from '../models/accounts.ts';
import * as licenses from '../models/licenses.ts';
import * as assignments from '../models/license-users.ts';
import * as devices from '../models/devices.ts';
import * as tokens from '../models/tokens.ts';
import { hashPassword } from '../lib/passwords.ts';
import { hashToken, randomToken } from '../lib/tokens.ts';
import { HttpError, ValidationError, notFound } from '../lib/errors.ts';
import { inTransaction } from '../lib/transaction.ts';
import { ownsEndUser } from '../policies/portal.ts';
import { auditedChange } from './changes.ts';
import { recordAudit, type AuditRecord } from './audit.ts';
import { mailAccountLink, type LinkMailDeps, endOtherSessions } from './auth.ts';
import type { Actor, ServiceDeps } from './context.ts';
import type { Delivery } from '../lib/mailer.ts';
import { sendMail } from './mail.ts';

/**
 * License users are portal accounts with role end_user, assigned to user-based licenses with an
 * activation limit of their own. New users get an e-mailed invitation (a link to set a password) or
 * a one-time password that the vendor passes on; either way they choose their own at first login.
 *
 * In the User Portal a manager acts only on accounts they own (policies/portal.ts ownsEndUser): an
 * existing account that reaches outside their orders is never linked silently but invited (a
 * single-use link its owner accepts), and nothing they see tells what an address belongs to.
 */

/**
 * Who acts in the User Portal (a manager, or an admin doing support): the account whose order scope
 * bounds the action. `null` is the vendor console, which is not bound by account ownership.
 */
export type PortalActor = Pick<accounts.Account, 'id' | 'role'> | null;

export const INVITATION_DAYS = 7;

/** A readable one-time password: 16 symbols without look-alikes (≈ 90 bits). */
export function oneTimePassword(): string {
  const alphabet = 'abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789';
  return Array.from(crypto.randomBytes(16), (b) => alphabet[b % alphabet.length])
    .join('')
    .replace(/(.{4})(?!$)/g, '$1-');
}

export type CredentialMode = 'email' | 'password';

export interface NewLicenseUser {
  email: string;
  name: string;
  language: string;
  credentials: CredentialMode;
}

/** Creates a license user; returns the one-time password when that mode was chosen (shown once, never stored). */
export async function createLicenseUser(
  deps: LinkMailDeps,
  actor: Actor,
  input: NewLicenseUser,
): Promise<{ id: number; oneTimePassword: string | null; delivery: Delivery | null }> {
  const password = input.credentials === 'password' ? oneTimePassword() : null;
  const passwordHash = password ? await hashPassword(password) : null;
  const account = await auditedChange(deps, actor, async (trx, now) => {
    if (await accounts.findByEmail(trx, input.email)) throw new ValidationError({ email: 'validation.emailTaken' });
    const id = await accounts.insert(
      trx,
      {
        email: input.email,
        name: input.name,
        language: input.language,
        role: 'end_user',
        passwordHash,
        mustChangePassword: !!password,
      },
      now,
    );
    const created = (await accounts.findById(trx, id))!;
    return {
      result: created,
      audit: {
        action: 'license_user.created',
        objectType: 'account',
        objectId: id,
        after: { ...accounts.auditView(created), credentials: input.credentials },
      },
    };
  });
  const delivery = password ? null : await mailAccountLink(deps, account, 'invite', actor.accountId);
  return { id: account.id, oneTimePassword: password, delivery };
}

async function userBasedLicense(trx: Knex, licenseId: number, now: Date) {
  const license = await licenses.findById(trx, licenseId, now);
  if (!license) throw notFound();
  if (license.authorizationMethod !== 'user') throw new HttpError(409, 'licenseUsers.notUserBased');
  return license;
}

export async function assignInTransaction(
  trx: Knex,
  licenseId: number,
  accountId: number,
  maxActivations: number,
  now: Date,
): Promise<void> {
  if (await assignments.find(trx, licenseId, accountId))
    throw new ValidationError({ email: 'licenseUsers.alreadyAssigned' });
  await assignments.insert(trx, licenseId, accountId, maxActivations, now);
}

/**
 * What naming an address for a license led to: the account assigned (created first when the address
 * had none), or a pending invitation. `mail` is false for an invitation that can never be accepted
 * (the address belongs to an admin, a manager or a disabled account): it exists only so that the
 * manager's view does not differ from a real one, and nobody is e-mailed.
 */
export type Placement =
  | { kind: 'assigned'; account: accounts.Account; created: boolean }
  | {
      kind: 'invited';
      account: accounts.Account;
      invitationId: number;
      token: string;
      licenseId: number;
      mail: boolean;
      invitedBy: number | null;
    };

export interface PlacementInput {
  email: string;
  name: string | null;
  language: string;
  maxActivations: number;
}

/**
 * Inside the caller's transaction: gives license `licenseId` to the address. The console and admins
 * assign any end user directly (another role is a form error, as before). A manager assigns a new
 * address or an account they own; for every other existing account — an end user of someone
 * else's orders, a disabled one, an admin, a manager — the same steps make a pending invitation,
 * so that the answer and the work done do not depend on what the address belongs to.
 */
export async function placeUser(
  trx: Knex,
  by: PortalActor,
  licenseId: number,
  input: PlacementInput,
  now: Date,
): Promise<Placement> {
  const existing = await accounts.findByEmail(trx, input.email);
  if (!existing) {
    const id = await accounts.insert(
      trx,
      {
        email: input.email,
        name: input.name || input.email.split('@')[0]!,
        passwordHash: null,
        role: 'end_user',
        language: input.language,
      },
      now,
    );
    await assignments.insert(trx, licenseId, id, input.maxActivations, now);
    return { kind: 'assigned', account: (await accounts.findById(trx, id))!, created: true };
  }
  if (!by || by.role === 'admin') {
    if (existing.role !== 'end_user') throw new ValidationError({ email: 'licenseUsers.emailUsedByOtherRole' });
    await assignInTransaction(trx, licenseId, existing.id, input.maxActivations, now);
    return { kind: 'assigned', account: existing, created: false };
  }
  const owned = await ownsEndUser(trx, by, existing.id);
  // Already on this license: the manager sees that row in the list anyway, so saying so tells nothing.
  if (await assignments.find(trx, licenseId, existing.id))
    throw new ValidationError({ email: 'licenseUsers.alreadyAssigned' });
  if (owned && !existing.disabled) {
    await assignments.insert(trx, licenseId, existing.id, input.maxActivations, now);
    return { kind: 'assigned', account: existing, created: false };
  }
  const token = randomToken();
  await assignments.removePendingInvitations(trx, licenseId, existing.id);
  const invitationId = await assignments.insertInvitation(
    trx,
    {
      licenseId,
      accountId: existing.id,
      maxActivations: input.maxActivations,
      tokenHash: hashToken(token),
      invitedBy: by.id,
      expiresAt: new Date(now.getTime() + INVITATION_DAYS * 86_400_000),
    },
    now,
  );
  return {
    kind: 'invited',
    account: existing,
    invitationId,
    token,
    licenseId,
    mail: existing.role === 'end_user' && !existing.disabled,
    invitedBy: by.id,
  };
}

/** The audit record of a placement on one license. */
function placementAudit(p: Placement, licenseId: number, orderId: number, maxActivations: number): AuditRecord {
  return p.kind === 'assigned'
    ? {
        action: 'license_user.assigned',
        objectType: 'license',
        objectId: licenseId,
        orderId,
        after: { accountId: p.account.id, email: p.account.email, maxActivations, accountCreated: p.created },
      }
    : {
        action: 'license_user.invited',
        objectType: 'license',
        objectId: licenseId,
        orderId,
        after: {
          accountId: p.account.id,
          email: p.account.email,
          maxActivations,
          invitationId: p.invitationId,
          mailed: p.mail,
        },
      };
}

/**
 * After the transaction committed: the set-password link for a created account, the invitation link
 * for an invitation that can be accepted. A placement of a rolled-back attempt (its row is gone) is
 * skipped.
 */
export async function mailPlacements(deps: LinkMailDeps, placements: Placement[]): Promise<void> {
  for (const p of placements) {
    if (p.kind === 'assigned' && p.created) {
      const account = await accounts.findById(deps.db, p.account.id);
      if (account) await mailAccountLink(deps, account, 'invite');
    } else if (
      p.kind === 'invited' &&
      p.mail &&
      (await assignments.invitationPending(deps.db, p.invitationId, hashToken(p.token)))
    ) {
      await mailInvitation(deps, p);
    }
  }
}

async function mailInvitation(deps: LinkMailDeps, p: Extract<Placement, { kind: 'invited' }>): Promise<void> {
  const license = await licenses.findById(deps.db, p.licenseId, deps.clock.now());
  const inviter = p.invitedBy ? await accounts.findById(deps.db, p.invitedBy) : undefined;
  await sendMail(deps, 'license-invitation', {
    to: p.account.email,
    language: p.account.language,
    data: (url) => ({
      name: p.account.name,
      inviter: inviter?.name ?? '',
      product: license?.productName ?? '',
      link: url('account', (paths) => paths.licenseInvitation(p.token)),
      days: INVITATION_DAYS,
    }),
  });
}

/**
 * Gives a user-based license to an address (created and invited if new). In the User Portal `by` is
 * the acting account: a manager's existing account outside their scope gets an invitation instead.
 */
export async function assignUser(
  deps: LinkMailDeps,
  actor: Actor,
  licenseId: number,
  input: { email: string; name: string | null; maxActivations: number },
  by: PortalActor = null,
): Promise<Placement> {
  const placement = await auditedChange(deps, actor, async (trx, now) => {
    const license = await userBasedLicense(trx, licenseId, now);
    const placed = await placeUser(trx, by, licenseId, { ...input, language: 'en' }, now);
    return { result: placed, audit: placementAudit(placed, licenseId, license.orderId, input.maxActivations) };
  });
  await mailPlacements(deps, [placement]);
  return placement;
}

/** Withdraws a pending invitation of the license (its link then answers 410). */
export async function withdrawInvitation(
  deps: ServiceDeps,
  actor: Actor,
  licenseId: number,
  invitationId: number,
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const license = await userBasedLicense(trx, licenseId, now);
    const invitation = await assignments.findPendingInvitation(trx, licenseId, invitationId);
    if (!invitation) throw notFound();
    await assignments.removeInvitation(trx, invitation.id);
    return {
      result: undefined,
      audit: {
        action: 'license_user.invitation_withdrawn',
        objectType: 'license',
        objectId: licenseId,
        orderId: license.orderId,
        before: { invitationId, accountId: invitation.accountId, maxActivations: invitation.maxActivations },
      },
    };
  });
}

/** What the invitation page shows for a usable link, or undefined (used, expired, withdrawn, unknown). */
export async function invitationForToken({ db, clock }: ServiceDeps, token: string) {
  const now = clock.now();
  const invitation = await assignments.findUsableInvitation(db, hashToken(token), now);
  if (!invitation) return undefined;
  const [account, license, inviter] = [
    await accounts.findById(db, invitation.accountId),
    await licenses.findById(db, invitation.licenseId, now),
    invitation.invitedBy ? await accounts.findById(db, invitation.invitedBy) : undefined,
  ];
  if (!account || !license || account.role !== 'end_user' || account.disabled) return undefined;
  return {
    email: account.email,
    productName: license.productName,
    customerName: license.customerName,
    inviterName: inviter?.name ?? null,
    maxActivations: invitation.maxActivations,
    expiresAt: invitation.expiresAt,
  };
}

/**
 * The invited user accepts (the link is the credential; no login needed): in one transaction the link
 * is burnt and the assignment made, audited as the invited account. A used, expired, withdrawn or
 * unknown link — or one whose account or license can no longer take it — throws 410.
 */
export async function acceptInvitation({ db, clock }: ServiceDeps, actor: Actor, token: string): Promise<void> {
  const now = clock.now();
  await inTransaction(db, async (trx) => {
    const gone = () => new HttpError(410, 'ownership.accept.gone');
    const invitation = await assignments.findUsableInvitation(trx, hashToken(token), now);
    if (!invitation || !(await assignments.acceptInvitation(trx, invitation.id, now))) throw gone();
    const account = await accounts.findById(trx, invitation.accountId);
    const license = await licenses.findById(trx, invitation.licenseId, now);
    if (account?.role !== 'end_user' || account.disabled || !license || license.authorizationMethod !== 'user')
      throw gone();
    if (!(await assignments.find(trx, license.id, account.id)))
      await assignments.insert(trx, license.id, account.id, invitation.maxActivations, now);
    await recordAudit(trx, { ...actor, accountId: account.id, label: account.email }, now, {
      action: 'license_user.invitation_accepted',
      objectType: 'license',
      objectId: license.id,
      orderId: license.orderId,
      after: {
        invitationId: invitation.id,
        accountId: account.id,
        email: account.email,
        maxActivations: invitation.maxActivations,
      },
    });
  });
}

/** In the User Portal, an account the acting manager does not own is out of scope: 404, as if absent. */
async function mustOwn(trx: Knex, by: PortalActor, accountId: number): Promise<void> {
  if (by && !(await ownsEndUser(trx, by, accountId))) throw notFound();
}

export async function setAssignmentLimit(
  deps: ServiceDeps,
  actor: Actor,
  licenseId: number,
  accountId: number,
  maxActivations: number,
  by: PortalActor = null,
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const license = await userBasedLicense(trx, licenseId, now);
    const before = await assignments.find(trx, licenseId, accountId);
    if (!before) throw notFound();
    await mustOwn(trx, by, accountId);
    await assignments.setLimit(trx, licenseId, accountId, maxActivations);
    return {
      result: undefined,
      audit: {
        action: 'license_user.limit_changed',
        objectType: 'license',
        objectId: licenseId,
        orderId: license.orderId,
        before: { accountId, maxActivations: before.maxActivations },
        after: { accountId, maxActivations },
      },
    };
  });
}

/** Unassigns a user; refused while the user still has active devices on the license. */
export async function unassignUser(
  deps: ServiceDeps,
  actor: Actor,
  licenseId: number,
  accountId: number,
  by: PortalActor = null,
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const license = await userBasedLicense(trx, licenseId, now);
    const before = await assignments.find(trx, licenseId, accountId);
    if (!before) throw notFound();
    await mustOwn(trx, by, accountId);
    if (await devices.hasActiveForUser(trx, licenseId, accountId))
      throw new HttpError(409, 'licenseUsers.hasActiveDevices');
    await assignments.remove(trx, licenseId, accountId);
    return {
      result: undefined,
      audit: {
        action: 'license_user.unassigned',
        objectType: 'license',
        objectId: licenseId,
        orderId: license.orderId,
        before: { accountId, maxActivations: before.maxActivations },
      },
    };
  });
}

/**
 * Resets an end user's password (in the User Portal only one the acting manager owns): `password` sets a one-time password (returned, shown once; the user
 * must change it at first login), `email` sends a reset link.
 */
export async function resetEndUserPassword(
  deps: LinkMailDeps,
  actor: Actor,
  accountId: number,
  mode: CredentialMode,
  by: PortalActor = null,
): Promise<{ oneTimePassword: string | null; delivery: Delivery | null }> {
  const password = mode === 'password' ? oneTimePassword() : null;
  const passwordHash = password ? await hashPassword(password) : undefined;
  const account = await auditedChange(deps, actor, async (trx, now) => {
    const account = await accounts.findById(trx, accountId);
    if (account?.role !== 'end_user') throw notFound();
    await mustOwn(trx, by, accountId);
    if (passwordHash) {
      await accounts.update(trx, accountId, { passwordHash, mustChangePassword: true }, now);
      await tokens.invalidateResetTokens(trx, accountId, now);
      // Someone else set the password: whoever was signed in as this user is signed out.
      await endOtherSessions(trx, actor, accountId);
    }
    return {
      result: account,
      audit: {
        action: mode === 'password' ? 'license_user.one_time_password_set' : 'license_user.reset_link_sent',
        objectType: 'account',
        objectId: accountId,
      },
    };
  });
  const delivery =
    mode === 'email'
      ? await mailAccountLink(deps, account, account.passwordHash ? 'reset' : 'invite', actor.accountId)
      : null;
  return { oneTimePassword: password, delivery };
}
