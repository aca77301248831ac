import type { Knex } from 'knex';
import { affected, countOf, likeSql, toBool, toDate } from './normalise.ts';
import { ACCOUNT_PERMISSIONS, type AccountPermission } from '../policies/permissions.ts';

/** A manager's scope: orders, permissions, per-product quotas and allowed policies. */

export interface Quota {
  productId: number;
  productName: string;
  quota: number | null;
  /** Licenses issued under it, plus units given away as sub-quotas. */
  issued: number;
  /** The manager who gave it as a sub-quota out of their own (null: the vendor set it). */
  grantedBy: { id: number; email: string } | null;
}

export async function listAccounts(
  db: Knex,
  role: 'manager' | 'end_user',
  q: string | undefined,
  limit: number,
  offset: number,
) {
  const query = db('accounts').where({ role });
  if (q) query.where((w) => w.whereRaw(...likeSql('email', q.toLowerCase())).orWhereRaw(...likeSql('name', q)));
  const [rows, total] = await Promise.all([
    query
      .clone()
      .orderBy('email')
      .limit(limit)
      .offset(offset)
      .select('id', 'email', 'name', 'disabled', 'password_hash'),
    query.clone().count({ n: '*' }).first(),
  ]);
  return {
    rows: rows.map((r: Record<string, unknown>) => ({
      id: Number(r.id),
      email: String(r.email),
      name: String(r.name),
      disabled: !!Number(r.disabled),
      invited: !r.password_hash,
    })),
    total: countOf(total),
  };
}

/** The manager's account permissions (their order permissions come from their role on each order). */
export async function permissionsOf(db: Knex, accountId: number): Promise<AccountPermission[]> {
  return (
    await db('manager_permissions')
      .where({ account_id: accountId })
      .whereIn('permission', ACCOUNT_PERMISSIONS)
      .orderBy('permission')
      .select('permission')
  ).map((r: { permission: AccountPermission }) => r.permission);
}

export async function setPermissions(db: Knex, accountId: number, permissions: readonly string[]): Promise<void> {
  await db('manager_permissions').where({ account_id: accountId }).delete();
  if (permissions.length)
    await db('manager_permissions').insert(permissions.map((permission) => ({ account_id: accountId, permission })));
}

export async function defaultPermissions(db: Knex): Promise<AccountPermission[]> {
  return (
    await db('default_permissions')
      .whereIn('permission', ACCOUNT_PERMISSIONS)
      .orderBy('permission')
      .select('permission')
  ).map((r: { permission: AccountPermission }) => r.permission);
}

export async function setDefaultPermissions(db: Knex, permissions: readonly string[]): Promise<void> {
  await db('default_permissions').delete();
  if (permissions.length) await db('default_permissions').insert(permissions.map((permission) => ({ permission })));
}

export async function ordersOf(db: Knex, accountId: number) {
  const rows = await db('manager_orders')
    .join('orders', 'orders.id', 'manager_orders.order_id')
    .join('customers', 'customers.id', 'orders.customer_id')
    .where('manager_orders.account_id', accountId)
    .orderBy('orders.order_ref')
    .limit(500)
    .select('orders.id', 'orders.order_ref', 'customers.name as customer_name', 'manager_orders.role_id');
  return rows.map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    orderRef: String(r.order_ref),
    customerName: String(r.customer_name),
    roleId: Number(r.role_id),
  }));
}

export async function isAssigned(db: Knex, accountId: number, orderId: number): Promise<boolean> {
  return !!(await db('manager_orders').where({ account_id: accountId, order_id: orderId }).first());
}

/** One manager–order assignment: its role, and who made it (null: the vendor). */
export interface Assignment {
  accountId: number;
  orderId: number;
  roleId: number;
  invitedBy: number | null;
}

export async function assignment(db: Knex, accountId: number, orderId: number): Promise<Assignment | undefined> {
  const r = await db('manager_orders').where({ account_id: accountId, order_id: orderId }).first();
  return (
    r && {
      accountId,
      orderId,
      roleId: Number(r.role_id),
      invitedBy: r.invited_by === null ? null : Number(r.invited_by),
    }
  );
}

export async function assignOrder(
  db: Knex,
  accountId: number,
  orderId: number,
  roleId: number,
  invitedBy: number | null,
  now: Date,
): Promise<void> {
  await db('manager_orders').insert({
    account_id: accountId,
    order_id: orderId,
    role_id: roleId,
    invited_by: invitedBy,
    created_at: now,
  });
}

