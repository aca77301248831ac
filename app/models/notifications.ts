import type { Knex } from 'knex';
import { parseJson, toDate } from './normalise.ts';

/** Occurrences of notifications (one row each, unique dedupe key) and the managers' digest items. */

export interface NewNotification {
  uid: string;
  dedupeKey: string;
  kind: string;
  orderId?: number | null;
  licenseId?: number | null;
  deviceId?: number | null;
  accountId?: number | null;
  detail: Record<string, unknown> | null;
  occurredAt: Date;
}

/**
 * Inserts the occurrence unless its dedupe key exists (INSERT … ON CONFLICT DO NOTHING / INSERT
 * IGNORE); its id, or null when the key was there (another check, maybe in another process, had it).
 */
export async function insertOnce(db: Knex, n: NewNotification): Promise<number | null> {
  await db('notifications')
    .insert({
      uid: n.uid,
      dedupe_key: n.dedupeKey,
      kind: n.kind,
      order_id: n.orderId ?? null,
      license_id: n.licenseId ?? null,
      device_id: n.deviceId ?? null,
      account_id: n.accountId ?? null,
      detail: n.detail === null ? null : JSON.stringify(n.detail),
      occurred_at: n.occurredAt,
    })
    .onConflict('dedupe_key')
    .ignore();
  // The drivers report an ignored insert differently: the row with this insert's own uid says whether it went in.
  const row = await db('notifications').where({ uid: n.uid }).first('id');
  return row ? Number(row.id) : null;
}

export async function addDigestItem(db: Knex, notificationId: number, accountId: number, now: Date): Promise<void> {
  await db('notification_digest_items')
    .insert({ notification_id: notificationId, account_id: accountId, created_at: now })
    .onConflict(['notification_id', 'account_id'])
    .ignore();
}

/** The accounts with digest items no digest took yet. */
export async function accountsWithWaitingItems(db: Knex): Promise<number[]> {
  const rows: { account_id: number }[] = await db('notification_digest_items')
    .whereNull('digest_id')
    .distinct('account_id')
    .orderBy('account_id');
  return rows.map((r) => Number(r.account_id));
}

export interface DigestItem {
  kind: string;
  orderId: number | null;
  detail: Record<string, unknown>;
  occurredAt: Date;
}

/**
 * Claims every waiting item of the account for digest `digestId` (one guarded update: an item a
 * concurrent digest took is not taken again) and returns the items this digest took, oldest first.
 */
export async function claimDigestItems(db: Knex, accountId: number, digestId: number): Promise<DigestItem[]> {
  await db('notification_digest_items')
    .where({ account_id: accountId })
    .whereNull('digest_id')
    .update({ digest_id: digestId });
  const rows = await db('notification_digest_items as i')
    .join('notifications as n', 'n.id', 'i.notification_id')
    .where({ 'i.digest_id': digestId })
    .orderBy('n.occurred_at')
    .orderBy('n.id')
    .select('n.kind', 'n.order_id', 'n.detail', 'n.occurred_at');
  return rows.map((r) => ({
    kind: String(r.kind),
    orderId: r.order_id === null ? null : Number(r.order_id),
    detail: parseJson<Record<string, unknown>>(r.detail) ?? {},
    occurredAt: toDate(r.occurred_at)!,
  }));
}

/** Enabled licenses whose `column` date lies in (from, to]. */
export async function licensesEndingWithin(
  db: Knex,
  column: 'expires_at' | 'maintenance_until',
  from: Date,
  to: Date,
): Promise<number[]> {
  const rows: { id: number }[] = await db('licenses')
    .where('enabled', true)
    .where(column, '>', from)
    .where(column, '<=', to)
    .orderBy('id')
    .select('id');
  return rows.map((r) => Number(r.id));
}

/** Active offline devices of enabled licenses whose lease ends in (from, to]. */
export async function leasesEndingWithin(db: Knex, from: Date, to: Date) {
  const rows = await db('devices')
    .join('licenses', 'licenses.id', 'devices.license_id')
    .whereNull('devices.deactivated_at')
    .where('devices.channel', 'offline')
    .where('licenses.enabled', true)
    .where('devices.lease_ends_at', '>', from)
    .where('devices.lease_ends_at', '<=', to)
    .orderBy('devices.id')
    .select(
      'devices.id',
      'devices.license_id',
      'devices.license_user_account_id',
      'devices.hostname',
      'devices.hardware_id',
      'devices.lease_ends_at',
    );
  return rows.map((r) => ({
    id: Number(r.id),
    licenseId: Number(r.license_id),
    userId: r.license_user_account_id === null ? null : Number(r.license_user_account_id),
    hostname: (r.hostname as string | null) ?? null,
    hardwareId: String(r.hardware_id),
    leaseEndsAt: toDate(r.lease_ends_at)!,
  }));
}

