import type { Knex } from 'knex';
import type { Account } from '../models/accounts.ts';
import * as orders from '../models/orders.ts';
import * as licenses from '../models/licenses.ts';
import * as dashboards from '../models/dashboards.ts';
import { scopeOrders } from '../policies/orders.ts';

/**
 * What the two dashboards show (docs/user-portal.md "Dashboard", docs/console.md "Overview"):
 * figures that lead somewhere, each read from an index range (models/dashboards.ts).
 */

/** The window of "recent" activity, in days. */
export const RECENT_DAYS = 30;
/** A device not seen for this many days is "not seen for a long time". */
export const STALE_DAYS = 90;
/** How many orders the manager's dashboard lists with their figures (the newest of the scope). */
export const DASHBOARD_ORDERS = 10;
/** Counts of security events stop here (the audit log narrows further). */
export const SECURITY_COUNT_CAP = 10_000;

/** Audit actions the console's overview counts as security events. */
export const SECURITY_ACTIONS = [
  'auth.login_failed',
  'auth.login_rate_limited',
  'auth.account_throttled',
  'auth.two_factor_failed',
  'auth.two_factor_rate_limited',
  'auth.password_reset_rate_limited',
  'security.refusals_throttled',
] as const;

/** Refusal codes that mean a forged, altered or replayed request (shown with the security events). */
export const FORGED_CODES = ['signature', 'deactivation_forged', 'nonce_reused'];

/** Orders with more licenses than this have their seats counted at most every ORDER_SEATS_MAX_AGE_MS. */
export const LIVE_SEATS_LIMIT = 10_000;
export const ORDER_SEATS_MAX_AGE_MS = 10 * 60_000;

export interface ManagerOrderRow extends orders.OrderSummary, dashboards.OrderSeats {
  expiring: dashboards.Expiring;
  refusals: number;
  /** When the seats were counted, when that was not just now (a large order's are kept a while). */
  seatsAsOf: Date | null;
}

/**
 * Seats and stale devices of the orders: counted now for orders of up to LIVE_SEATS_LIMIT licenses;
 * a larger order's (a read of its whole range) are kept for ORDER_SEATS_MAX_AGE_MS.
 */
async function seatsOf(db: Knex, list: orders.OrderSummary[], now: Date) {
  const staleBefore = dashboards.daysAgo(now, STALE_DAYS);
  const small = list.filter((o) => o.licenseCount <= LIVE_SEATS_LIMIT).map((o) => o.id);
  const large = list.filter((o) => o.licenseCount > LIVE_SEATS_LIMIT).map((o) => `order-seats:${o.id}`);
  const [live, kept] = await Promise.all([
    dashboards.orderSeats(db, small, now, staleBefore),
    dashboards.cachedFigures(db, large, now, ORDER_SEATS_MAX_AGE_MS, async (keys) => {
      const ids = keys.map((k) => Number(k.slice('order-seats:'.length)));
      const counted = await dashboards.orderSeats(db, ids, now, staleBefore);
      return new Map([...counted].map(([id, seats]) => [`order-seats:${id}`, seats]));
    }),
  ]);
  const out = new Map<number, { seats: dashboards.OrderSeats; asOf: Date | null }>();
  for (const [id, seats] of live) out.set(id, { seats, asOf: null });
  for (const [key, { value, computedAt }] of kept)
    out.set(Number(key.slice('order-seats:'.length)), {
      seats: value,
      asOf: computedAt.getTime() === now.getTime() ? null : computedAt,
    });
  return out;
}

/** The most orders whose refusals a manager's dashboard lists (their newest). */
export const REFUSAL_SCOPE_LIMIT = 1_000;

/**
 * The orders whose refusals the dashboard lists: for a manager their order ids (newest first, at
 * most REFUSAL_SCOPE_LIMIT), so each is one range of (order_id, action, occurred_at); for an admin
 * every order (the (action, occurred_at) ranges).
 */
async function refusalScope(db: Knex, account: Pick<Account, 'id' | 'role'>): Promise<number[] | 'all'> {
  if (account.role === 'admin') return 'all';
  return dashboards.orderIdsOf(db, account.id, REFUSAL_SCOPE_LIMIT);
}

/**
 * Licenses of the account's scope by status: counted on the view while the scope holds up to
 * LIVE_SEATS_LIMIT licenses (each order keeps its count), else kept for ORDER_SEATS_MAX_AGE_MS like
 * a large order's seats (a count of every license of the scope).
 */
export async function statusCounts(db: Knex, account: Pick<Account, 'id' | 'role'>, now: Date) {
  const scope = scopeOrders(db, account);
  const count = () => licenses.countByStatus(db, scope.clone().select('orders.id'), now);
  const held = Number((await scope.clone().sum({ n: 'orders.license_count' }).first())?.n ?? 0);
  if (held <= LIVE_SEATS_LIMIT) return count();
  const key = `status-counts:${account.role === 'admin' ? 'all' : account.id}`;
  const kept = await dashboards.cachedFigures(
    db,
    [key],
    now,
    ORDER_SEATS_MAX_AGE_MS,
    async () => new Map([[key, await count()]]),
  );
  return kept.get(key)!.value;
}

