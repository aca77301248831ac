import type { Knex } from 'knex';
import { parseJson, toBool, toDate } from './normalise.ts';

/**
 * Usage history (db/migrations/0029_usage_history.ts): one row per license per UTC day, and the
 * running maximum of floating slots per license and day. Days are `YYYY-MM-DD` text (UTC).
 */

export const DAY_MS = 86_400_000;

/** The UTC day a moment falls in. */
export const dayOf = (at: Date) => at.toISOString().slice(0, 10);
/** The start of a UTC day. */
export const startOfDay = (day: string) => new Date(`${day}T00:00:00.000Z`);
/** The day `n` days after `day` (n may be negative). */
export const addDays = (day: string, n: number) => dayOf(new Date(startOfDay(day).getTime() + n * DAY_MS));

/** Idle buckets of the active devices by how long since they were last seen, at the end of the day. */
export const SEEN_BUCKETS = ['devices_7d', 'devices_30d', 'devices_90d', 'devices_older'] as const;

export interface UsageDay {
  day: string;
  seatsUsed: number;
  /** null: unlimited. */
  seatsBought: number | null;
  /** null: not a floating license (for an order: none of its licenses is floating). */
  floatingPeak: number | null;
  activations: number;
  refusals: number;
  refusalReasons: Record<string, number>;
  seen7d: number;
  seen30d: number;
  seen90d: number;
  seenOlder: number;
}

export interface UsageRow extends UsageDay {
  licenseId: number;
  orderId: number;
}

/** Raises the day's running maximum of floating slots held at once (call under the license row lock). */
export async function raiseFloatingPeak(db: Knex, licenseId: number, day: string, held: number): Promise<void> {
  await db('floating_peaks')
    .insert({ license_id: licenseId, day, peak: held })
    .onConflict(['license_id', 'day'])
    .ignore();
  // Guarded: only ever upwards, whatever ran before.
  await db('floating_peaks').where({ license_id: licenseId, day }).where('peak', '<', held).update({ peak: held });
}

/** Writes (or overwrites) the day's rows: one per license and day. */
export async function upsertDays(db: Knex, rows: UsageRow[], takenAt: Date): Promise<void> {
  if (!rows.length) return;
  const values = rows.map((r) => ({
    license_id: r.licenseId,
    order_id: r.orderId,
    day: r.day,
    seats_used: r.seatsUsed,
    seats_bought: r.seatsBought,
    floating_peak: r.floatingPeak,
    activations: r.activations,
    refusals: r.refusals,
    refusal_reasons: JSON.stringify(r.refusalReasons),
    devices_7d: r.seen7d,
    devices_30d: r.seen30d,
    devices_90d: r.seen90d,
    devices_older: r.seenOlder,
    taken_at: takenAt,
  }));
  await db('license_usage_days')
    .insert(values)
    .onConflict(['license_id', 'day'])
    .merge([
      'order_id',
      'seats_used',
      'seats_bought',
      'floating_peak',
      'activations',
      'refusals',
      'refusal_reasons',
      'devices_7d',
      'devices_30d',
      'devices_90d',
      'devices_older',
      'taken_at',
    ]);
}

export interface LicenseFacts {
  id: number;
  orderId: number;
  floating: boolean;
  seatsBought: number | null;
}

/** The licenses that existed at `before`, `limit` at a time after id `afterId`. */
export async function licensesBatch(db: Knex, before: Date, afterId: number, limit: number): Promise<LicenseFacts[]> {
  const rows = await db('licenses')
    .where('created_at', '<', before)
    .where('id', '>', afterId)
    .orderBy('id')
    .limit(limit)
    .select('id', 'order_id', 'floating', 'floating_users', 'max_activations', 'unlimited_activations');
  return rows.map((r: Record<string, unknown>) => {
    const floating = toBool(r.floating);
    return {
      id: Number(r.id),
      orderId: Number(r.order_id),
      floating,
      seatsBought: toBool(r.unlimited_activations)
        ? null
        : floating && r.floating_users
          ? Number(r.floating_users)
          : Number(r.max_activations),
    };
  });
}

/** The devices of these licenses that were active at `at`, with when each was last seen (or activated). */
export async function activeAt(db: Knex, licenseIds: number[], at: Date) {
  const rows = await db('devices')
    .whereIn('license_id', licenseIds)
    .where('activated_at', '<', at)
    .where((w) => w.whereNull('deactivated_at').orWhere('deactivated_at', '>=', at))
    .select('license_id', 'activated_at', 'last_seen_at');
  return rows.map((r: Record<string, unknown>) => ({
    licenseId: Number(r.license_id),
    lastSeenAt: toDate(r.last_seen_at) ?? toDate(r.activated_at)!,
  }));
}

const COUNTED_EVENTS = ['activated', 'refused', 'check_refused', 'deactivation_refused'];

/** Activations and refusals (by code) of these licenses in [from, to). */
export async function historyCounts(db: Knex, licenseIds: number[], from: Date, to: Date) {
  const rows = await db('activation_history')
    .whereIn('license_id', licenseIds)
    .whereIn('event', COUNTED_EVENTS)
    .where('occurred_at', '>=', from)
    .where('occurred_at', '<', to)
    .groupBy('license_id', 'event', 'detail')
    .select('license_id', 'event', 'detail')
    .count({ n: '*' });
  return rows.map((r: Record<string, unknown>) => ({
    licenseId: Number(r.license_id),
    event: String(r.event),
    detail: (r.detail as string | null) ?? null,
    n: Number(r.n),
  }));
}

