import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { SecretBox } from '../crypto/secret-box.ts';
import * as optouts from '../models/notification-optouts.ts';

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
