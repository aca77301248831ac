import type { Knex } from 'knex';
import type { Channel } from './devices.ts';
import { countOf, parseJson, toDate } from './normalise.ts';

/**
 * The dashboards' figures (docs/decisions.md, "Dashboards"). Every query is an index range with a
 * limit, or a count over a bounded range (the last 30 days, the next 90) that an index of migration
 * 0017 answers without reading table rows.
 */

const DAY_MS = 24 * 60 * 60 * 1000;
export const daysAgo = (now: Date, days: number) => new Date(now.getTime() - days * DAY_MS);
export const daysAhead = (now: Date, days: number) => new Date(now.getTime() + days * DAY_MS);

export const EXPIRY_WINDOWS = [30, 60, 90] as const;
export const CHANNELS: Channel[] = ['online', 'offline', 'airgap'];

export interface OrderSeats {
  /** Seats in use on the order's enabled, unexpired licenses. */
  seatsUsed: number;
  /** Seats those licenses allow (licenses without a limit not counted: see `unlimited`). */
  seatsPurchased: number;
  /** How many of them have no seat limit. */
  unlimited: number;
  /** Active devices not seen since the cut-off. */
  staleDevices: number;
}

/**
 * Seats of each order: the order's range of the licenses index (order_id, enabled, expires_at, …),
 * read from the index alone — but the whole range, so a caller keeps it for a while for a large
 * order (cachedFigure). Active devices not seen since `staleBefore`: per license, one probe of the
 * devices index (license_id, deactivated_at, last_seen_at).
 */
export async function orderSeats(
  db: Knex,
  orderIds: number[],
  now: Date,
  staleBefore: Date,
): Promise<Map<number, OrderSeats>> {
  const out = new Map<number, OrderSeats>(
    orderIds.map((id) => [id, { seatsUsed: 0, seatsPurchased: 0, unlimited: 0, staleDevices: 0 }]),
  );
  if (!orderIds.length) return out;
  const [seats, stale] = await Promise.all([
    db('licenses')
      .whereIn('order_id', orderIds)
      .where('enabled', true)
      .where((w) => w.whereNull('expires_at').orWhere('expires_at', '>', now))
      .groupBy('order_id')
      .select(
        'order_id',
        db.raw('sum(times_activated) as used'),
        db.raw('sum(case when unlimited_activations = ? then max_activations else 0 end) as purchased', [false]),
        db.raw('sum(case when unlimited_activations = ? then 1 else 0 end) as unlimited', [true]),
      ),
    db('licenses')
      .join('devices', 'devices.license_id', 'licenses.id')
      .whereIn('licenses.order_id', orderIds)
      .whereNull('devices.deactivated_at')
      .where('devices.last_seen_at', '<', staleBefore)
      .groupBy('licenses.order_id')
      .select('licenses.order_id')
      .count({ n: '*' }),
  ]);
  for (const r of seats as Record<string, unknown>[]) {
    const f = out.get(Number(r.order_id))!;
    f.seatsUsed = Number(r.used ?? 0);
    f.seatsPurchased = Number(r.purchased ?? 0);
    f.unlimited = Number(r.unlimited ?? 0);
  }
  for (const r of stale as { order_id: number; n: number | string }[])
    out.get(Number(r.order_id))!.staleDevices = Number(r.n);
  return out;
}

export type Expiring = Record<(typeof EXPIRY_WINDOWS)[number], number>;

/**
 * Enabled licenses of each order expiring after now and within 30, 60 and 90 days (each includes
 * the shorter): one range of (order_id, enabled, expires_at) per order, as long as the licenses
 * expiring within 90 days.
 */
export async function orderExpiring(db: Knex, orderIds: number[], now: Date): Promise<Map<number, Expiring>> {
  const out = new Map<number, Expiring>(orderIds.map((id) => [id, { 30: 0, 60: 0, 90: 0 }]));
  if (!orderIds.length) return out;
  const within = (days: number) => db.raw('sum(case when expires_at <= ? then 1 else 0 end)', [daysAhead(now, days)]);
  const rows = await db('licenses')
    .whereIn('order_id', orderIds)
    .where('enabled', true)
    .where('expires_at', '>', now)
    .where('expires_at', '<=', daysAhead(now, 90))
    .groupBy('order_id')
    .select('order_id', { e30: within(30), e60: within(60), e90: within(90) });
  for (const r of rows as Record<string, unknown>[])
    out.set(Number(r.order_id), { 30: Number(r.e30 ?? 0), 60: Number(r.e60 ?? 0), 90: Number(r.e90 ?? 0) });
  return out;
}

/**
 * A figure kept in dashboard_figures: returned as stored while younger than `maxAgeMs` (null: for
 * ever), else computed, stored and returned. Two processes may compute the same figure at once;
 * the later write wins and a failed write (a conflict on a cluster) only means it is computed again.
 */