export async function setOrderRole(db: Knex, accountId: number, orderId: number, roleId: number): Promise<number> {
  return Number(
    await db('manager_orders').where({ account_id: accountId, order_id: orderId }).update({ role_id: roleId }),
  );
}

/** The role a manager gets on the orders they create (null: the vendor's default role at the time). */
export async function ownOrderRoleOf(db: Knex, accountId: number): Promise<number | null> {
  const r = await db('accounts').where({ id: accountId }).first('own_order_role_id');
  return r?.own_order_role_id == null ? null : Number(r.own_order_role_id);
}

export async function setOwnOrderRole(db: Knex, accountId: number, roleId: number | null): Promise<void> {
  await db('accounts').where({ id: accountId }).update({ own_order_role_id: roleId });
}

export async function unassignOrder(db: Knex, accountId: number, orderId: number): Promise<number> {
  return Number(await db('manager_orders').where({ account_id: accountId, order_id: orderId }).delete());
}

export async function quotasOf(db: Knex, accountId: number): Promise<Quota[]> {
  const rows = await db('manager_quotas')
    .join('products', 'products.id', 'manager_quotas.product_id')
    .leftJoin('accounts as granter', 'granter.id', 'manager_quotas.granted_by')
    .where('manager_quotas.account_id', accountId)
    .orderBy('products.name')
    .select('manager_quotas.*', 'products.name as product_name', 'granter.email as granter_email');
  return rows.map((r: Record<string, unknown>) => ({
    productId: Number(r.product_id),
    productName: String(r.product_name),
    quota: r.quota === null ? null : Number(r.quota),
    issued: Number(r.issued),
    grantedBy: r.granted_by == null ? null : { id: Number(r.granted_by), email: String(r.granter_email) },
  }));
}

/** Sets (or creates) the quota for a product; `issued` keeps counting from where it was. */
export async function setQuota(db: Knex, accountId: number, productId: number, quota: number | null): Promise<void> {
  const updated = await db('manager_quotas').where({ account_id: accountId, product_id: productId }).update({ quota });
  if (!Number(updated))
    await db('manager_quotas').insert({ account_id: accountId, product_id: productId, quota, issued: 0 });
}

export async function removeQuota(db: Knex, accountId: number, productId: number): Promise<number> {
  return Number(await db('manager_quotas').where({ account_id: accountId, product_id: productId }).delete());
}

export async function allowedPoliciesOf(db: Knex, accountId: number): Promise<number[]> {
  return (await db('manager_policies').where({ account_id: accountId }).select('policy_id')).map(
    (r: { policy_id: number }) => Number(r.policy_id),
  );
}

export async function setAllowedPolicies(db: Knex, accountId: number, policyIds: number[]): Promise<void> {
  await db('manager_policies').where({ account_id: accountId }).delete();
  if (policyIds.length)
    await db('manager_policies').insert(policyIds.map((policy_id) => ({ account_id: accountId, policy_id })));
}

/**
 * Counts `count` more units as used on a quota row with one guarded update (an unlimited quota always
 * has room): false when the row lacks the room, so two racing requests never both pass the last unit.
 */
export async function reserveQuota(db: Knex, accountId: number, productId: number, count: number): Promise<boolean> {
  const n = await db('manager_quotas')
    .where({ account_id: accountId, product_id: productId })
    .where((w) => w.whereNull('quota').orWhereRaw('issued + ? <= quota', [count]))
    .update({ issued: db.raw('issued + ?', [count]) });
  return affected(n) === 1;
}

/**
 * Gives back `count` units counted as used (a sub-quota lowered or removed, a code voided), with one
 * guarded update that never goes below zero.
 */
export async function releaseQuota(db: Knex, accountId: number, productId: number, count: number): Promise<void> {
  await db('manager_quotas')
    .where({ account_id: accountId, product_id: productId })
    .where('issued', '>=', count)
    .update({ issued: db.raw('issued - ?', [count]) });
}

/** The quota row of a sub-quota `grantedBy` gives `accountId`, made empty if missing (a racing twin is ignored). */
export async function subQuotaRow(db: Knex, accountId: number, productId: number, grantedBy: number) {
  await db('manager_quotas')
    .insert({ account_id: accountId, product_id: productId, quota: 0, issued: 0, granted_by: grantedBy })
    .onConflict(['account_id', 'product_id'])
    .ignore();
  const r = await db('manager_quotas').where({ account_id: accountId, product_id: productId }).first();
  return {
    quota: Number(r.quota),
    issued: Number(r.issued),
    grantedBy: r.granted_by == null ? null : Number(r.granted_by),
  };
}

