import type { Knex } from 'knex';
import * as accounts from '../models/accounts.ts';
import * as managers from '../models/managers.ts';
import * as products from '../models/products.ts';
import * as policies from '../models/policies.ts';
import { ACCOUNT_PERMISSIONS, type Permission } from '../policies/permissions.ts';
import { HttpError, ValidationError, notFound } from '../lib/errors.ts';
import { auditedChange } from './changes.ts';
import { mailAccountLink, type LinkMailDeps } from './auth.ts';
import type { Delivery } from '../lib/mailer.ts';
import type { Actor, ServiceDeps } from './context.ts';
import { endOtherSessions } from './auth.ts';
import * as orders from '../models/orders.ts';
import * as roles from '../models/roles.ts';
import { removeFromOrder, setRoleOnOrder } from './delegation.ts';

/**
 * License managers: invited by e-mail (they choose their own password through the link), given the
 * vendor's default permission set, then orders, permissions, per-product quotas and allowed policies.
 */

async function mustFindManager(trx: Knex, id: number) {
  const account = await accounts.findById(trx, id);
  if (account?.role !== 'manager') throw notFound();
  return account;
}

export async function inviteManager(
  deps: LinkMailDeps,
  actor: Actor,
  input: { email: string; name: string; language: string },
): Promise<{ id: number; delivery: Delivery }> {
  const account = await auditedChange(deps, actor, async (trx, now) => {
    if (await accounts.findByEmail(trx, input.email)) throw new ValidationError({ email: 'validation.emailTaken' });
    const id = await accounts.insert(trx, { ...input, role: 'manager', passwordHash: null }, now);
    const permissions = await managers.defaultPermissions(trx);
    await managers.setPermissions(trx, id, permissions);
    const created = (await accounts.findById(trx, id))!;
    return {
      result: created,
      audit: {
        action: 'manager.invited',
        objectType: 'account',
        objectId: id,
        after: { ...accounts.auditView(created), permissions },
      },
    };
  });
  const delivery = await mailAccountLink(deps, account, 'invite', actor.accountId);
  return { id: account.id, delivery };
}

/** Sends a new invitation link to a manager who has not chosen a password yet. */
export async function resendInvitation(deps: LinkMailDeps, actor: Actor, id: number): Promise<Delivery> {
  const account = await auditedChange(deps, actor, async (trx) => {
    const account = await mustFindManager(trx, id);
    if (account.passwordHash) throw new HttpError(409, 'managers.alreadyActive');
    return { result: account, audit: { action: 'manager.invitation_resent', objectType: 'account', objectId: id } };
  });
  return mailAccountLink(deps, account, 'invite', actor.accountId);
}

/** Disabling an account ends its sessions at once (deserializeUser would also refuse it on its next request). */
export async function updateManagerProfile(
  deps: ServiceDeps,
  actor: Actor,
  id: number,
  input: { name: string; language: string; disabled: boolean },
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await mustFindManager(trx, id);
    await accounts.update(trx, id, input, now);
    if (input.disabled && !before.disabled) await endOtherSessions(trx, actor, id);
    const after = (await accounts.findById(trx, id))!;
    return {
      result: undefined,
      audit: {
        action: 'manager.updated',
        objectType: 'account',
        objectId: id,
        before: accounts.auditView(before),
        after: accounts.auditView(after),
      },
    };
  });
}

export async function setManagerPermissions(
  deps: ServiceDeps,
  actor: Actor,
  id: number,
  permissions: Permission[],
): Promise<void> {
  const wanted = ACCOUNT_PERMISSIONS.filter((p) => permissions.includes(p));
  await auditedChange(deps, actor, async (trx) => {
    await mustFindManager(trx, id);
    const before = await managers.permissionsOf(trx, id);
    await managers.setPermissions(trx, id, wanted);
    return {
      result: undefined,
      audit: {
        action: 'manager.permissions_changed',
        objectType: 'account',
        objectId: id,
        before: { permissions: before },
        after: { permissions: wanted },
      },
    };
  });
}

export async function setDefaultPermissionSet(
  deps: ServiceDeps,
  actor: Actor,
  permissions: Permission[],
): Promise<void> {
  const wanted = ACCOUNT_PERMISSIONS.filter((p) => permissions.includes(p));
  await auditedChange(deps, actor, async (trx) => {
    const before = await managers.defaultPermissions(trx);
    await managers.setDefaultPermissions(trx, wanted);
    return {
      result: undefined,
      audit: {
        action: 'settings.default_permissions_changed',
        objectType: 'settings',
        objectId: 'default_permissions',
        before: { permissions: before },
        after: { permissions: wanted },
      },
    };
  });
}

