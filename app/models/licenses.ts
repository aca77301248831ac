import type { Knex } from 'knex';
import { isSqlite } from '../../db/knexfile.ts';
import type { Entitlements } from './catalog.ts';
import { entitlementColumns } from './catalog.ts';
import { entitlementsFromRow } from './policies.ts';
import { countOf, toBool, toDate, whereStartsWith } from './normalise.ts';
import { WHOLE_LICENSE_KEY } from '../lib/license-keys.ts';

export const LICENSE_STATUSES = ['disabled', 'expired', 'active', 'inactive'] as const;
export type LicenseStatus = (typeof LICENSE_STATUSES)[number];

export interface License extends Entitlements {
  id: number;
  orderId: number;
  orderRef: string;
  customerName: string;
  productId: number;
  productName: string;
  productCode: string;
  authorizationMethod: 'key' | 'user';
  policyId: number | null;
  licenseKey: string | null;
  enabled: boolean;
  status: LicenseStatus;
  startDate: Date | null;
  expiresAt: Date | null;
  maintenanceUntil: Date | null;
  timesActivated: number;
  transferCount: number;
  note: string | null;
  dispatchedTo: string | null;
  dispatchedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** The derived status (docs/overview.md) as one SQL expression, so lists can filter and count by it. */
export function statusSql(db: Knex, now: Date, alias = 'licenses'): Knex.Raw {
  return db.raw(
    `CASE WHEN ${alias}.enabled = ? THEN 'disabled' WHEN ${alias}.expires_at IS NOT NULL AND ${alias}.expires_at <= ? THEN 'expired' WHEN ${alias}.times_activated > 0 THEN 'active' ELSE 'inactive' END`,
    [false, now],
  );
}

/** The same rule as statusSql, for a row already loaded. */
export function statusOf(
  l: { enabled: boolean; expiresAt: Date | null; timesActivated: number },
  now: Date,
): LicenseStatus {
  if (!l.enabled) return 'disabled';
  if (l.expiresAt && l.expiresAt.getTime() <= now.getTime()) return 'expired';
  return l.timesActivated > 0 ? 'active' : 'inactive';
}

/** Filters a licenses query by derived status using plain indexed conditions. */
function whereStatus(q: Knex.QueryBuilder, status: LicenseStatus, now: Date) {
  if (status === 'disabled') return q.where('licenses.enabled', false);
  q.where('licenses.enabled', true);
  if (status === 'expired') return q.whereNotNull('licenses.expires_at').where('licenses.expires_at', '<=', now);
  q.where((w) => w.whereNull('licenses.expires_at').orWhere('licenses.expires_at', '>', now));
  return status === 'active' ? q.where('licenses.times_activated', '>', 0) : q.where('licenses.times_activated', 0);
}

const SELECT = [
  'licenses.*',
  'products.name as product_name',
  'products.code as product_code',
  'products.authorization_method',
  'orders.order_ref',
  'customers.name as customer_name',
];

function joined(db: Knex) {
  return db('licenses')
    .join('products', 'products.id', 'licenses.product_id')
    .join('orders', 'orders.id', 'licenses.order_id')
    .join('customers', 'customers.id', 'orders.customer_id');
}

function fromRow(r: Record<string, unknown>, now: Date): License {
  const base = {
    enabled: toBool(r.enabled),
    expiresAt: toDate(r.expires_at),
    timesActivated: Number(r.times_activated),
  };
  return {
    id: Number(r.id),
    orderId: Number(r.order_id),
    orderRef: String(r.order_ref),
    customerName: String(r.customer_name),
    productId: Number(r.product_id),
    productName: String(r.product_name),
    productCode: String(r.product_code),
    authorizationMethod: r.authorization_method as License['authorizationMethod'],
    policyId: r.policy_id === null ? null : Number(r.policy_id),
    licenseKey: (r.license_key as string | null) ?? null,
    ...entitlementsFromRow(r),
    ...base,
    status: statusOf(base, now),
    startDate: toDate(r.start_date),
    maintenanceUntil: toDate(r.maintenance_until),
    transferCount: Number(r.transfer_count),
    note: (r.note as string | null) ?? null,
    dispatchedTo: (r.dispatched_to as string | null) ?? null,
    dispatchedAt: toDate(r.dispatched_at),
    createdAt: toDate(r.created_at)!,
    updatedAt: toDate(r.updated_at)!,
  };
}

export async function findById(db: Knex, id: number, now: Date): Promise<License | undefined> {
  const row = await joined(db).where('licenses.id', id).first(SELECT);
  return row ? fromRow(row, now) : undefined;
}

/** A key-based license by its key and its product's code (one statement: the activation's lookup). */
export async function findByKey(
  db: Knex,
  licenseKey: string,
  productCode: string,
  now: Date,
): Promise<License | undefined> {
  const row = await joined(db)
    .where('licenses.license_key', licenseKey)
    .where('products.code', productCode)
    .first(SELECT);
  return row ? fromRow(row, now) : undefined;
}

/** A license only when it belongs to an order of the given scope (see policies/orders.ts). */
export async function findInOrders(
  db: Knex,
  orderIds: Knex.QueryBuilder,
  id: number,
  now: Date,
): Promise<License | undefined> {
  const row = await joined(db).where('licenses.id', id).whereIn('licenses.order_id', orderIds).first(SELECT);
  return row ? fromRow(row, now) : undefined;
}

export interface LicenseFilter {
  orderId?: number;
  status?: LicenseStatus;
  /** Enabled or disabled, whatever else the status says (the Management API's `enabled` filter). */
  enabled?: boolean;
  productId?: number;
  policyId?: number;
  /** Changed at or after this time (a shop's incremental sync). */
  updatedSince?: Date;
  key?: string;
  userEmail?: string;
  /** Enabled and expiring after now and within this many days (the dashboards' 30/60/90 links). */
  expiringDays?: number;
  /** With an active device not seen for this many days. */
  staleDays?: number;
  /** Enabled, a seat limit, and every seat taken. */
  seatsFull?: boolean;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** Whether a filter narrows an order's licenses (else its count is the order's own). */
export const narrows = (f: LicenseFilter) =>
  !!(
    f.status ||
    f.enabled !== undefined ||
    f.productId ||
    f.policyId ||
    f.updatedSince ||
    f.key ||
    f.userEmail ||
    f.expiringDays ||
    f.staleDays ||
    f.seatsFull
  );

/** Every filter is on licenses' own columns (or a sub-query), so a count needs none of the joins. */
function filtered(db: Knex, f: LicenseFilter, now: Date, q: Knex.QueryBuilder = joined(db)) {
  if (f.orderId) q.where('licenses.order_id', f.orderId);
  if (f.status) whereStatus(q, f.status, now);
  if (f.enabled !== undefined) q.where('licenses.enabled', f.enabled);
  if (f.productId) q.where('licenses.product_id', f.productId);
  if (f.policyId) q.where('licenses.policy_id', f.policyId);
  if (f.updatedSince) q.where('licenses.updated_at', '>=', f.updatedSince);
  // A whole key is one entry of the unique index; a part of one, a range on it (on both databases:
  // a LIKE would read every license on SQLite).
  const key = f.key?.toUpperCase();
  if (key && WHOLE_LICENSE_KEY.test(key)) q.where('licenses.license_key', key);
  else if (key) whereStartsWith(db, q, 'licenses.license_key', key);
  if (f.expiringDays)
    q.where('licenses.enabled', true)
      .where('licenses.expires_at', '>', now)
      .where('licenses.expires_at', '<=', new Date(now.getTime() + f.expiringDays * DAY_MS));
  if (f.seatsFull)
    q.where('licenses.enabled', true)
      .where('licenses.unlimited_activations', false)
      .whereRaw('licenses.times_activated >= licenses.max_activations');
  // Per license, a probe of the devices index (license_id, deactivated_at, last_seen_at): an IN
  // sub-query would first list every stale device of every license.
  if (f.staleDays)
    q.whereExists(
      db('devices')
        .whereRaw('devices.license_id = licenses.id')
        .whereNull('devices.deactivated_at')
        .where('devices.last_seen_at', '<', new Date(now.getTime() - f.staleDays * DAY_MS))
        .select(db.raw('1')),
    );
  if (f.userEmail) {
    q.whereIn(
      'licenses.id',
      whereStartsWith(
        db,
        db('license_user_assignments').join('accounts', 'accounts.id', 'license_user_assignments.account_id'),
        'accounts.email',
        f.userEmail.toLowerCase(),
      ).select('license_user_assignments.license_id'),
    );
  }
  return q;
}

/**
 * A page of licenses, newest first. The page's ids come from licenses alone (an order's page walks
 * the (order_id, id) index backwards and stops after `limit`); only those rows are joined. Joining
 * first lets MySQL/MariaDB start from products and sort every license of the product (30 ms for
 * 10,000 licenses, seconds for a million).
 */
export async function list(db: Knex, f: LicenseFilter, now: Date, limit: number, offset: number): Promise<License[]> {
  const page = filtered(db, f, now, db('licenses'))
    .orderBy('licenses.id', 'desc')
    .limit(limit)
    .offset(offset)
    .select('licenses.id');
  const rows = await joined(db)
    .join(db.raw('(?) as page', [page]), 'page.id', 'licenses.id')
    .orderBy('licenses.id', 'desc')
    .select(SELECT);
  return rows.map((r: Record<string, unknown>) => fromRow(r, now));
}

/**
 * The Management API's license list: the filter within a scope of order ids (null: every order), as
 * full rows for cursorPage (which orders and limits it by licenses.id); fromApiRow reads a row.
 */
export function apiQuery(db: Knex, orderIds: Knex.QueryBuilder | null, f: LicenseFilter, now: Date): Knex.QueryBuilder {
  const q = filtered(db, f, now);
  if (orderIds) q.whereIn('licenses.order_id', orderIds);
  return q.select(SELECT);
}

export const fromApiRow = fromRow;

/** The short form of licenses just issued (id order), read in chunks: an issue may make 10,000. */
export async function summariesOf(db: Knex, ids: number[]) {
  const out: { id: number; license_key: string | null; product_id: number; policy_id: number | null }[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await db('licenses')
      .whereIn('id', ids.slice(i, i + 500))
      .orderBy('id')
      .select('id', 'license_key', 'product_id', 'policy_id');
    for (const r of rows as Record<string, unknown>[])
      out.push({
        id: Number(r.id),
        license_key: (r.license_key as string | null) ?? null,
        product_id: Number(r.product_id),
        policy_id: r.policy_id == null ? null : Number(r.policy_id),
      });
  }
  return out;
}

export async function count(db: Knex, f: LicenseFilter, now: Date): Promise<number> {
  // Without the joins (every license has its product, order and customer: NOT NULL foreign keys),
  // the count reads one index instead of four tables per license.
  return countOf(await filtered(db, f, now, db('licenses')).count({ n: '*' }).first());
}

/** The count of an order's licenses under a filter: the order's own count when nothing else filters. */
export async function countInOrder(
  db: Knex,
  order: { id: number; licenseCount: number },
  f: LicenseFilter,
  now: Date,
): Promise<number> {
  return narrows(f) ? count(db, { ...f, orderId: order.id }, now) : order.licenseCount;
}

/** License counts by status for a set of orders (a sub-query of order ids). */
export async function countByStatus(
  db: Knex,
  orderIds: Knex.QueryBuilder,
  now: Date,
): Promise<Record<LicenseStatus, number>> {
  const rows = await db('licenses')
    .whereIn('order_id', orderIds)
    .select({ status: statusSql(db, now) })
    .count({ n: '*' })
    .groupBy('status');
  const counts = Object.fromEntries(LICENSE_STATUSES.map((s) => [s, 0])) as Record<LicenseStatus, number>;
  for (const r of rows as { status: LicenseStatus; n: number | string }[]) counts[r.status] = Number(r.n);
  return counts;
}

/** Licenses assigned to an end user (user-based licenses), with product names. */
export async function listForLicenseUser(db: Knex, accountId: number, now: Date) {
  const rows = await db('license_user_assignments as a')
    .join('licenses', 'licenses.id', 'a.license_id')
    .join('products', 'products.id', 'licenses.product_id')
    .where('a.account_id', accountId)
    .orderBy('licenses.id', 'desc')
    .limit(200)
    .select(
      'licenses.id',
      'products.name as product_name',
      'licenses.expires_at',
      'a.max_activations',
      'a.times_activated',
      { status: statusSql(db, now) },
    );
  return rows.map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    productName: String(r.product_name),
    status: r.status as LicenseStatus,
    maxActivations: Number(r.max_activations),
    timesActivated: Number(r.times_activated),
  }));
}

