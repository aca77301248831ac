import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { AppContext } from '../app.ts';
import { inTransaction } from '../lib/transaction.ts';
import * as licenses from '../models/licenses.ts';
import * as notifications from '../models/notifications.ts';
import type { Settings } from '../models/settings.ts';
import { recordAudit } from './audit.ts';
import { systemActor } from './context.ts';
import { type MailKind, sendMail } from './mail.ts';
import { addressesWithKindOff, isTurnedOff, type NotificationKind } from './unsubscribe.ts';

/**
 * The notification engine (docs/notifications.md). The periodic job `notifications.run` (hourly, once
 * per hour across processes) runs the checks, then sends the digests that are due.
 *
 * Each occurrence — a license entering an expiry or maintenance window, an order's seats running
 * high, an offline device's lease running out, a floating license's refusals spiking — is one row of
 * `notifications` with a UNIQUE dedupe key, inserted in the same transaction as the mails and
 * manager-digest items it causes: a second check (the next hour, another process at the same instant)
 * meets the key and does nothing, so nothing is ever sent twice.
 */

const DAY_MS = 86_400_000;
/** At most this many items in one manager's digest; the rest are counted (the portal shows them all). */
export const MAX_DIGEST_ITEMS = 100;
const WEEK_MS = 7 * DAY_MS;

/** The subset of the app's context the engine uses (a job gets the whole context). */
export type NotifyDeps = Pick<
  AppContext,
  'db' | 'clock' | 'mailer' | 'baseUrl' | 'translatorFor' | 'config' | 'settings' | 'logger'
>;

interface Recipient {
  email: string;
  name: string | null;
  language: string | null;
}

const day = (d: Date) => d.toISOString().slice(0, 10);

/** What one run did (for the log and the tests). */
export interface RunReport {
  occurrences: number;
  mails: number;
  managerDigests: number;
  staffDigests: number;
}

/** The periodic job: every check, then the digests due; nothing when the vendor turned notifications off. */
export async function runNotifications(deps: NotifyDeps): Promise<RunReport> {
  const report: RunReport = { occurrences: 0, mails: 0, managerDigests: 0, staffDigests: 0 };
  const settings = await deps.settings();
  if (!settings.notificationsEnabled) return report;
  await runChecks(deps, settings, report);
  report.managerDigests = await sendManagerDigests(deps, settings);
  report.staffDigests = await sendStaffDigests(deps, settings);
  if (report.occurrences || report.managerDigests || report.staffDigests)
    deps.logger.info({ ...report }, 'notifications sent');
  return report;
}

/** Only the checks (the concurrency test runs two at the same instant). */
export async function runChecks(
  deps: NotifyDeps,
  settings: Settings,
  report: RunReport = { occurrences: 0, mails: 0, managerDigests: 0, staffDigests: 0 },
): Promise<RunReport> {
  await checkDateWindows(deps, 'license_expiring', 'expires_at', settings.expiryWindowsDays, report);
  await checkDateWindows(deps, 'maintenance_ending', 'maintenance_until', settings.maintenanceWindowsDays, report);
  await checkLeases(deps, settings.leaseWarningDays, report);
  await checkSeats(deps, settings.seatsThresholdPercent, report);
  await checkRefusals(deps, settings.refusalSpikeThreshold, report);
  return report;
}

/** The narrowest window (in days) `left` ms fall in, or null when in none. */
export function narrowestWindow(windows: readonly number[], leftMs: number): number | null {
  const inside = windows.filter((d) => leftMs <= d * DAY_MS);
  return inside.length ? Math.min(...inside) : null;
}

/**
 * One occurrence with everything it causes, in one transaction: the row (its dedupe key decides),
 * then `effects` (mails, digest items). False when the key existed: nothing happens.
 */
