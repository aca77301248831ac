import type { Knex } from 'knex';
import * as accounts from '../models/accounts.ts';
import type { Account } from '../models/accounts.ts';
import * as managers from '../models/managers.ts';
import * as roles from '../models/roles.ts';
import { HttpError, ValidationError, notFound } from '../lib/errors.ts';
import { permissionsOnOrder } from '../policies/portal.ts';
import { isOrderPermission } from '../policies/permissions.ts';
import { auditedChange } from './changes.ts';
import { mailAccountLink, type LinkMailDeps } from './auth.ts';
import type { Delivery } from '../lib/mailer.ts';
import { rateLimited, type ThrottleDeps } from './throttles.ts';
import { RateLimiter, type RateRule } from '../lib/rate-limiter.ts';
import type { Actor, ServiceDeps } from './context.ts';

/**
 * Delegation down the channel (docs/user-portal.md, "Delegation"): a manager whose role on an order
 * includes manage_managers invites managers to it with a role no stronger than their own there, and
 * answers for the managers below them — those they invited, and those their invitees invited — and
 * for nobody above or beside them. The vendor (an admin) answers for everyone.
 */

type Who = Pick<Account, 'id' | 'role'>;

/** The order permissions `who` holds on the order: a role offered must stay within them. */
async function ceilingOn(db: Knex, who: Who, orderId: number): Promise<string[]> {
  return [...(await permissionsOnOrder(db, who, orderId))].filter(isOrderPermission);
}

/** A role `who` may give on the order: one that exists and holds nothing `who` lacks there, else a field error. */
async function offerableRole(db: Knex, who: Who, orderId: number, roleId: number) {
  const role = await roles.find(db, roleId);
  if (!role || !roles.within(role.permissions, await ceilingOn(db, who, orderId)))
    throw new ValidationError({ role_id: 'portal.roleTooStrong' });
  return role;
}

/** The managers of an order below `who` (their invitees, and theirs, …); every manager of it for an admin. */
export async function managersBelow(db: Knex, who: Who, orderId: number): Promise<Set<number>> {
  return subtree(await managers.invitationTree(db, orderId), who);
}

/** managersBelow over an order's assignments already read (each manager with who invited them). */
export function subtree(rows: readonly { accountId: number; invitedBy: number | null }[], who: Who): Set<number> {
  if (who.role === 'admin') return new Set(rows.map((r) => r.accountId));
  const below = new Set<number>();
  let frontier = [who.id];
  while (frontier.length) {
    const next = rows
      .filter((r) => r.invitedBy !== null && frontier.includes(r.invitedBy))
      .map((r) => r.accountId)
      .filter((id) => !below.has(id) && id !== who.id);
    for (const id of next) below.add(id);
    frontier = next;
  }
  return below;
}

/** The roles `who` may give on the order (for the invitation form). */
export async function rolesOfferable(db: Knex, who: Who, orderId: number) {
  const ceiling = await ceilingOn(db, who, orderId);
  return (await roles.list(db)).filter((r) => roles.within(r.permissions, ceiling));
}

/** Invitations one manager may send in an hour, over all their orders (the vendor is not limited). */
export const INVITATIONS_PER_MANAGER: RateRule = { limit: 20, windowMs: 60 * 60_000 };

/**
 * Invites a manager to the order by e-mail with a role: an existing manager is assigned at once; a new
 * address becomes a manager account that chooses its password through the e-mailed link. Any other
 * account (an end user, vendor staff) is refused: a manager's address cannot be taken over.
 */
export async function inviteToOrder(
  deps: LinkMailDeps & ThrottleDeps,
  actor: Actor,
  inviter: Who,
  orderId: number,
  input: { email: string; name: string; roleId: number; language: string },
): Promise<Delivery | null> {
  if (inviter.role !== 'admin') {
    // Each invitation may make an account and send a mail: a manager's budget is counted before any work.
    const state = await deps.limiter.hit(
      RateLimiter.key('order-invitations', String(inviter.id)),
      INVITATIONS_PER_MANAGER,
    );
    if (state.hits > INVITATIONS_PER_MANAGER.limit) throw rateLimited(state.retryAfterSeconds);
  }
  const created = await auditedChange(deps, actor, async (trx, now) => {
    const role = await offerableRole(trx, inviter, orderId, input.roleId);
    let account = await accounts.findByEmail(trx, input.email);
    let created: Account | null = null;
    if (!account) {
      const name = input.name || input.email.split('@')[0]!;
      const id = await accounts.insert(
        trx,
        { email: input.email, name, language: input.language, role: 'manager', passwordHash: null },
        now,
      );
      account = created = (await accounts.findById(trx, id))!;
    } else if (account.role !== 'manager') throw cannotInvite(inviter, 'portal.notAManager');
    if (await managers.isAssigned(trx, account.id, orderId)) {
      // Someone the inviter can see (below them, or themselves) is named; anyone above or beside them is
      // answered like an address of another kind: the refusal reveals nothing the inviter may not see.
      const visible = account.id === inviter.id || (await managersBelow(trx, inviter, orderId)).has(account.id);
      throw visible
        ? new ValidationError({ email: 'managers.alreadyAssigned' })
        : cannotInvite(inviter, 'managers.alreadyAssigned');
    }
    await managers.assignOrder(trx, account.id, orderId, role.id, inviter.role === 'admin' ? null : inviter.id, now);
    return {
      result: created,
      audit: {
        action: 'order.manager_added',
        objectType: 'order',
        objectId: orderId,
        orderId,
        after: { accountId: account.id, email: account.email, role: role.name, newAccount: !!created },
      },
    };
  });
  return created ? mailAccountLink(deps, created, 'invite', actor.accountId) : null;
}