export interface LicenseChanges {
  entitlements?: Entitlements;
  startDate?: Date | null;
  expiresAt?: Date | null;
  maintenanceUntil?: Date | null;
  note?: string | null;
  enabled?: boolean;
}

export async function update(db: Knex, id: number, c: LicenseChanges, now: Date): Promise<void> {
  const row: Record<string, unknown> = { updated_at: now };
  if (c.entitlements) Object.assign(row, entitlementColumns(c.entitlements));
  if (c.startDate !== undefined) row.start_date = c.startDate;
  if (c.expiresAt !== undefined) row.expires_at = c.expiresAt;
  if (c.maintenanceUntil !== undefined) row.maintenance_until = c.maintenanceUntil;
  if (c.note !== undefined) row.note = c.note;
  if (c.enabled !== undefined) row.enabled = c.enabled;
  await db('licenses').where({ id }).update(row);
}

export function auditView(l: License) {
  const {
    id: _i,
    orderRef: _o,
    customerName: _c,
    productName: _p,
    productCode: _pc,
    authorizationMethod: _a,
    status: _s,
    createdAt: _cr,
    updatedAt: _u,
    ...rest
  } = l;
  return rest;
}

/**
 * Locks the license row for update (MySQL; SQLite has one writer at a time anyway). Every transaction
 * that changes a license's devices or seats takes this lock before any other: the device set cannot
 * change under it, and no shared lock (a foreign-key check on the license) is ever upgraded while
 * another transaction waits for the row, which MySQL answers with a deadlock.
 */