async function occur(
  deps: NotifyDeps,
  n: Omit<notifications.NewNotification, 'uid'>,
  effects: (trx: Knex, id: number) => Promise<number>,
  report: RunReport,
): Promise<boolean> {
  return inTransaction(deps.db, async (trx) => {
    const id = await notifications.insertOnce(trx, { ...n, uid: crypto.randomBytes(12).toString('hex') });
    if (id === null) return false;
    report.occurrences += 1;
    report.mails += await effects(trx, id);
    return true;
  });
}

/** The enabled managers of an order (their digest gets the order's items). */
async function managersOf(db: Knex, orderId: number): Promise<number[]> {
  const rows: { id: number }[] = await db('manager_orders')
    .join('accounts', 'accounts.id', 'manager_orders.account_id')
    .where({ 'manager_orders.order_id': orderId, 'accounts.role': 'manager', 'accounts.disabled': false })
    .select('accounts.id');
  return rows.map((r) => Number(r.id));
}

/** The people of a license: its users (enabled accounts) and its dispatch recipient, once per address. */
async function licenseRecipients(db: Knex, l: licenses.License): Promise<Recipient[]> {
  const users: { email: string; name: string; language: string }[] = await db('license_user_assignments')
    .join('accounts', 'accounts.id', 'license_user_assignments.account_id')
    .where({ 'license_user_assignments.license_id': l.id, 'accounts.disabled': false })
    .orderBy('accounts.id')
    .select('accounts.email', 'accounts.name', 'accounts.language');
  const out = new Map<string, Recipient>();
  for (const u of users) out.set(u.email.toLowerCase(), { email: u.email, name: u.name, language: u.language });
  if (l.dispatchedTo && !out.has(l.dispatchedTo.toLowerCase()))
    out.set(l.dispatchedTo.toLowerCase(), await byAddress(db, l.dispatchedTo));
  return [...out.values()];
}

/** A dispatch recipient: the account with that address (its language), else the address alone. */
async function byAddress(db: Knex, email: string): Promise<Recipient> {
  const a = await db('accounts')
    .whereRaw('LOWER(email) = ?', [email.toLowerCase()])
    .where({ disabled: false })
    .first('name', 'language');
  return { email, name: a?.name ?? null, language: a?.language ?? null };
}

interface Mailing {
  recipients: Recipient[];
  kind: MailKind;
  notification: NotificationKind;
  brandingId: number | null;
  data: Parameters<typeof sendMail>[2]['data'];
}

/** Mails `kind` to each recipient who did not turn `notification` off; returns how many. */
async function mailEach(deps: NotifyDeps, trx: Knex, m: Mailing): Promise<number> {
  const off = await addressesWithKindOff(
    trx,
    m.notification,
    m.recipients.map((r) => r.email),
  );
  let sent = 0;
  for (const r of m.recipients) {
    if (off.has(r.email.toLowerCase())) continue;
    await sendMail(
      { ...deps, db: trx, brandingId: m.brandingId },
      m.kind,
      {
        to: r.email,
        language: r.language,
        unsubscribe: m.notification,
        data: (url) => ({ name: r.name, ...m.data(url) }),
      },
      { db: trx },
    );
    sent += 1;
  }
  return sent;
}

/** Adds one digest item per enabled manager of the order. */
async function addDigestItems(trx: Knex, notificationId: number, orderId: number, now: Date): Promise<void> {
  for (const accountId of await managersOf(trx, orderId))
    await notifications.addDigestItem(trx, notificationId, accountId, now);
}

const brandingOf = async (db: Knex, orderId: number): Promise<number | null> => {
  const row = await db('orders').where({ id: orderId }).first('branding_id');
  return row?.branding_id ? Number(row.branding_id) : null;
};

/**
 * Licenses expiring (`expires_at`) or whose maintenance ends (`maintenance_until`) within a window:
 * the narrowest window a license is in, once per license, window and date — a license renewed to a
 * new date is announced again; one first seen 5 days before its end gets the 7-day reminder only.
 */