export async function assignManagerToOrder(
  deps: ServiceDeps,
  actor: Actor,
  id: number,
  orderRef: string,
  roleId: number,
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    await mustFindManager(trx, id);
    const role = await roles.find(trx, roleId);
    if (!role) throw new ValidationError({ role_id: 'validation.choice' });
    // Order numbers are unique per customer: a number two customers share is given as "Customer / number".
    const [, customerName, number] = /^(?:(.+?)\s+\/\s+)?(.+)$/.exec(orderRef.trim())!;
    const matches = await orders.idsByRef(trx, number!, 2, customerName);
    if (!matches.length) throw new ValidationError({ order_ref: 'managers.orderNotFound' });
    if (matches.length > 1) throw new ValidationError({ order_ref: 'managers.orderAmbiguous' });
    const orderId = matches[0]!;
    if (await managers.isAssigned(trx, id, orderId))
      throw new ValidationError({ order_ref: 'managers.alreadyAssigned' });
    await managers.assignOrder(trx, id, orderId, role.id, null, now);
    return {
      result: undefined,
      audit: {
        action: 'manager.order_assigned',
        objectType: 'account',
        objectId: id,
        orderId,
        after: { orderId, orderRef, role: role.name },
      },
    };
  });
}

/** The vendor removes a manager from an order: the same rule as in the User Portal (delegation.ts). */
export async function unassignManagerFromOrder(
  deps: ServiceDeps,
  actor: Actor,
  id: number,
  orderId: number,
): Promise<void> {
  await mustFindManager(deps.db, id);
  await removeFromOrder(deps, actor, { id: actor.accountId ?? 0, role: 'admin' }, orderId, id);
}

/** The vendor sets a manager's role on one of their orders (any role: the vendor is above everyone). */
export async function setManagerOrderRole(
  deps: ServiceDeps,
  actor: Actor,
  id: number,
  orderId: number,
  roleId: number,
): Promise<void> {
  await mustFindManager(deps.db, id);
  await setRoleOnOrder(deps, actor, { id: actor.accountId ?? 0, role: 'admin' }, orderId, id, roleId);
}

/** The role a manager gets on the orders they create (null: the default role when they create it). */
export async function setManagerOwnOrderRole(
  deps: ServiceDeps,
  actor: Actor,
  id: number,
  roleId: number | null,
): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    await mustFindManager(trx, id);
    if (roleId !== null && !(await roles.find(trx, roleId)))
      throw new ValidationError({ role_id: 'validation.choice' });
    const before = await managers.ownOrderRoleOf(trx, id);
    await managers.setOwnOrderRole(trx, id, roleId);
    return {
      result: undefined,
      audit: {
        action: 'manager.own_order_role_changed',
        objectType: 'account',
        objectId: id,
        before: { roleId: before },
        after: { roleId },
      },
    };
  });
}

export async function setManagerQuota(
  deps: ServiceDeps,
  actor: Actor,
  id: number,
  productId: number,
  quota: number | null,
): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    await mustFindManager(trx, id);
    if (!(await products.findById(trx, productId))) throw new ValidationError({ product_id: 'validation.choice' });
    const before = (await managers.quotasOf(trx, id)).find((q) => q.productId === productId) ?? null;
    if (before?.grantedBy) throw new HttpError(409, 'admin.managers.quotaGranted');
    await managers.setQuota(trx, id, productId, quota);
    return {
      result: undefined,
      audit: {
        action: 'manager.quota_set',
        objectType: 'account',
        objectId: id,
        before: before && { productId, quota: before.quota, issued: before.issued },
        after: { productId, quota },
      },
    };
  });
}

export async function removeManagerQuota(
  deps: ServiceDeps,
  actor: Actor,
  id: number,
  productId: number,
): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    await mustFindManager(trx, id);
    const before = (await managers.quotasOf(trx, id)).find((q) => q.productId === productId);
    if (!before || !(await managers.removeQuota(trx, id, productId))) throw notFound();
    // A sub-quota's unused units go back to the manager who gave them.
    if (before.grantedBy)
      await managers.releaseQuota(
        trx,
        before.grantedBy.id,
        productId,
        Math.max(0, (before.quota ?? 0) - before.issued),
      );
    return {
      result: undefined,
      audit: {
        action: 'manager.quota_removed',
        objectType: 'account',
        objectId: id,
        before: { productId, quota: before.quota, issued: before.issued },
      },
    };
  });
}

export async function setManagerPolicies(
  deps: ServiceDeps,
  actor: Actor,
  id: number,
  policyIds: number[],
): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    await mustFindManager(trx, id);
    const known = new Set((await policies.listIssuable(trx)).map((p) => p.id));
    const wanted = [...new Set(policyIds)].filter((p) => known.has(p));
    const before = await managers.allowedPoliciesOf(trx, id);
    await managers.setAllowedPolicies(trx, id, wanted);
    return {
      result: undefined,
      audit: {
        action: 'manager.policies_changed',
        objectType: 'account',
        objectId: id,
        before: { policyIds: before },
        after: { policyIds: wanted },
      },
    };
  });
}
