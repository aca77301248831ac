import type { Knex } from 'knex';
import type { Clock } from '../lib/clock.ts';
import { inTransaction } from '../lib/transaction.ts';
import * as usage from '../models/usage.ts';

/**
 * Usage history (docs/decisions.md, "Usage history and pages"): the daily job writes one row per
 * license for the UTC day that has just ended. Everything but "devices by last seen" is computed
 * from what the database keeps for good (devices' activation and deactivation times, the activation
 * history, the running floating peak), so a day run again later gives the same figures; last seen
 * is overwritten by each check, so its buckets are as the job finds them (right after the day).
 */

const BATCH = 500;

/** A day's figures before anything is counted (a new object each time: the counts are raised in place). */
const quietDay = () => ({
  seatsUsed: 0,
  floatingPeak: null,
  activations: 0,
  refusals: 0,
  refusalReasons: {},
  seen7d: 0,
  seen30d: 0,
  seen90d: 0,
  seenOlder: 0,
});

/** The seat figures and history of one batch of licenses for one day. */
async function rowsOf(db: Knex, batch: usage.LicenseFacts[], day: string): Promise<usage.UsageRow[]> {
  const ids = batch.map((l) => l.id);
  const from = usage.startOfDay(day);
  const to = new Date(from.getTime() + usage.DAY_MS);
  const atEnd = await usage.activeAt(db, ids, to);
  const atStart = await usage.activeAt(db, ids, from);
  const history = await usage.historyCounts(db, ids, from, to);
  const peaks = await usage.floatingPeaksOf(db, ids, day);
  const startCount = new Map<number, number>();
  for (const d of atStart) startCount.set(d.licenseId, (startCount.get(d.licenseId) ?? 0) + 1);
  return batch.map((l) => {
    const row: usage.UsageRow = {
      licenseId: l.id,
      orderId: l.orderId,
      day,
      seatsBought: l.seatsBought,
      ...quietDay(),
    };
    for (const d of atEnd) {
      if (d.licenseId !== l.id) continue;
      row.seatsUsed += 1;
      const idleDays = (to.getTime() - d.lastSeenAt.getTime()) / usage.DAY_MS;
      if (idleDays <= 7) row.seen7d += 1;
      else if (idleDays <= 30) row.seen30d += 1;
      else if (idleDays <= 90) row.seen90d += 1;
      else row.seenOlder += 1;
    }
    for (const h of history) {
      if (h.licenseId !== l.id) continue;
      if (h.event === 'activated') row.activations += h.n;
      else {
        row.refusals += h.n;
        const code = h.detail ?? 'unknown';
        row.refusalReasons[code] = (row.refusalReasons[code] ?? 0) + h.n;
      }
    }
    // The slots held at once: at least those held at the start and at the end of the day, and the
    // running maximum the activations raised during it.
    if (l.floating) row.floatingPeak = Math.max(peaks.get(l.id) ?? 0, startCount.get(l.id) ?? 0, row.seatsUsed);
    return row;
  });
}

/** Writes (or writes again) every license's row of `day`; returns the number of rows. */
export async function snapshotDay(db: Knex, day: string, takenAt: Date): Promise<number> {
  const end = new Date(usage.startOfDay(day).getTime() + usage.DAY_MS);
  let afterId = 0;
  let written = 0;
  for (;;) {
    const batch = await usage.licensesBatch(db, end, afterId, BATCH);
    if (!batch.length) break;
    const rows = await rowsOf(db, batch, day);
    // A batch in one statement; a run at the same instant elsewhere may conflict on MariaDB: retried.
    await inTransaction(db, (trx) => usage.upsertDays(trx, rows, takenAt));
    written += batch.length;
    afterId = batch[batch.length - 1]!.id;
  }
  return written;
}

