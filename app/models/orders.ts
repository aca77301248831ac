import type { Knex } from 'knex';
import { countOf, likeSql, toBool, toDate } from './normalise.ts';

export interface Order {
  id: number;
  orderRef: string;
  reference: string | null;
  customerId: number;
  customerName: string;
  isTest: boolean;
  isTrial: boolean;
  /** The branding the order's mail carries (reminders, digests: no request host to take it from); null: the default. */
  brandingId: number | null;
  /** How many licenses it holds (kept with the order, see migration 0006). */
  licenseCount: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface OrderSummary {
  id: number;
  orderRef: string;
  customerName: string;
  createdAt: Date;
  licenseCount: number;
}

function fromRow(r: Record<string, unknown>): Order {
  return {
    id: Number(r.id),
    orderRef: String(r.order_ref),
    reference: (r.reference as string | null) ?? null,
    customerId: Number(r.customer_id),
    customerName: String(r.customer_name ?? ''),
    isTest: toBool(r.is_test),
    isTrial: toBool(r.is_trial),
    brandingId: r.branding_id === null || r.branding_id === undefined ? null : Number(r.branding_id),
    licenseCount: Number(r.license_count ?? 0),
    createdAt: toDate(r.created_at)!,
    updatedAt: toDate(r.updated_at)!,
  };
}

/** One order from a scope (see policies/orders.ts), with its customer's name. */
export async function findInScope(scope: Knex.QueryBuilder, id: number): Promise<Order | undefined> {
  const row = await scope
    .clone()
    .join('customers', 'customers.id', 'orders.customer_id')
    .where('orders.id', id)
    .first('orders.*', 'customers.name as customer_name');
  return row ? fromRow(row) : undefined;
}

export async function findById(db: Knex, id: number): Promise<Order | undefined> {
  return findInScope(db('orders'), id);
}

function searched(scope: Knex.QueryBuilder, q?: string, customerId?: number) {
  const query = scope.clone().join('customers', 'customers.id', 'orders.customer_id');
  if (q)
    query.where((w) =>
      w
        .whereRaw(...likeSql('orders.order_ref', q))
        .orWhereRaw(...likeSql('orders.reference', q))
        .orWhereRaw(...likeSql('customers.name', q)),
    );
  if (customerId) query.where('orders.customer_id', customerId);
  return query;
}

/** A page of orders from a scope, newest first, with customer and license count. */
export async function listSummaries(
  scope: Knex.QueryBuilder,
  limit: number,
  offset = 0,
  filter: { q?: string; customerId?: number } = {},
): Promise<OrderSummary[]> {
  const rows = await searched(scope, filter.q, filter.customerId)
    .orderBy('orders.id', 'desc')
    .limit(limit)
    .offset(offset)
    .select(
      'orders.id',
      'orders.order_ref',
      'orders.created_at',
      'customers.name as customer_name',
      'orders.license_count',
    );
  return rows.map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    orderRef: String(r.order_ref),
    customerName: String(r.customer_name),
    createdAt: toDate(r.created_at)!,
    licenseCount: Number(r.license_count),
  }));
}

export async function countInScope(
  scope: Knex.QueryBuilder,
  filter: { q?: string; customerId?: number } = {},
): Promise<number> {
  return countOf(await searched(scope, filter.q, filter.customerId).count({ n: '*' }).first());
}

export async function update(
  db: Knex,
  id: number,
  f: { order_ref: string; reference: string | null; is_test: boolean; is_trial: boolean; branding_id?: number | null },
  now: Date,
): Promise<void> {
  // branding_id absent (the Management API's PATCH): left as it is.
  const { branding_id, ...rest } = f;
  await db('orders')
    .where({ id })
    .update({ ...rest, ...(branding_id !== undefined ? { branding_id } : {}), updated_at: now });
}

export async function hasLicenses(db: Knex, id: number): Promise<boolean> {
  return !!(await db('licenses').where({ order_id: id }).first('id'));
}

export async function remove(db: Knex, id: number): Promise<void> {
  await db('orders').where({ id }).delete();
}

/** The managers assigned to an order. */
export async function listManagers(db: Knex, orderId: number) {
  const rows = await db('manager_orders')
    .join('accounts', 'accounts.id', 'manager_orders.account_id')
    .where('manager_orders.order_id', orderId)
    .leftJoin('roles', 'roles.id', 'manager_orders.role_id')
    .orderBy('accounts.email')
    .select(
      'accounts.id',
      'accounts.email',
      'accounts.name',
      'manager_orders.role_id',
      'manager_orders.invited_by',
      'roles.name as role_name',
      'roles.builtin as role_builtin',
    );
  return rows.map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    email: String(r.email),
    name: String(r.name),
    roleId: Number(r.role_id),
    role: { name: String(r.role_name), builtin: (r.role_builtin as string | null) ?? null },
    invitedBy: r.invited_by == null ? null : Number(r.invited_by),
  }));
}

export function auditView(o: Order) {
  return {
    orderRef: o.orderRef,
    reference: o.reference,
    customerId: o.customerId,
    isTest: o.isTest,
    isTrial: o.isTrial,
    brandingId: o.brandingId,
  };
}

/** The ids of the orders with this number (unique per customer), of one customer when named; at most `limit`. */
export async function idsByRef(db: Knex, orderRef: string, limit: number, customerName?: string): Promise<number[]> {
  const q = db('orders').where('orders.order_ref', orderRef);
  if (customerName !== undefined)
    q.join('customers', 'customers.id', 'orders.customer_id').where('customers.name', customerName);
  return (await q.limit(limit).select('orders.id')).map((r: { id: number }) => Number(r.id));
}

/** The Management API's order list: a scope, filtered (`q` as the console's search, a customer, an exact number). */
export function apiQuery(
  scope: Knex.QueryBuilder,
  f: { q?: string; customerId?: number; orderRef?: string },
): Knex.QueryBuilder {
  const query = searched(scope, f.q, f.customerId);
  if (f.orderRef) query.where('orders.order_ref', f.orderRef);
  return query.select('orders.*', 'customers.name as customer_name');
}

export const fromApiRow = fromRow;

/** The licenses of an order in the Management API's short form (at most `limit`, oldest first). */
export async function licenseSummaries(db: Knex, orderId: number, limit = 1000) {
  const rows = await db('licenses')
    .where({ order_id: orderId })
    .orderBy('id')
    .limit(limit)
    .select('id', 'license_key', 'product_id', 'policy_id');
  return rows.map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    license_key: (r.license_key as string | null) ?? null,
    product_id: Number(r.product_id),
    policy_id: r.policy_id == null ? null : Number(r.policy_id),
  }));
}