export async function floatingPeaksOf(db: Knex, licenseIds: number[], day: string): Promise<Map<number, number>> {
  const rows = await db('floating_peaks').whereIn('license_id', licenseIds).where({ day }).select('license_id', 'peak');
  return new Map(rows.map((r: Record<string, unknown>) => [Number(r.license_id), Number(r.peak)]));
}

const fromRow = (r: Record<string, unknown>): UsageDay => ({
  day: String(r.day),
  seatsUsed: Number(r.seats_used ?? 0),
  seatsBought: r.seats_bought === null || r.seats_bought === undefined ? null : Number(r.seats_bought),
  floatingPeak: r.floating_peak === null || r.floating_peak === undefined ? null : Number(r.floating_peak),
  activations: Number(r.activations ?? 0),
  refusals: Number(r.refusals ?? 0),
  refusalReasons: {},
  seen7d: Number(r.devices_7d ?? 0),
  seen30d: Number(r.devices_30d ?? 0),
  seen90d: Number(r.devices_90d ?? 0),
  seenOlder: Number(r.devices_older ?? 0),
});

/** One license's days in [from, to] (inclusive), oldest first. */
export async function daysOfLicense(db: Knex, licenseId: number, from: string, to: string): Promise<UsageDay[]> {
  const rows = await db('license_usage_days')
    .where({ license_id: licenseId })
    .whereBetween('day', [from, to])
    .orderBy('day');
  return rows.map((r: Record<string, unknown>) => ({
    ...fromRow(r),
    refusalReasons: parseJson<Record<string, number>>(r.refusal_reasons) ?? {},
  }));
}

/** The first day any license has a snapshot of (null: none yet). */
export async function firstDay(db: Knex): Promise<string | null> {
  const row = await db('license_usage_days').min('day as day').first();
  return row?.day ? String(row.day) : null;
}

/** The days between `from` and `to` (inclusive) that have a snapshot of some license. */
export async function daysWithRows(db: Knex, from: string, to: string): Promise<Set<string>> {
  const rows: { day: string }[] = await db('license_usage_days').whereBetween('day', [from, to]).distinct('day');
  return new Set(rows.map((r) => String(r.day)));
}

/**
 * The days of several licenses summed per day (an order, or everything when `orderId` is null):
 * seats bought is null as soon as one license is unlimited that day; the floating peak is the sum
 * of the licenses' own peaks (null when none is floating).
 */
export async function daysSummed(db: Knex, orderId: number | null, from: string, to: string): Promise<UsageDay[]> {
  const q = db('license_usage_days').whereBetween('day', [from, to]);
  if (orderId !== null) q.where({ order_id: orderId });
  const rows = await q
    .groupBy('day')
    .orderBy('day')
    .select(
      'day',
      db.raw('sum(seats_used) as seats_used'),
      db.raw(
        'case when sum(case when seats_bought is null then 1 else 0 end) > 0 then null else sum(seats_bought) end as seats_bought',
      ),
      db.raw('sum(floating_peak) as floating_peak'),
      db.raw('sum(activations) as activations'),
      db.raw('sum(refusals) as refusals'),
      db.raw('sum(devices_7d) as devices_7d'),
      db.raw('sum(devices_30d) as devices_30d'),
      db.raw('sum(devices_90d) as devices_90d'),
      db.raw('sum(devices_older) as devices_older'),
    );
  // Refusals by reason: added up per day from each license's JSON (a few codes per row).
  const reasonsQ = db('license_usage_days').whereBetween('day', [from, to]).where('refusals', '>', 0);
  if (orderId !== null) reasonsQ.where({ order_id: orderId });
  const reasons = new Map<string, Record<string, number>>();
  for (const r of await reasonsQ.select('day', 'refusal_reasons')) {
    const day = String(r.day);
    const sum = reasons.get(day) ?? {};
    for (const [code, n] of Object.entries(parseJson<Record<string, number>>(r.refusal_reasons) ?? {}))
      sum[code] = (sum[code] ?? 0) + Number(n);
    reasons.set(day, sum);
  }
  return rows.map((r: Record<string, unknown>) => ({
    ...fromRow(r),
    refusalReasons: reasons.get(String(r.day)) ?? {},
  }));
}

/** Active devices of these licenses not seen since `before` (or never seen and activated before it), oldest first. */
export async function idleDevices(db: Knex, licenseIds: Knex.QueryBuilder | number[], before: Date, limit = 200) {
  const rows = await db('devices')
    .join('licenses', 'licenses.id', 'devices.license_id')
    .whereIn('devices.license_id', licenseIds)
    .whereNull('devices.deactivated_at')
    .where((w) =>
      w
        .where('devices.last_seen_at', '<', before)
        .orWhere((n) => n.whereNull('devices.last_seen_at').where('devices.activated_at', '<', before)),
    )
    .orderBy('devices.last_seen_at')
    .orderBy('devices.id')
    .limit(limit)
    .select(
      'devices.id',
      'devices.license_id',
      'devices.hardware_id',
      'devices.hostname',
      'devices.activated_at',
      'devices.last_seen_at',
      'licenses.license_key',
    );
  return rows.map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    licenseId: Number(r.license_id),
    licenseKey: (r.license_key as string | null) ?? null,
    hardwareId: String(r.hardware_id),
    hostname: (r.hostname as string | null) ?? null,
    lastSeenAt: toDate(r.last_seen_at) ?? toDate(r.activated_at)!,
  }));
}