export async function lockLicense(trx: Knex, licenseId: number): Promise<void> {
  if (isSqlite(trx)) return; // FOR UPDATE means nothing there: every transaction holds the file's write lock from BEGIN IMMEDIATE (db/knexfile.ts)
  await trx('licenses').where({ id: licenseId }).forUpdate().first('id');
}

export interface LicenseFeature {
  featureId: number;
  code: string;
  type: string;
  maxConsumption: number | null;
}

/** The features a license holds, by code (what its files carry). */
export async function featuresOf(db: Knex, licenseId: number): Promise<LicenseFeature[]> {
  const rows = await db('license_features')
    .join('features', 'features.id', 'license_features.feature_id')
    .where('license_features.license_id', licenseId)
    .orderBy('features.code')
    .select('features.id', 'features.code', 'features.type', 'license_features.max_consumption');
  return rows.map((r: Record<string, unknown>) => ({
    featureId: Number(r.id),
    code: String(r.code),
    type: String(r.type),
    maxConsumption: r.max_consumption === null ? null : Number(r.max_consumption),
  }));
}

/** Adds reported usage to a consumption feature the license holds (unknown or other features: nothing). */
export async function addConsumption(
  db: Knex,
  license: { id: number; productId: number },
  featureCode: string,
  amount: number,
): Promise<void> {
  const feature = await db('features')
    .where({ product_id: license.productId, code: featureCode, type: 'consumption' })
    .first('id');
  if (feature)
    await db('license_features')
      .where({ license_id: license.id, feature_id: feature.id })
      .update({ total_consumption: db.raw('total_consumption + ?', [amount]) });
}