async function checkDateWindows(
  deps: NotifyDeps,
  kind: 'license_expiring' | 'maintenance_ending',
  column: 'expires_at' | 'maintenance_until',
  windows: readonly number[],
  report: RunReport,
): Promise<void> {
  const now = deps.clock.now();
  const widest = Math.max(...windows);
  const ids = await notifications.licensesEndingWithin(deps.db, column, now, new Date(now.getTime() + widest * DAY_MS));
  const mailKind: MailKind = kind === 'license_expiring' ? 'license-expiring' : 'maintenance-ending';
  for (const id of ids) {
    const l = await licenses.findById(deps.db, id, now);
    const date = kind === 'license_expiring' ? l?.expiresAt : l?.maintenanceUntil;
    if (!l || !date) continue;
    const days = narrowestWindow(windows, date.getTime() - now.getTime());
    if (days === null) continue;
    const detail = {
      orderRef: l.orderRef,
      product: l.productName,
      licenseKey: l.licenseKey,
      date: day(date),
      days,
      daysLeft: Math.max(0, Math.ceil((date.getTime() - now.getTime()) / DAY_MS)),
    };
    await occur(
      deps,
      {
        dedupeKey: `${kind}:${l.id}:${days}:${date.toISOString()}`,
        kind,
        orderId: l.orderId,
        licenseId: l.id,
        detail,
        occurredAt: now,
      },
      async (trx, nid) => {
        await addDigestItems(trx, nid, l.orderId, now);
        const recipients = await licenseRecipients(trx, l);
        return mailEach(deps, trx, {
          recipients,
          kind: mailKind,
          notification: kind,
          brandingId: await brandingOf(trx, l.orderId),
          data: (url) => ({ ...detail, link: url('portal', (p) => p.portal()) }),
        });
      },
      report,
    );
  }
}

/**
 * Offline devices whose lease (the end of the newest file issued to them, `devices.lease_ends_at`)
 * runs out within `days`: once per device and lease end (a refresh file moves it: announced again).
 * To the device's user, else the license's dispatch recipient; and the order's managers' digest.
 */
async function checkLeases(deps: NotifyDeps, days: number, report: RunReport): Promise<void> {
  const now = deps.clock.now();
  for (const d of await notifications.leasesEndingWithin(deps.db, now, new Date(now.getTime() + days * DAY_MS))) {
    const l = await licenses.findById(deps.db, d.licenseId, now);
    if (!l) continue;
    const detail = {
      orderRef: l.orderRef,
      product: l.productName,
      licenseKey: l.licenseKey,
      device: d.hostname ?? d.hardwareId,
      date: day(d.leaseEndsAt),
      daysLeft: Math.max(0, Math.ceil((d.leaseEndsAt.getTime() - now.getTime()) / DAY_MS)),
    };
    await occur(
      deps,
      {
        dedupeKey: `lease_ending:${d.id}:${d.leaseEndsAt.toISOString()}`,
        kind: 'lease_ending',
        orderId: l.orderId,
        licenseId: l.id,
        deviceId: d.id,
        detail,
        occurredAt: now,
      },
      async (trx, nid) => {
        await addDigestItems(trx, nid, l.orderId, now);
        let recipients: Recipient[] = [];
        if (d.userId) {
          const u = await trx('accounts').where({ id: d.userId, disabled: false }).first('email', 'name', 'language');
          if (u) recipients = [{ email: u.email, name: u.name, language: u.language }];
        } else if (l.dispatchedTo) recipients = [await byAddress(trx, l.dispatchedTo)];
        return mailEach(deps, trx, {
          recipients,
          kind: 'lease-ending',
          notification: 'lease_ending',
          brandingId: await brandingOf(trx, l.orderId),
          data: (url) => ({ ...detail, link: url('portal', (p) => p.portal()) }),
        });
      },
      report,
    );
  }
}

/**
 * Orders whose seats in use reach `percent` (docs/notifications.md, "Seats"): active devices against
 * the seats of the order's enabled, unexpired licenses with a limit. Once per order per week (counted
 * from the epoch): a digest item for its managers.
 */
