import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { SecretBox } from '../crypto/secret-box.ts';
import * as optouts from '../models/notification-optouts.ts';
import type { Account, Role } from '../models/accounts.ts';
import { HttpError } from '../lib/errors.ts';
import type { RateRule } from '../lib/rate-limiter.ts';
import { inTransaction } from '../lib/transaction.ts';
import { recordAudit } from './audit.ts';
import type { Actor, ServiceDeps } from './context.ts';

/**
 * The notification kinds a recipient can turn off (docs/notifications.md): each in the one-click
 * link of every mail of that kind and on the account page.
 * - license_expiring, maintenance_ending, lease_ending: the mails to a license's users and its
 *   dispatch recipient, and those items in a manager's digest;
 * - seats_high, refusals_spike: items of a manager's digest (an order's seats in use at or above the
 *   threshold; a floating license refusing more than its threshold in a day);
 * - manager_digest: the daily digest to the managers of an order (one mail for all their orders);
 * - staff_digest: the weekly digest to the vendor's staff.
 */
export const NOTIFICATION_KINDS = [
  'license_expiring',
  'maintenance_ending',
  'lease_ending',
  'seats_high',
  'refusals_spike',
  'manager_digest',
  'staff_digest',
] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

export const isNotificationKind = (v: unknown): v is NotificationKind =>
  (NOTIFICATION_KINDS as readonly unknown[]).includes(v);

const PURPOSE = 'unsubscribe';

/**
 * The token of a one-click unsubscribe link: the address and kind, signed (HMAC with a key derived
 * from the secret box's key), so the link works without a session and cannot be made for someone
 * else's address. It does not expire: a link in a year-old mail still has to work (RFC 8058).
 */
export function unsubscribeToken(box: SecretBox, email: string, kind: NotificationKind): string {
  const address = email.toLowerCase();
  return `${Buffer.from(address, 'utf8').toString('base64url')}.${kind}.${box.tag(`${address}\n${kind}`, PURPOSE)}`;
}

/** The address and kind a token was made for, or null when it is damaged or forged. */
export function readUnsubscribeToken(box: SecretBox, token: string): { email: string; kind: NotificationKind } | null {
  if (token.length > 600) return null;
  const [encoded, kind, tag, ...rest] = token.split('.');
  if (rest.length || !encoded || !tag || !isNotificationKind(kind)) return null;
  const email = Buffer.from(encoded, 'base64url').toString('utf8');
  if (!email.includes('@') || email !== email.toLowerCase()) return null;
  const expected = box.tag(`${email}\n${kind}`, PURPOSE);
  const a = Buffer.from(tag);
  const b = Buffer.from(expected);
  // Equal lengths first: timingSafeEqual throws on a length mismatch.
  return a.length === b.length && crypto.timingSafeEqual(a, b) ? { email, kind } : null;
}

/** The headers that make a mail client show "Unsubscribe" and unsubscribe in one POST (RFC 2369, RFC 8058). */
export function unsubscribeHeaders(url: string): Record<string, string> {
  return { 'List-Unsubscribe': `<${url}>`, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' };
}

/** Whether `email` turned `kind` off. */
export async function isTurnedOff(db: Knex, email: string, kind: NotificationKind): Promise<boolean> {
  return (await optouts.kindsOff(db, email)).has(kind);
}

/** The addresses among `emails` (lower-cased) that turned `kind` off. */
export const addressesWithKindOff = (db: Knex, kind: NotificationKind, emails: string[]) =>
  optouts.addressesWithKindOff(db, kind, emails);

/** The kinds an account's preferences offer, by its role (the mails that can reach that role). */
export const KINDS_BY_ROLE: Record<Role, readonly NotificationKind[]> = {
  end_user: ['license_expiring', 'maintenance_ending', 'lease_ending'],
  manager: ['license_expiring', 'maintenance_ending', 'lease_ending', 'seats_high', 'refusals_spike', 'manager_digest'],
  admin: NOTIFICATION_KINDS,
};

/** One-click unsubscribes per client address (a mail provider posts for many recipients: generous). */
export const UNSUBSCRIBES_PER_CLIENT: RateRule = { limit: 120, windowMs: 15 * 60_000 };

export interface UnsubscribeDeps extends ServiceDeps {
  box: SecretBox;
}

/** The address and kind of a link, or the 404 that a damaged, forged or foreign token gets. */
export function unsubscribeTarget(box: SecretBox, token: string): { email: string; kind: NotificationKind } {
  const target = readUnsubscribeToken(box, token);
  if (!target) throw new HttpError(404, 'unsubscribe.invalid');
  return target;
}

/**
 * The one-click unsubscribe (POST /unsubscribe/:token): turns the link's kind off for its address.
 * The signed token is the credential, so no session is needed; a second click changes nothing,
 * writes no second row and no second audit event, and is answered the same. The actor is the
 * address (there may be no account).
 */
export async function unsubscribe(
  deps: UnsubscribeDeps,
  actor: Actor,
  token: string,
): Promise<{ email: string; kind: NotificationKind; changed: boolean }> {
  const { email, kind } = unsubscribeTarget(deps.box, token);
  const now = deps.clock.now();
  const changed = await inTransaction(deps.db, async (trx) => {
    if (!(await optouts.turnOff(trx, email, kind, now))) return false;
    await recordAudit(trx, { ...actor, accountId: null, label: email }, now, {
      action: 'notification.unsubscribed',
      objectType: 'notification_optout',
      objectId: kind,
      after: { email, kind },
    });
    return true;
  });
  return { email, kind, changed };
}

/** The account's preferences: each kind of its role, on (true) or off. */
export async function preferencesOf(db: Knex, account: Pick<Account, 'email' | 'role'>) {
  const off = await optouts.kindsOff(db, account.email);
  return KINDS_BY_ROLE[account.role].map((kind) => ({ kind, on: !off.has(kind) }));
}

/**
 * Saves the account's preferences: the opt-out rows of its own address, for the kinds of its role
 * (others are left as they are), in one transaction with one audit event (nothing when unchanged).
 */
export async function savePreferences(
  deps: ServiceDeps,
  actor: Actor,
  account: Pick<Account, 'id' | 'email' | 'role'>,
  wantedOn: ReadonlySet<string>,
): Promise<boolean> {
  const kinds = KINDS_BY_ROLE[account.role];
  const now = deps.clock.now();
  return inTransaction(deps.db, async (trx) => {
    const before = await optouts.kindsOff(trx, account.email);
    for (const kind of kinds)
      if (wantedOn.has(kind)) await optouts.turnOn(trx, account.email, kind);
      else await optouts.turnOff(trx, account.email, kind, now);
    const after = await optouts.kindsOff(trx, account.email);
    const list = (s: Set<string>) => NOTIFICATION_KINDS.filter((k) => s.has(k));
    if (list(before).join() === list(after).join()) return false;
    await recordAudit(trx, actor, now, {
      action: 'notification.preferences_changed',
      objectType: 'account',
      objectId: account.id,
      before: { off: list(before) },
      after: { off: list(after) },
    });
    return true;
  });
}