/**
 * Locks a license already read and returns it as it is now: read again under the lock on MySQL (a
 * change may have committed between the read and the lock); on SQLite the read was made inside
 * BEGIN IMMEDIATE, which no other writer can cross, so it is current already.
 */
export async function lockFresh(trx: Knex, license: License, now: Date): Promise<License> {
  await lockLicense(trx, license.id);
  return isSqlite(trx) ? license : ((await findById(trx, license.id, now)) ?? license);
}

/** A license id by key (and product, when given). */
export async function idByKey(db: Knex, licenseKey: string, productId?: number): Promise<number | undefined> {
  const q = db('licenses').where({ license_key: licenseKey });
  if (productId !== undefined) q.where({ product_id: productId });
  const row = await q.first('id');
  return row ? Number(row.id) : undefined;
}

/** One seat more, guarded by `limit` (null: unlimited or counted elsewhere); false when none is free. */
export async function takeSeat(db: Knex, id: number, limit: number | null, now: Date): Promise<boolean> {
  const q = db('licenses').where({ id });
  if (limit !== null) q.where('times_activated', '<', limit);
  return Number(await q.update({ times_activated: db.raw('times_activated + 1'), updated_at: now })) === 1;
}

/** One transfer more, guarded by `limit` (null: unlimited); false when none is left. */
export async function takeTransfer(db: Knex, id: number, limit: number | null, now: Date): Promise<boolean> {
  const q = db('licenses').where({ id });
  if (limit !== null) q.where('transfer_count', '<', limit);
  return Number(await q.update({ transfer_count: db.raw('transfer_count + 1'), updated_at: now })) === 1;
}

/** A license reset: no seat in use. */
export async function clearSeats(db: Knex, id: number, now: Date): Promise<void> {
  await db('licenses').where({ id }).update({ times_activated: 0, updated_at: now });
}

/** License key → id, for the keys that are licenses of the order. */
export async function idsByKeysInOrder(db: Knex, orderId: number, keys: string[]): Promise<Map<string, number>> {
  const rows = await db('licenses')
    .where({ order_id: orderId })
    .whereIn('license_key', keys)
    .select('id', 'license_key');
  return new Map(rows.map((r: { id: number; license_key: string }) => [r.license_key, Number(r.id)]));
}