/**
 * Seats per order (docs/notifications.md, "Seats"): over its enabled, unexpired licenses with a
 * limit, the seats (a key-based license's max_activations; a user-based license's users' own limits
 * added up) and the seats in use (active devices).
 */
export async function seatUsage(db: Knex, now: Date) {
  const usable = (q: Knex.QueryBuilder) =>
    q
      .where('licenses.enabled', true)
      .where('licenses.unlimited_activations', false)
      .where((w) => w.whereNull('licenses.expires_at').orWhere('licenses.expires_at', '>', now));
  const keySeats: { order_id: number; seats: number }[] = await usable(
    db('licenses').join('products', 'products.id', 'licenses.product_id'),
  )
    .where('products.authorization_method', 'key')
    .groupBy('licenses.order_id')
    .select('licenses.order_id')
    .sum({ seats: 'licenses.max_activations' });
  const userSeats: { order_id: number; seats: number }[] = await usable(
    db('licenses')
      .join('products', 'products.id', 'licenses.product_id')
      .join('license_user_assignments as a', 'a.license_id', 'licenses.id'),
  )
    .where('products.authorization_method', 'user')
    .groupBy('licenses.order_id')
    .select('licenses.order_id')
    .sum({ seats: 'a.max_activations' });
  const used: { order_id: number; used: number }[] = await usable(
    db('licenses').join('devices', 'devices.license_id', 'licenses.id'),
  )
    .whereNull('devices.deactivated_at')
    .groupBy('licenses.order_id')
    .select('licenses.order_id')
    .count({ used: '*' });
  const byOrder = new Map<number, { seats: number; used: number }>();
  for (const r of [...keySeats, ...userSeats]) {
    const o = byOrder.get(Number(r.order_id)) ?? { seats: 0, used: 0 };
    o.seats += Number(r.seats ?? 0);
    byOrder.set(Number(r.order_id), o);
  }
  for (const r of used) {
    const o = byOrder.get(Number(r.order_id));
    if (o) o.used += Number(r.used);
  }
  const ids = [...byOrder.keys()].sort((a, b) => a - b);
  const refs: { id: number; order_ref: string }[] = ids.length
    ? await db('orders').whereIn('id', ids).select('id', 'order_ref')
    : [];
  const refOf = new Map(refs.map((r) => [Number(r.id), String(r.order_ref)]));
  return ids.map((orderId) => ({ orderId, orderRef: refOf.get(orderId) ?? String(orderId), ...byOrder.get(orderId)! }));
}

/** Floating, enabled licenses refused (activation_history: refused, check_refused) at least `min` times in (from, to]. */
export async function refusalCounts(db: Knex, from: Date, to: Date, min: number) {
  const rows = await db('activation_history as h')
    .join('licenses', 'licenses.id', 'h.license_id')
    .join('orders', 'orders.id', 'licenses.order_id')
    .join('products', 'products.id', 'licenses.product_id')
    .where('licenses.floating', true)
    .where('licenses.enabled', true)
    .whereIn('h.event', ['refused', 'check_refused'])
    .where('h.occurred_at', '>', from)
    .where('h.occurred_at', '<=', to)
    .groupBy('licenses.id', 'licenses.order_id', 'orders.order_ref', 'products.name', 'licenses.license_key')
    .havingRaw('COUNT(*) >= ?', [min])
    .orderBy('licenses.id')
    .select(
      'licenses.id',
      'licenses.order_id',
      'orders.order_ref',
      'products.name as product_name',
      'licenses.license_key',
    )
    .count({ refusals: '*' });
  return (rows as Record<string, unknown>[]).map((r) => ({
    licenseId: Number(r.id),
    orderId: Number(r.order_id),
    orderRef: String(r.order_ref),
    productName: String(r.product_name),
    licenseKey: (r.license_key as string | null) ?? null,
    refusals: Number(r.refusals),
  }));
}

/** What the staff digest reports for (since, until]. */
export async function weekStats(db: Knex, since: Date, until: Date) {
  const byKind: { kind: string; n: number }[] = await db('notifications')
    .whereIn('kind', ['license_expiring', 'maintenance_ending', 'lease_ending', 'seats_high', 'refusals_spike'])
    .where('occurred_at', '>', since)
    .where('occurred_at', '<=', until)
    .groupBy('kind')
    .select('kind')
    .count({ n: '*' });
  const one = async (q: Knex.QueryBuilder) => Number((await q.count({ n: '*' }).first())?.n ?? 0);
  return {
    kinds: Object.fromEntries(byKind.map((r) => [String(r.kind), Number(r.n)])) as Record<string, number>,
    openRenewals: await one(db('renewal_requests').whereIn('state', ['new', 'in_progress'])),
    failedMails: await one(
      db('mail_outbox').where('reason', 'smtp_failed').where('created_at', '>', since).where('created_at', '<=', until),
    ),
    failedWebhooks: await one(
      db('webhook_deliveries')
        .where('state', 'failed')
        .where('updated_at', '>', since)
        .where('updated_at', '<=', until),
    ),
  };
}