/**
 * An address a manager may not invite: one message for every reason (an end user's or vendor staff's
 * account, or a manager above or beside the inviter already on the order), so a manager cannot probe
 * addresses. The vendor is told the exact reason.
 */
function cannotInvite(inviter: Who, exactReason: string): ValidationError {
  return new ValidationError({ email: inviter.role === 'admin' ? exactReason : 'portal.cannotInvite' });
}

/** Changes the role of a manager below `who` on the order, again no stronger than `who`'s own there. */
export async function setRoleOnOrder(
  deps: ServiceDeps,
  actor: Actor,
  who: Who,
  orderId: number,
  accountId: number,
  roleId: number,
): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    if (!(await managersBelow(trx, who, orderId)).has(accountId)) throw notFound();
    const before = (await managers.assignment(trx, accountId, orderId))!;
    const role = await offerableRole(trx, who, orderId, roleId);
    await managers.setOrderRole(trx, accountId, orderId, role.id);
    return {
      result: undefined,
      audit: {
        action: 'order.manager_role_changed',
        objectType: 'order',
        objectId: orderId,
        orderId,
        before: { accountId, roleId: before.roleId },
        after: { accountId, roleId: role.id, role: role.name },
      },
    };
  });
}

/**
 * Removes a manager below `who` from the order. The managers they had invited there stay, now under
 * the removed manager's own inviter: nobody loses access as a side effect, and `who` still sees them.
 */
export async function removeFromOrder(
  deps: ServiceDeps,
  actor: Actor,
  who: Who,
  orderId: number,
  accountId: number,
): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    if (accountId === who.id) throw new HttpError(409, 'portal.cannotRemoveSelf');
    if (!(await managersBelow(trx, who, orderId)).has(accountId)) throw notFound();
    const removed = (await managers.assignment(trx, accountId, orderId))!;
    await managers.reparentInvitees(trx, orderId, accountId, removed.invitedBy);
    await managers.unassignOrder(trx, accountId, orderId);
    return {
      result: undefined,
      audit: {
        action: 'order.manager_removed',
        objectType: 'order',
        objectId: orderId,
        orderId,
        before: { accountId, roleId: removed.roleId },
      },
    };
  });
}

/** The managers `who` invited to any order (the people a sub-quota may go to). */
export async function isInviteeOf(db: Knex, who: Who, accountId: number): Promise<boolean> {
  return managers.isInvitedBy(db, accountId, who.id);
}

/**
 * Sets the sub-quota `granter` gives `accountId` (one of their invitees) for a product, out of the
 * granter's own quota for it: the units are carved out — counted as issued on the granter's row — so
 * the licenses issued under a quota and all its sub-quotas never exceed it. Raising takes the
 * difference with one guarded update of the granter's row; lowering gives back only units the invitee
 * has not issued, with one guarded update of the invitee's row. Two grants at the same instant cannot
 * both pass the last free unit (tested on SQLite and MariaDB).
 */
export async function setSubQuota(
  deps: ServiceDeps,
  actor: Actor,
  granter: Who,
  accountId: number,
  productId: number,
  quota: number,
): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    if (!(await isInviteeOf(trx, granter, accountId))) throw notFound();
    if (!(await managers.hasQuota(trx, granter.id, productId)))
      throw new ValidationError({ product_id: 'validation.choice' });
    const row = await managers.subQuotaRow(trx, accountId, productId, granter.id);
    if (row.grantedBy !== granter.id) throw new ValidationError({ quota: 'portal.quotaNotYours' });
    const delta = quota - row.quota;
    // Raising takes the units from the granter's row first; lowering frees only units not issued.
    if (delta > 0) {
      if (!(await managers.reserveQuota(trx, granter.id, productId, delta)))
        throw new ValidationError({ quota: 'portal.quotaExceeded' });
      await managers.moveSubQuota(trx, accountId, productId, granter.id, delta);
    } else if (delta < 0) {
      if (!(await managers.moveSubQuota(trx, accountId, productId, granter.id, delta)))
        throw new ValidationError({ quota: 'portal.subQuotaBelowIssued' });
      await managers.releaseQuota(trx, granter.id, productId, -delta);
    }
    return {
      result: undefined,
      audit: {
        action: 'manager.sub_quota_set',
        objectType: 'account',
        objectId: accountId,
        before: { productId, quota: row.quota, issued: row.issued },
        after: { productId, quota, grantedBy: granter.id },
      },
    };
  });
}
