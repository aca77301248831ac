import type { Knex } from 'knex';
import { CROCKFORD, WHOLE_LICENSE_KEY, normaliseLicenseKey } from '../lib/license-keys.ts';
import { likeSql, toDate, whereStartsWith } from './normalise.ts';

/**
 * One search box over licenses and orders (docs/decisions.md, "Search"). Each kind of match is its
 * own query on its own index, bounded and newest first, and every one is limited to `orderIds` (a
 * sub-query of the orders in scope, policies/orders.ts; null: every order, the console), so nothing
 * outside the scope is ever read into an answer.
 */

/** At most this many licenses and this many orders per search. */
export const SEARCH_LIMIT = 50;

export type LicenseMatch = 'key' | 'email' | 'hardware';
export type OrderMatch = 'orderRef' | 'customer';

export interface LicenseHit {
  id: number;
  licenseKey: string | null;
  productName: string;
  orderId: number;
  orderRef: string;
  customerName: string;
  createdAt: Date;
  /** What matched: the kind and the matching text (the key, a user's e-mail, a hardware id). */
  matches: { kind: LicenseMatch; text: string }[];
}

export interface OrderHit {
  id: number;
  orderRef: string;
  customerName: string;
  licenseCount: number;
  createdAt: Date;
  matches: { kind: OrderMatch; text: string }[];
}

export interface SearchResults {
  licenses: LicenseHit[];
  orders: OrderHit[];
}

type Scope = Knex.QueryBuilder | null;

const inScope = (q: Knex.QueryBuilder, column: string, orderIds: Scope) =>
  orderIds ? q.whereIn(column, orderIds.clone()) : q;

/** Whether `text` can be (the start of) a license key once normalised: Crockford symbols only. */
function keyPrefix(text: string): string | null {
  const key = normaliseLicenseKey(text);
  if (!key) return null;
  const symbols = key.replace(/-/g, '');
  return [...symbols].every((c) => CROCKFORD.includes(c)) ? key : null;
}

/** License ids (newest first) whose key is `key` (a whole key: the unique index) or starts with it (a range on it). */
async function byKey(db: Knex, key: string, orderIds: Scope) {
  const q = db('licenses');
  if (WHOLE_LICENSE_KEY.test(key)) q.where('licenses.license_key', key);
  else whereStartsWith(db, q, 'licenses.license_key', key);
  const rows = await inScope(q, 'licenses.order_id', orderIds)
    .orderBy('licenses.id', 'desc')
    .limit(SEARCH_LIMIT)
    .select('licenses.id', 'licenses.license_key');
  return rows.map((r: { id: number; license_key: string }) => ({
    id: Number(r.id),
    kind: 'key' as const,
    text: String(r.license_key),
  }));
}

/** Licenses assigned to an account whose e-mail is `email` or starts with it (the unique index on accounts.email). */
async function byEmail(db: Knex, email: string, orderIds: Scope) {
  const q = whereStartsWith(
    db,
    db('accounts')
      .join('license_user_assignments', 'license_user_assignments.account_id', 'accounts.id')
      .join('licenses', 'licenses.id', 'license_user_assignments.license_id'),
    'accounts.email',
    email.toLowerCase(),
  );
  const rows = await inScope(q, 'licenses.order_id', orderIds)
    .orderBy('licenses.id', 'desc')
    .limit(SEARCH_LIMIT)
    .select('licenses.id', 'accounts.email');
  return rows.map((r: { id: number; email: string }) => ({
    id: Number(r.id),
    kind: 'email' as const,
    text: String(r.email),
  }));
}

/** Licenses with a device (active or not) whose hardware id is `hardwareId` or starts with it (index on devices.hardware_id). */
async function byHardware(db: Knex, hardwareId: string, orderIds: Scope) {
  const q = whereStartsWith(
    db,
    db('devices').join('licenses', 'licenses.id', 'devices.license_id'),
    'devices.hardware_id',
    hardwareId,
  );
  const rows = await inScope(q, 'licenses.order_id', orderIds)
    .distinct('licenses.id', 'devices.hardware_id')
    .orderBy('licenses.id', 'desc')
    .limit(SEARCH_LIMIT);
  return rows.map((r: { id: number; hardware_id: string }) => ({
    id: Number(r.id),
    kind: 'hardware' as const,
    text: String(r.hardware_id),
  }));
}

/** Orders whose number is `ref` or starts with it (index on orders.order_ref, migration 0011). */
async function byOrderRef(db: Knex, ref: string, orderIds: Scope) {
  const rows = await inScope(whereStartsWith(db, db('orders'), 'orders.order_ref', ref), 'orders.id', orderIds)
    .orderBy('orders.id', 'desc')
    .limit(SEARCH_LIMIT)
    .select('orders.id', 'orders.order_ref');
  return rows.map((r: { id: number; order_ref: string }) => ({
    id: Number(r.id),
    kind: 'orderRef' as const,
    text: String(r.order_ref),
  }));
}