export async function cachedFigures<T>(
  db: Knex,
  keys: string[],
  now: Date,
  maxAgeMs: number | null,
  compute: (missing: string[]) => Promise<Map<string, T>>,
): Promise<Map<string, { value: T; computedAt: Date }>> {
  const out = new Map<string, { value: T; computedAt: Date }>();
  if (!keys.length) return out;
  const rows = await db('dashboard_figures').whereIn('key', keys).select('key', 'value', 'computed_at');
  for (const r of rows as { key: string; value: string; computed_at: unknown }[]) {
    const computedAt = toDate(r.computed_at)!;
    if (maxAgeMs === null || now.getTime() - computedAt.getTime() < maxAgeMs)
      out.set(r.key, { value: JSON.parse(r.value) as T, computedAt });
  }
  const missing = keys.filter((k) => !out.has(k));
  if (!missing.length) return out;
  const computed = await compute(missing);
  const fresh = [...computed].map(([key, value]) => ({ key, value: JSON.stringify(value), computed_at: now }));
  if (fresh.length)
    await db('dashboard_figures')
      .insert(fresh)
      .onConflict('key')
      .merge(['value', 'computed_at'])
      .catch(() => undefined);
  for (const [key, value] of computed) out.set(key, { value, computedAt: now });
  return out;
}

/** A manager's order ids, newest first (the primary key of manager_orders), at most `limit`. */
export async function orderIdsOf(db: Knex, accountId: number, limit: number): Promise<number[]> {
  const rows = await db('manager_orders').where('account_id', accountId).orderBy('order_id', 'desc').limit(limit);
  return rows.map((r: { order_id: number }) => Number(r.order_id));
}

export const REFUSAL_ACTIONS = ['activation.refused', 'deactivation.refused', 'check.refused'] as const;

export interface RefusalEvent {
  id: number;
  occurredAt: Date;
  action: string;
  code: string;
  channel: string | null;
  hardwareId: string | null;
  licenseId: number | null;
  orderId: number | null;
}

function refusalFromRow(r: Record<string, unknown>): RefusalEvent {
  const after = parseJson<{ code?: string; channel?: string; hardwareId?: string }>(r.after_state) ?? {};
  return {
    id: Number(r.id),
    occurredAt: toDate(r.occurred_at)!,
    action: String(r.action),
    code: String(after.code ?? ''),
    channel: after.channel ?? null,
    hardwareId: after.hardwareId ?? null,
    licenseId: r.object_type === 'license' && r.object_id !== null ? Number(r.object_id) : null,
    orderId: r.order_id === null || r.order_id === undefined ? null : Number(r.order_id),
  };
}

/**
 * The newest refusals recorded for the given orders since `since` (audit events carry the order):
 * one range of (order_id, action, occurred_at) per order and action, at most `limit` rows.
 */