async function checkSeats(deps: NotifyDeps, percent: number, report: RunReport): Promise<void> {
  const now = deps.clock.now();
  const week = Math.floor(now.getTime() / WEEK_MS);
  for (const o of await notifications.seatUsage(deps.db, now)) {
    if (o.seats <= 0 || o.used * 100 < percent * o.seats) continue;
    const detail = {
      orderRef: o.orderRef,
      used: o.used,
      seats: o.seats,
      percent: Math.floor((o.used * 100) / o.seats),
    };
    await occur(
      deps,
      { dedupeKey: `seats_high:${o.orderId}:${week}`, kind: 'seats_high', orderId: o.orderId, detail, occurredAt: now },
      async (trx, nid) => {
        await addDigestItems(trx, nid, o.orderId, now);
        return 0;
      },
      report,
    );
  }
}

/**
 * Floating licenses refused at least `threshold` times in the last 24 hours (activation_history:
 * refused and check_refused rows): once per license and UTC day, a digest item for the order's
 * managers and an audit event (it may be an attack on a shared license).
 */
async function checkRefusals(deps: NotifyDeps, threshold: number, report: RunReport): Promise<void> {
  const now = deps.clock.now();
  for (const r of await notifications.refusalCounts(deps.db, new Date(now.getTime() - DAY_MS), now, threshold)) {
    const detail = { orderRef: r.orderRef, product: r.productName, licenseKey: r.licenseKey, refusals: r.refusals };
    await occur(
      deps,
      {
        dedupeKey: `refusals_spike:${r.licenseId}:${day(now)}`,
        kind: 'refusals_spike',
        orderId: r.orderId,
        licenseId: r.licenseId,
        detail,
        occurredAt: now,
      },
      async (trx, nid) => {
        await addDigestItems(trx, nid, r.orderId, now);
        await recordAudit(trx, systemActor('notifications'), now, {
          action: 'license.refusals_spiked',
          objectType: 'license',
          objectId: r.licenseId,
          orderId: r.orderId,
          after: { refusals: r.refusals, threshold, hours: 24 },
        });
        return 0;
      },
      report,
    );
  }
}

/** The start of the latest daily slot at `hour` (UTC) not after `now`. */
export function dailySlot(now: Date, hour: number): Date {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), hour);
  return new Date(today <= now.getTime() ? today : today - DAY_MS);
}

/** The start of the latest weekly slot on ISO weekday `weekday` (1 Monday … 7 Sunday) at `hour` (UTC) not after `now`. */
export function weeklySlot(now: Date, weekday: number, hour: number): Date {
  const isoToday = now.getUTCDay() === 0 ? 7 : now.getUTCDay();
  const back = (isoToday - weekday + 7) % 7;
  const candidate = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - back, hour);
  return new Date(candidate <= now.getTime() ? candidate : candidate - WEEK_MS);
}

/**
 * The managers' daily digest: from the configured hour on (the first run after it, when the server
 * was down at that hour), once per manager and day — the digest's own dedupe key — with every item
 * waiting for them, claimed by a guarded update so that each goes out in exactly one digest. Items of
 * kinds the manager turned off, and of orders they no longer manage, are dropped; `manager_digest`
 * off: no digest at all (the items are dropped too, so that none piles up).
 */