/**
 * Orders of customers whose name contains `text`, ignoring case (a LIKE with the user's wildcards
 * escaped). A "contains" cannot use the name index: it reads customers, then each match's orders
 * through orders.customer_id.
 */
async function byCustomerName(db: Knex, text: string, orderIds: Scope) {
  const q = db('orders')
    .join('customers', 'customers.id', 'orders.customer_id')
    .whereRaw(...likeSql('customers.name', text));
  const rows = await inScope(q, 'orders.id', orderIds)
    .orderBy('orders.id', 'desc')
    .limit(SEARCH_LIMIT)
    .select('orders.id', 'customers.name');
  return rows.map((r: { id: number; name: string }) => ({
    id: Number(r.id),
    kind: 'customer' as const,
    text: String(r.name),
  }));
}

/** Groups matches by id, newest first, at most SEARCH_LIMIT ids. */
function grouped<K extends string>(found: { id: number; kind: K; text: string }[][]) {
  const byId = new Map<number, { kind: K; text: string }[]>();
  for (const m of found.flat()) {
    const list = byId.get(m.id) ?? [];
    if (!list.some((x) => x.kind === m.kind && x.text === m.text)) list.push({ kind: m.kind, text: m.text });
    byId.set(m.id, list);
  }
  const ids = [...byId.keys()].sort((a, b) => b - a).slice(0, SEARCH_LIMIT);
  return { ids, byId };
}

async function licenseRows(db: Knex, ids: number[]) {
  if (!ids.length) return [];
  return db('licenses')
    .join('products', 'products.id', 'licenses.product_id')
    .join('orders', 'orders.id', 'licenses.order_id')
    .join('customers', 'customers.id', 'orders.customer_id')
    .whereIn('licenses.id', ids)
    .select(
      'licenses.id',
      'licenses.license_key',
      'licenses.order_id',
      'licenses.created_at',
      'products.name as product_name',
      'orders.order_ref',
      'customers.name as customer_name',
    );
}

async function orderRows(db: Knex, ids: number[]) {
  if (!ids.length) return [];
  return db('orders')
    .join('customers', 'customers.id', 'orders.customer_id')
    .whereIn('orders.id', ids)
    .select(
      'orders.id',
      'orders.order_ref',
      'orders.license_count',
      'orders.created_at',
      'customers.name as customer_name',
    );
}

/**
 * Licenses by key (whole or its start), a user's e-mail (whole or its start) or a hardware id
 * (whole or its start); orders by number (whole or its start) or customer name (contains). Only
 * orders in `orderIds` (null: all) and their licenses are looked at.
 */
export async function search(db: Knex, orderIds: Scope, text: string): Promise<SearchResults> {
  const key = keyPrefix(text);
  const oneWord = !/\s/.test(text);
  const [keys, emails, hardware, refs, names] = await Promise.all([
    key ? byKey(db, key, orderIds) : [],
    oneWord ? byEmail(db, text, orderIds) : [],
    oneWord ? byHardware(db, text, orderIds) : [],
    byOrderRef(db, text, orderIds),
    byCustomerName(db, text, orderIds),
  ]);
  const l = grouped<LicenseMatch>([keys, emails, hardware]);
  const o = grouped<OrderMatch>([refs, names]);
  const [lRows, oRows] = await Promise.all([licenseRows(db, l.ids), orderRows(db, o.ids)]);
  const lById = new Map(lRows.map((r: Record<string, unknown>) => [Number(r.id), r]));
  const oById = new Map(oRows.map((r: Record<string, unknown>) => [Number(r.id), r]));
  return {
    licenses: l.ids.flatMap((id) => {
      const r = lById.get(id);
      if (!r) return [];
      return [
        {
          id,
          licenseKey: (r.license_key as string | null) ?? null,
          productName: String(r.product_name),
          orderId: Number(r.order_id),
          orderRef: String(r.order_ref),
          customerName: String(r.customer_name),
          createdAt: toDate(r.created_at)!,
          matches: l.byId.get(id)!,
        },
      ];
    }),
    orders: o.ids.flatMap((id) => {
      const r = oById.get(id);
      if (!r) return [];
      return [
        {
          id,
          orderRef: String(r.order_ref),
          customerName: String(r.customer_name),
          licenseCount: Number(r.license_count),
          createdAt: toDate(r.created_at)!,
          matches: o.byId.get(id)!,
        },
      ];
    }),
  };
}