/** The manager's dashboard: the newest orders of their scope with their figures, and the scope's recent refusals. */
export async function managerDashboard(db: Knex, account: Pick<Account, 'id' | 'role'>, now: Date) {
  const scope = scopeOrders(db, account);
  const since = dashboards.daysAgo(now, RECENT_DAYS);
  const recent = await orders.listSummaries(scope, DASHBOARD_ORDERS);
  const ids = recent.map((o) => o.id);
  const [seats, expiring, refusalCounts, refusals] = await Promise.all([
    seatsOf(db, recent, now),
    dashboards.orderExpiring(db, ids, now),
    dashboards.refusalCounts(db, ids, since),
    dashboards.recentRefusals(db, await refusalScope(db, account), since, 10),
  ]);
  const refs = new Map(recent.map((o) => [o.id, o.orderRef]));
  const rows: ManagerOrderRow[] = recent.map((o) => ({
    ...o,
    ...seats.get(o.id)!.seats,
    seatsAsOf: seats.get(o.id)!.asOf,
    expiring: expiring.get(o.id)!,
    refusals: refusalCounts.get(o.id) ?? 0,
  }));
  return {
    orders: rows,
    refusals: refusals.map((r) => ({ ...r, orderRef: r.orderId ? (refs.get(r.orderId) ?? null) : null })),
    recentDays: RECENT_DAYS,
    staleDays: STALE_DAYS,
  };
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** A day is counted once and kept when it ended at least this long ago (late commits of its last moments). */
const DAY_SETTLED_MS = 10 * 60_000;

/**
 * Activations and refusals of the last RECENT_DAYS days by channel: each past (UTC) day counted
 * once and kept in dashboard_figures, the current day counted on each view — so a view reads at
 * most about one day of activation history.
 */
export async function recentActivity(db: Knex, now: Date) {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  const days = Array.from({ length: RECENT_DAYS - 1 }, (_, i) => today - (RECENT_DAYS - 1 - i) * DAY_MS);
  // Right after midnight the day before is still counted live (its last commits may be on their way).
  const settled = days.filter((d) => d + DAY_MS + DAY_SETTLED_MS <= now.getTime());
  const liveFrom = settled.length ? settled[settled.length - 1]! + DAY_MS : days[0]!;
  const key = (d: number) => `activity:${new Date(d).toISOString().slice(0, 10)}`;
  const [kept, live] = await Promise.all([
    dashboards.cachedFigures(db, settled.map(key), now, null, async (missing) => {
      const out = new Map<string, dashboards.ChannelActivity>();
      for (const d of settled.filter((x) => missing.includes(key(x))))
        out.set(key(d), await dashboards.channelActivity(db, new Date(d), new Date(d + DAY_MS)));
      return out;
    }),
    dashboards.channelActivity(db, new Date(liveFrom), new Date(now.getTime() + 1)),
  ]);
  const total = dashboards.emptyActivity();
  for (const part of [live, ...[...kept.values()].map((k) => k.value)])
    for (const c of dashboards.CHANNELS) {
      total[c].activated += part[c].activated;
      total[c].refused += part[c].refused;
    }
  return { activity: total, since: new Date(days[0]!) };
}

/** The vendor console's overview. */
export async function consoleDashboard(db: Knex, now: Date) {
  const since = dashboards.daysAgo(now, RECENT_DAYS);
  const [{ activity }, expiring, shortages, quotas, securityCounts, security, refusals] = await Promise.all([
    recentActivity(db, now),
    dashboards.expiringCounts(db, now),
    dashboards.seatShortages(db, since, 10),
    dashboards.quotasUsedUp(db, 20),
    dashboards.actionCounts(db, SECURITY_ACTIONS, since, SECURITY_COUNT_CAP),
    dashboards.recentOfActions(db, SECURITY_ACTIONS, since, 10),
    dashboards.recentOfActions(db, dashboards.REFUSAL_ACTIONS, since, 100),
  ]);
  const forged = refusals.filter((e) => e.code && FORGED_CODES.includes(e.code));
  const recentSecurity = [...security, ...forged]
    .sort((a, b) => b.occurredAt.getTime() - a.occurredAt.getTime() || b.id - a.id)
    .slice(0, 10);
  const busiest = Math.max(1, ...Object.values(activity).flatMap((a) => [a.activated, a.refused]));
  return {
    activity,
    busiest,
    expiring,
    shortages,
    quotas,
    securityCounts,
    recentSecurity,
    since,
    recentDays: RECENT_DAYS,
    countCap: SECURITY_COUNT_CAP,
  };
}