export async function recentRefusals(
  db: Knex,
  orderIds: number[] | 'all',
  since: Date,
  limit: number,
): Promise<RefusalEvent[]> {
  if (orderIds !== 'all' && !orderIds.length) return [];
  const q = db('audit_events');
  if (orderIds === 'all') q.whereNotNull('order_id');
  else q.whereIn('order_id', orderIds);
  const rows = await q
    .whereIn('action', REFUSAL_ACTIONS)
    .where('occurred_at', '>=', since)
    .orderBy('occurred_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .select('id', 'occurred_at', 'action', 'object_type', 'object_id', 'order_id', 'after_state');
  return rows.map(refusalFromRow);
}

/** How many refusals each order had since `since` (counted from the same index, per order). */
export async function refusalCounts(db: Knex, orderIds: number[], since: Date): Promise<Map<number, number>> {
  const out = new Map<number, number>(orderIds.map((id) => [id, 0]));
  if (!orderIds.length) return out;
  const rows = await db('audit_events')
    .whereIn('order_id', orderIds)
    .whereIn('action', REFUSAL_ACTIONS)
    .where('occurred_at', '>=', since)
    .groupBy('order_id')
    .select('order_id')
    .count({ n: '*' });
  for (const r of rows as { order_id: number; n: number | string }[]) out.set(Number(r.order_id), Number(r.n));
  return out;
}

export type ChannelActivity = Record<Channel, { activated: number; refused: number }>;

export const emptyActivity = (): ChannelActivity =>
  Object.fromEntries(CHANNELS.map((c) => [c, { activated: 0, refused: 0 }])) as ChannelActivity;

/**
 * Activations and refusals (of a known license) from `from` until `to`, by channel: two ranges of
 * (event, occurred_at, channel), read from the index alone.
 */
export async function channelActivity(db: Knex, from: Date, to: Date): Promise<ChannelActivity> {
  const out = emptyActivity();
  const rows = await db('activation_history')
    .whereIn('event', ['activated', 'refused'])
    .where('occurred_at', '>=', from)
    .where('occurred_at', '<', to)
    .groupBy('event', 'channel')
    .select('event', 'channel')
    .count({ n: '*' });
  for (const r of rows as { event: 'activated' | 'refused'; channel: Channel; n: number | string }[])
    if (out[r.channel]) out[r.channel][r.event] = Number(r.n);
  return out;
}

/** Enabled licenses expiring after now and within 30, 60 and 90 days: one range of the expires_at index. */
export async function expiringCounts(db: Knex, now: Date): Promise<Expiring> {
  const within = (days: number) => db.raw('sum(case when expires_at <= ? then 1 else 0 end)', [daysAhead(now, days)]);
  const row = (await db('licenses')
    .where('expires_at', '>', now)
    .where('expires_at', '<=', daysAhead(now, 90))
    .where('enabled', true)
    .first({ e30: within(30), e60: within(60), e90: within(90) })) as Record<string, unknown> | undefined;
  return { 30: Number(row?.e30 ?? 0), 60: Number(row?.e60 ?? 0), 90: Number(row?.e90 ?? 0) };
}

export interface SeatShortage {
  orderId: number;
  orderRef: string;
  customerName: string;
  refusals: number;
}

/**
 * Orders whose activations were refused for want of a free seat since `since` (range of
 * (event, detail, occurred_at)), most refusals first.
 */
export async function seatShortages(db: Knex, since: Date, limit: number): Promise<SeatShortage[]> {
  const rows = await db('activation_history')
    .join('licenses', 'licenses.id', 'activation_history.license_id')
    .join('orders', 'orders.id', 'licenses.order_id')
    .join('customers', 'customers.id', 'orders.customer_id')
    .where({ 'activation_history.event': 'refused', 'activation_history.detail': 'no_seats' })
    .where('activation_history.occurred_at', '>=', since)
    .groupBy('orders.id', 'orders.order_ref', 'customers.name')
    .select('orders.id', 'orders.order_ref', 'customers.name as customer_name')
    .count({ n: '*' })
    .orderBy('n', 'desc')
    .orderBy('orders.id', 'desc')
    .limit(limit);
  return (rows as Record<string, unknown>[]).map((r) => ({
    orderId: Number(r.id),
    orderRef: String(r.order_ref),
    customerName: String(r.customer_name),
    refusals: Number(r.n),
  }));
}

export interface QuotaUsedUp {
  accountId: number;
  email: string;
  name: string;
  productName: string;
  quota: number;
  issued: number;
}

/** Managers' quotas with nothing left to issue (a small table: one row per manager and product). */
export async function quotasUsedUp(db: Knex, limit: number): Promise<QuotaUsedUp[]> {
  const rows = await db('manager_quotas')
    .join('accounts', 'accounts.id', 'manager_quotas.account_id')
    .join('products', 'products.id', 'manager_quotas.product_id')
    .whereNotNull('manager_quotas.quota')
    .whereRaw('manager_quotas.issued >= manager_quotas.quota')
    .orderBy('accounts.email')
    .orderBy('products.name')
    .limit(limit)
    .select(
      'accounts.id',
      'accounts.email',
      'accounts.name',
      'products.name as product_name',
      'manager_quotas.quota',
      'manager_quotas.issued',
    );
  return (rows as Record<string, unknown>[]).map((r) => ({
    accountId: Number(r.id),
    email: String(r.email),
    name: String(r.name),
    productName: String(r.product_name),
    quota: Number(r.quota),
    issued: Number(r.issued),
  }));
}

/** Counts of each action since `since`, each up to `cap` (a range of (action, occurred_at) that stops there). */
export async function actionCounts(
  db: Knex,
  actions: readonly string[],
  since: Date,
  cap: number,
): Promise<Record<string, number>> {
  const counts = await Promise.all(
    actions.map(async (action) => {
      const matching = db('audit_events')
        .where('action', action)
        .where('occurred_at', '>=', since)
        .select(db.raw('1'))
        .limit(cap)
        .as('matching');
      return countOf(await db.from(matching).count({ n: '*' }).first());
    }),
  );
  return Object.fromEntries(actions.map((a, i) => [a, counts[i]!]));
}

export interface SecurityEvent {
  id: number;
  occurredAt: Date;
  action: string;
  actorLabel: string | null;
  ip: string | null;
  /** A refusal's code (forged or replayed requests). */
  code: string | null;
}

/** The newest `limit` events of each action since `since` (one range each), merged newest first. */
export async function recentOfActions(
  db: Knex,
  actions: readonly string[],
  since: Date,
  limit: number,
): Promise<SecurityEvent[]> {
  const lists = await Promise.all(
    actions.map((action) =>
      db('audit_events')
        .where('action', action)
        .where('occurred_at', '>=', since)
        .orderBy('occurred_at', 'desc')
        .orderBy('id', 'desc')
        .limit(limit)
        .select('id', 'occurred_at', 'action', 'actor_label', 'ip', 'after_state'),
    ),
  );
  return lists
    .flat()
    .map((r: Record<string, unknown>) => ({
      id: Number(r.id),
      occurredAt: toDate(r.occurred_at)!,
      action: String(r.action),
      actorLabel: (r.actor_label as string | null) ?? null,
      ip: (r.ip as string | null) ?? null,
      code: parseJson<{ code?: string }>(r.after_state)?.code ?? null,
    }))
    .sort((a, b) => b.occurredAt.getTime() - a.occurredAt.getTime() || b.id - a.id);
}