/**
 * Moves a sub-quota by `delta` with one guarded update of its row: it may not fall below what was
 * issued under it. False when it would.
 */
export async function moveSubQuota(
  db: Knex,
  accountId: number,
  productId: number,
  grantedBy: number,
  delta: number,
): Promise<boolean> {
  const n = await db('manager_quotas')
    .where({ account_id: accountId, product_id: productId, granted_by: grantedBy })
    .whereRaw('quota + ? >= issued', [delta])
    .update({ quota: db.raw('quota + ?', [delta]) });
  return affected(n) === 1;
}

export async function hasQuota(db: Knex, accountId: number, productId: number): Promise<boolean> {
  return !!(await db('manager_quotas').where({ account_id: accountId, product_id: productId }).first());
}

/** Every assignment to an order as (manager, who invited them): the tree delegation walks. */
export async function invitationTree(
  db: Knex,
  orderId: number,
): Promise<{ accountId: number; invitedBy: number | null }[]> {
  return (await db('manager_orders').where({ order_id: orderId }).select('account_id', 'invited_by')).map((r) => ({
    accountId: Number(r.account_id),
    invitedBy: r.invited_by == null ? null : Number(r.invited_by),
  }));
}

/** Hands the managers `from` invited to an order over to `to` (null: the vendor). */
export async function reparentInvitees(db: Knex, orderId: number, from: number, to: number | null): Promise<void> {
  await db('manager_orders').where({ order_id: orderId, invited_by: from }).update({ invited_by: to });
}

/** True when `inviter` invited `accountId` to at least one order. */
export async function isInvitedBy(db: Knex, accountId: number, inviter: number): Promise<boolean> {
  return !!(await db('manager_orders').where({ account_id: accountId, invited_by: inviter }).first());
}

/** The managers `inviterId` invited, with the orders and roles of those invitations. */
export async function inviteesOf(db: Knex, inviterId: number) {
  const rows = await db('manager_orders')
    .join('accounts', 'accounts.id', 'manager_orders.account_id')
    .join('orders', 'orders.id', 'manager_orders.order_id')
    .join('roles', 'roles.id', 'manager_orders.role_id')
    .where('manager_orders.invited_by', inviterId)
    .orderBy('accounts.email')
    .orderBy('orders.order_ref')
    .limit(1000)
    .select(
      'accounts.id',
      'accounts.email',
      'accounts.name',
      'accounts.password_hash',
      'orders.id as order_id',
      'orders.order_ref',
      'roles.name as role_name',
      'roles.builtin as role_builtin',
    );
  const people = new Map<
    number,
    {
      id: number;
      email: string;
      name: string;
      invited: boolean;
      orders: { id: number; orderRef: string; role: { name: string; builtin: string | null } }[];
    }
  >();
  for (const r of rows) {
    const id = Number(r.id);
    if (!people.has(id))
      people.set(id, { id, email: String(r.email), name: String(r.name), invited: !r.password_hash, orders: [] });
    people.get(id)!.orders.push({
      id: Number(r.order_id),
      orderRef: String(r.order_ref),
      role: { name: String(r.role_name), builtin: r.role_builtin ?? null },
    });
  }
  return [...people.values()];
}

/** The sub-quotas `granterId` gave, as (invitee, product, quota, issued). */
export async function subQuotasGrantedBy(db: Knex, granterId: number) {
  return (
    await db('manager_quotas')
      .join('products', 'products.id', 'manager_quotas.product_id')
      .where('manager_quotas.granted_by', granterId)
      .select('manager_quotas.*', 'products.name as product_name')
  ).map((r: Record<string, unknown>) => ({
    accountId: Number(r.account_id),
    productId: Number(r.product_id),
    productName: String(r.product_name),
    quota: Number(r.quota),
    issued: Number(r.issued),
  }));
}

/** The Management API's manager list (accounts of role manager), searched like the console's. */
export function apiQuery(db: Knex, q?: string): Knex.QueryBuilder {
  const query = db('accounts').where({ role: 'manager' });
  if (q) query.where((w) => w.whereRaw(...likeSql('email', q.toLowerCase())).orWhereRaw(...likeSql('name', q)));
  return query.select('id', 'email', 'name', 'language', 'disabled', 'password_hash', 'created_at');
}

export function fromApiRow(r: Record<string, unknown>) {
  return {
    id: Number(r.id),
    email: String(r.email),
    name: String(r.name),
    language: String(r.language),
    disabled: toBool(r.disabled),
    invitation_pending: !r.password_hash,
    created_at: toDate(r.created_at)!.toISOString(),
  };
}
