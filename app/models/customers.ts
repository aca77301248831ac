import type { Knex } from 'knex';
import { countOf, likeSql, toDate } from './normalise.ts';

export interface Customer {
  id: number;
  kind: 'company' | 'person';
  name: string;
  contactName: string | null;
  email: string | null;
  phone: string | null;
  address: string | null;
  reference: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface CustomerFields {
  kind: 'company' | 'person';
  name: string;
  contact_name: string | null;
  email: string | null;
  phone: string | null;
  address: string | null;
  reference: string | null;
}

function fromRow(r: Record<string, unknown>): Customer {
  return {
    id: Number(r.id),
    kind: r.kind as Customer['kind'],
    name: String(r.name),
    contactName: (r.contact_name as string | null) ?? null,
    email: (r.email as string | null) ?? null,
    phone: (r.phone as string | null) ?? null,
    address: (r.address as string | null) ?? null,
    reference: (r.reference as string | null) ?? null,
    createdAt: toDate(r.created_at)!,
    updatedAt: toDate(r.updated_at)!,
  };
}

/** A customer's editable fields, as the forms (console, portal) and the Management API name them. */
export function fieldsOf(c: Customer): CustomerFields {
  return {
    kind: c.kind,
    name: c.name,
    contact_name: c.contactName,
    email: c.email,
    phone: c.phone,
    address: c.address,
    reference: c.reference,
  };
}

export async function findById(db: Knex, id: number): Promise<Customer | undefined> {
  const row = await db('customers').where({ id }).first();
  return row ? fromRow(row) : undefined;
}

function filtered(db: Knex, q?: string) {
  const query = db('customers');
  if (q)
    query.where((w) =>
      w
        .whereRaw(...likeSql('name', q))
        .orWhereRaw(...likeSql('email', q))
        .orWhereRaw(...likeSql('contact_name', q))
        .orWhereRaw(...likeSql('reference', q)),
    );
  return query;
}

export async function list(db: Knex, q: string | undefined, limit: number, offset: number): Promise<Customer[]> {
  return (await filtered(db, q).orderBy('name').orderBy('id').limit(limit).offset(offset)).map(fromRow);
}

export async function count(db: Knex, q?: string): Promise<number> {
  return countOf(await filtered(db, q).count({ n: '*' }).first());
}

export async function update(db: Knex, id: number, f: CustomerFields, now: Date): Promise<void> {
  await db('customers')
    .where({ id })
    .update({ ...f, updated_at: now });
}

/**
 * The customers of a set of orders (a sub-query of order ids) every order of whom is in the set: the
 * customers a manager may add orders for (docs/decisions.md, "Search"). Order numbers are unique per
 * customer, so a number taken for such a customer is taken by an order the manager can see.
 */
function whollyIn(db: Knex, orderIds: Knex.QueryBuilder) {
  return db('customers')
    .whereIn('customers.id', orderIds.clone().clearSelect().select('orders.customer_id'))
    .whereNotExists(
      db('orders as other')
        .whereRaw('other.customer_id = customers.id')
        .whereNotIn('other.id', orderIds.clone())
        .select('other.id'),
    );
}

export async function listWhollyIn(db: Knex, orderIds: Knex.QueryBuilder, limit: number) {
  const rows = await whollyIn(db, orderIds)
    .orderBy('customers.name')
    .limit(limit)
    .select('customers.id', 'customers.name');
  return rows.map((r: { id: number; name: string }) => ({ id: Number(r.id), name: String(r.name) }));
}

export async function isWhollyIn(db: Knex, id: number, orderIds: Knex.QueryBuilder): Promise<boolean> {
  return !!(await whollyIn(db, orderIds).where('customers.id', id).first('customers.id'));
}

export async function hasOrders(db: Knex, id: number): Promise<boolean> {
  return !!(await db('orders').where({ customer_id: id }).first('id'));
}

export async function remove(db: Knex, id: number): Promise<void> {
  await db('customers').where({ id }).delete();
}

export function auditView(c: Customer) {
  const { id: _i, createdAt: _c, updatedAt: _u, ...rest } = c;
  return rest;
}

/** The Management API's customer list: all, or those with an order among `orderIds`; `q` searches like the console. */
export function apiQuery(db: Knex, f: { orderIds: Knex.QueryBuilder | null; q?: string }): Knex.QueryBuilder {
  const query = filtered(db, f.q);
  if (f.orderIds) query.whereIn('customers.id', f.orderIds.clone().clearSelect().select('orders.customer_id'));
  return query.select('customers.*');
}

export const fromApiRow = fromRow;

/** Whether one of `orderIds` (a manager's order scope) is an order of this customer. */
export async function hasOrderAmong(db: Knex, customerId: number, orderIds: Knex.QueryBuilder): Promise<boolean> {
  const row = await db('orders')
    .where('customer_id', customerId)
    .whereIn('id', orderIds.clone().clearSelect().select('orders.id'))
    .first('id');
  return !!row;
}