/**
 * The periodic job `usage.snapshot` (app/jobs.ts): the queue enqueues it once per day across all
 * processes, at 00:00 UTC; it snapshots the day before its period, and the days of the week before
 * that which have no snapshot at all (no process ran at their midnight). Run twice, it writes the
 * same rows.
 */
export async function snapshotPreviousDay(db: Knex, clock: Clock, payload: unknown): Promise<number> {
  const start = (payload as { periodStart?: string } | null)?.periodStart;
  const at = start && !Number.isNaN(Date.parse(start)) ? new Date(start) : clock.now();
  const yesterday = usage.addDays(usage.dayOf(at), -1);
  let written = await snapshotDay(db, yesterday, clock.now());
  // Days missed while no process ran at midnight (a week back at most, and never before the first
  // snapshot: an installation upgraded to this release starts its history on its first day) are
  // caught up now.
  const first = await usage.firstDay(db);
  const weekBack = usage.addDays(yesterday, -CATCH_UP_DAYS);
  const from = first && first > weekBack ? first : weekBack;
  if (!first || first >= yesterday) return written;
  const present = await usage.daysWithRows(db, from, usage.addDays(yesterday, -1));
  for (let day = from; day < yesterday; day = usage.addDays(day, 1))
    if (!present.has(day)) written += await snapshotDay(db, day, clock.now());
  return written;
}

/** How many days before yesterday the daily job fills in when they have no snapshot. */
export const CATCH_UP_DAYS = 6;

export const RANGES = [30, 90, 365] as const;
export type Range = (typeof RANGES)[number];
export const IDLE_DAYS = [7, 30, 90] as const;

/** `?days=` and `?idle=` of a usage page: one of the offered values, else the first. */
export function rangeOf(query: unknown): { days: Range; idle: number } {
  const q = (query ?? {}) as Record<string, unknown>;
  const days = RANGES.find((d) => String(d) === q.days) ?? 30;
  const idle = IDLE_DAYS.find((d) => String(d) === q.idle) ?? 30;
  return { days, idle };
}

/** The days shown: the last `days` complete days before today, oldest first, every day present (zero when no snapshot). */
export function fillDays(rows: usage.UsageDay[], today: string, days: number): usage.UsageDay[] {
  const byDay = new Map(rows.map((r) => [r.day, r]));
  const out: usage.UsageDay[] = [];
  for (let i = days; i >= 1; i--) {
    const day = usage.addDays(today, -i);
    out.push(byDay.get(day) ?? { day, seatsBought: null, ...quietDay() });
  }
  return out;
}

/** A usage page's figures: a license's days, an order's, or everything's, over the range. */
export async function historyOf(
  db: Knex,
  clock: Clock,
  of: { licenseId: number } | { orderId: number | null },
  days: number,
): Promise<usage.UsageDay[]> {
  const today = usage.dayOf(clock.now());
  const from = usage.addDays(today, -days);
  const to = usage.addDays(today, -1);
  const rows =
    'licenseId' in of
      ? await usage.daysOfLicense(db, of.licenseId, from, to)
      : await usage.daysSummed(db, of.orderId, from, to);
  return fillDays(rows, today, days);
}

/** The CSV columns (the same figures as the page's table; refusals by reason as `code:n;code:n`). */
export const CSV_HEADER = [
  'day',
  'seats_used',
  'seats_bought',
  'floating_peak',
  'activations',
  'refusals',
  'refusal_reasons',
  'devices_seen_7d',
  'devices_seen_30d',
  'devices_seen_90d',
  'devices_seen_older',
] as const;

export const reasonsText = (r: Record<string, number>) =>
  Object.entries(r)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([code, n]) => `${code}:${n}`)
    .join(';');

export const csvRow = (d: usage.UsageDay) => [
  d.day,
  d.seatsUsed,
  d.seatsBought,
  d.floatingPeak,
  d.activations,
  d.refusals,
  reasonsText(d.refusalReasons),
  d.seen7d,
  d.seen30d,
  d.seen90d,
  d.seenOlder,
];
