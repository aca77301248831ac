import type { Knex } from 'knex';
import { countOf, likeSql } from './normalise.ts';
import type { Permission } from '../policies/permissions.ts';

/** A manager's scope: orders, permissions, per-product quotas and allowed policies. */

export interface Quota {
  productId: number;
  productName: string;
  quota: number | null;
  issued: number;
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

export async function permissionsOf(db: Knex, accountId: number): Promise<Permission[]> {
  return (
    await db('manager_permissions').where({ account_id: accountId }).orderBy('permission').select('permission')
  ).map((r: { permission: Permission }) => r.permission);
}

export async function setPermissions(db: Knex, accountId: number, permissions: readonly string[]): Promise<void> {
  await db('manager_permissions').where({ account_id: accountId }).delete();
  if (permissions.length)
    await db('manager_permissions').insert(permissions.map((permission) => ({ account_id: accountId, permission })));
}

export async function defaultPermissions(db: Knex): Promise<Permission[]> {
  return (await db('default_permissions').orderBy('permission').select('permission')).map(
    (r: { permission: Permission }) => r.permission,
  );
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
    .select('orders.id', 'orders.order_ref', 'customers.name as customer_name');
  return rows.map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    orderRef: String(r.order_ref),
    customerName: String(r.customer_name),
  }));
}

export async function isAssigned(db: Knex, accountId: number, orderId: number): Promise<boolean> {
  return !!(await db('manager_orders').where({ account_id: accountId, order_id: orderId }).first());
}

export async function assignOrder(db: Knex, accountId: number, orderId: number, now: Date): Promise<void> {
  await db('manager_orders').insert({ account_id: accountId, order_id: orderId, created_at: now });
}

export async function unassignOrder(db: Knex, accountId: number, orderId: number): Promise<number> {
  return Number(await db('manager_orders').where({ account_id: accountId, order_id: orderId }).delete());
}

export async function quotasOf(db: Knex, accountId: number): Promise<Quota[]> {
  const rows = await db('manager_quotas')
    .join('products', 'products.id', 'manager_quotas.product_id')
    .where('manager_quotas.account_id', accountId)
    .orderBy('products.name')
    .select('manager_quotas.*', 'products.name as product_name');
  return rows.map((r: Record<string, unknown>) => ({
    productId: Number(r.product_id),
    productName: String(r.product_name),
    quota: r.quota === null ? null : Number(r.quota),
    issued: Number(r.issued),
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