export async function sendManagerDigests(deps: NotifyDeps, settings: Settings): Promise<number> {
  const now = deps.clock.now();
  const slot = dailySlot(now, settings.managerDigestHour);
  let sent = 0;
  for (const accountId of await notifications.accountsWithWaitingItems(deps.db)) {
    const mailed = await inTransaction(deps.db, async (trx) => {
      const manager = await trx('accounts')
        .where({ id: accountId })
        .first('email', 'name', 'language', 'disabled', 'role');
      const digestId = await notifications.insertOnce(trx, {
        uid: crypto.randomBytes(12).toString('hex'),
        dedupeKey: `manager_digest:${accountId}:${slot.toISOString()}`,
        kind: 'manager_digest',
        accountId,
        detail: null,
        occurredAt: now,
      });
      if (digestId === null) return false;
      const items = await notifications.claimDigestItems(trx, accountId, digestId);
      if (!manager || manager.disabled || manager.role !== 'manager') return false;
      if (await isTurnedOff(trx, manager.email, 'manager_digest')) return false;
      const managed = new Set(
        (await trx('manager_orders').where({ account_id: accountId }).select('order_id')).map((r) =>
          Number(r.order_id),
        ),
      );
      const kindsOn: NotificationKind[] = [];
      for (const k of [
        'license_expiring',
        'maintenance_ending',
        'lease_ending',
        'seats_high',
        'refusals_spike',
      ] as const)
        if (!(await isTurnedOff(trx, manager.email, k))) kindsOn.push(k);
      const kept = items.filter(
        (i) => i.orderId !== null && managed.has(i.orderId) && (kindsOn as string[]).includes(i.kind),
      );
      if (!kept.length) return false;
      // A mail stays readable: the first MAX_DIGEST_ITEMS, and how many more the portal shows.
      const shown = kept.slice(0, MAX_DIGEST_ITEMS);
      const orders = [...new Set(shown.map((i) => i.orderId as number))].sort((a, b) => a - b);
      await sendMail(
        { ...deps, db: trx, brandingId: await brandingOf(trx, orders[0]!) },
        'manager-digest',
        {
          to: manager.email,
          language: manager.language,
          unsubscribe: 'manager_digest',
          data: (url) => ({
            name: manager.name,
            count: kept.length,
            more: kept.length - shown.length,
            orders: orders.map((orderId) => {
              const of = shown.filter((i) => i.orderId === orderId);
              return {
                ref: String(of[0]!.detail.orderRef ?? orderId),
                link: url('portal', (p) => p.portalOrder(orderId)),
                items: of.map((i) => ({ kind: i.kind, ...i.detail })),
              };
            }),
          }),
        },
        { db: trx },
      );
      return true;
    });
    if (mailed) sent += 1;
  }
  return sent;
}

/**
 * The staff's weekly digest: on the configured day and hour (UTC; the first run after it), once per
 * admin and week: the past seven days' occurrences by kind, the open renewal requests, the mails and
 * webhook deliveries that failed for good. To every enabled admin who did not turn it off.
 */
export async function sendStaffDigests(deps: NotifyDeps, settings: Settings): Promise<number> {
  const now = deps.clock.now();
  const slot = weeklySlot(now, settings.staffDigestDay, settings.staffDigestHour);
  const since = new Date(now.getTime() - WEEK_MS);
  const admins: { id: number; email: string; name: string; language: string }[] = await deps
    .db('accounts')
    .where({ role: 'admin', disabled: false })
    .orderBy('id')
    .select('id', 'email', 'name', 'language');
  let sent = 0;
  for (const admin of admins) {
    const mailed = await inTransaction(deps.db, async (trx) => {
      const id = await notifications.insertOnce(trx, {
        uid: crypto.randomBytes(12).toString('hex'),
        dedupeKey: `staff_digest:${admin.id}:${slot.toISOString()}`,
        kind: 'staff_digest',
        accountId: Number(admin.id),
        detail: null,
        occurredAt: now,
      });
      if (id === null || (await isTurnedOff(trx, admin.email, 'staff_digest'))) return false;
      const stats = await notifications.weekStats(trx, since, now);
      await sendMail(
        { ...deps, db: trx, brandingId: null },
        'staff-digest',
        {
          to: admin.email,
          language: admin.language,
          unsubscribe: 'staff_digest',
          data: (url) => ({
            name: admin.name,
            since: day(since),
            ...stats,
            link: url('console', (p) => p.admin()),
            renewalsLink: url('console', (p) => p.adminRenewals()),
            outboxLink: url('console', (p) => p.adminOutbox()),
          }),
        },
        { db: trx },
      );
      return true;
    });
    if (mailed) sent += 1;
  }
  return sent;
}
