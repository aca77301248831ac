import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Clock } from '../lib/clock.ts';
import { enqueue } from '../lib/queue.ts';
import { inTransaction } from '../lib/transaction.ts';
import * as accounts from '../models/accounts.ts';
import type { Device } from '../models/devices.ts';
import * as licenses from '../models/licenses.ts';
import * as webhooks from '../models/webhooks.ts';
import { scopeOrders } from '../policies/orders.ts';
import { permissionsFor } from '../policies/portal.ts';

/** THE list of webhook event types (docs/webhooks.md, "Events"). */
export const WEBHOOK_EVENT_TYPES = [
  'license.issued',
  'license.changed',
  'license.disabled',
  'license.expiring',
  'activation.granted',
  'activation.refused',
  'device.deactivated',
  'device.reset',
  'device.blacklisted',
  'order.created',
  'voucher.redeemed',
  'renewal.requested',
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** The job kind that sends one delivery (app/jobs.ts). */
export const DELIVER_JOB = 'webhook.deliver';
/** One first attempt plus one per retry (services/webhooks.ts, RETRY_SCHEDULE_MS). */
export const DELIVERY_ATTEMPTS = 8;

export interface NewEvent {
  type: WebhookEventType;
  /** The order the event concerns: a manager's endpoint receives it only while the order is in their scope. */
  orderId: number | null;
  data: Record<string, unknown>;
  /** Makes the event happen once whatever the number of calls (a periodic event: license.expiring). */
  dedupeKey?: string;
}

/**
 * Whether an endpoint may receive an event of `orderId`: the vendor's endpoints every event, a
 * manager's those of orders in their order scope (the portal's scope function), while they hold
 * manage_api_clients. Asked when the event is published and again at every delivery, so a manager who
 * loses an order or the permission stops receiving its events.
 */
export async function endpointMayReceive(db: Knex, endpoint: webhooks.Endpoint, orderId: number | null) {
  if (endpoint.ownerAccountId === null) return true;
  if (orderId === null) return false;
  const owner = await accounts.findById(db, endpoint.ownerAccountId);
  if (!owner || owner.disabled || owner.role !== 'manager') return false;
  if (!(await permissionsFor(db, owner)).has('manage_api_clients')) return false;
  return Boolean(await scopeOrders(db, owner).where('orders.id', orderId).first('orders.id'));
}

/**
 * Records an event and enqueues one delivery per enabled endpoint that listens to its type, in the
 * caller's transaction (`db`): the event exists if and only if the change that caused it committed.
 * Returns the event's id, or null when no endpoint receives it or its dedupe key was published before.
 */
export async function publishEvent(db: Knex, clock: Clock, event: NewEvent): Promise<number | null> {
  return inTransaction(db, async (trx) => {
    const receivers: webhooks.Endpoint[] = [];
    for (const endpoint of await webhooks.enabledFor(trx, event.type))
      if (await endpointMayReceive(trx, endpoint, event.orderId)) receivers.push(endpoint);
    // Nobody listens: nothing to record (an activation must not leave a row behind for nobody).
    return receivers.length ? deliverEvent(trx, clock, event, receivers) : null;
  });
}

/** The payload's field names as the Management API writes them (`licenseId` → `license_id`). */
const snakeCase = (data: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(data).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), v]));

/**
 * Records an event for these endpoints: the event row (its `uid` is the `webhook-id` every attempt
 * carries), one delivery each and its `webhook.deliver` job. Null when the dedupe key existed.
 */
export async function deliverEvent(
  trx: Knex,
  clock: Clock,
  event: Omit<NewEvent, 'type'> & { type: WebhookEventType | 'webhook.test' },
  endpoints: Pick<webhooks.Endpoint, 'id'>[],
): Promise<number | null> {
  const now = clock.now();
  const uid = `msg_${crypto.randomBytes(16).toString('base64url')}`;
  const payload = JSON.stringify({ type: event.type, timestamp: now.toISOString(), data: snakeCase(event.data) });
  const eventId = await webhooks.insertEvent(
    trx,
    { uid, type: event.type, orderId: event.orderId, dedupeKey: event.dedupeKey ?? null, payload },
    now,
  );
  if (eventId === null) return null;
  for (const endpoint of endpoints) {
    const deliveryId = await webhooks.insertDelivery(trx, eventId, endpoint.id, now);
    await enqueue(trx, clock, { kind: DELIVER_JOB, payload: { deliveryId }, maxAttempts: DELIVERY_ATTEMPTS });
  }
  return eventId;
}

/** Whether any enabled endpoint listens to `type` (a caller with many events to publish asks first). */
export async function anyListener(db: Knex, type: WebhookEventType): Promise<boolean> {
  return (await webhooks.enabledFor(db, type)).length > 0;
}

/**
 * What an event says of a license (docs/webhooks.md, "Payloads"). The license key is included: it is
 * what a shop or CRM keys its records on, and every receiver (the vendor, a manager of the order) sees
 * it in the portal anyway. Never secrets: no passwords, tokens, codes or files.
 */
export const licenseData = (l: licenses.License) => ({
  licenseId: l.id,
  licenseKey: l.licenseKey,
  orderId: l.orderId,
  orderRef: l.orderRef,
  productId: l.productId,
  productCode: l.productCode,
  policyId: l.policyId,
  enabled: l.enabled,
  expiresAt: l.expiresAt?.toISOString() ?? null,
});

export const deviceData = (d: Pick<Device, 'id' | 'hardwareId' | 'channel'>) => ({
  deviceId: d.id,
  hardwareId: d.hardwareId,
  channel: d.channel,
});

/** How many days before a license expires `license.expiring` fires, once per license and window. */
export const EXPIRING_WINDOWS_DAYS = [30, 7] as const;
const DAY_MS = 86_400_000;

/**
 * The daily check (periodic job `webhook.expiring`): publishes `license.expiring` for every enabled
 * license that expires within a window — the narrowest one it is in, so a license first seen 5 days
 * before its end is announced once, for 7 days — once per license, window and expiry date (the
 * event's dedupe key): running it twice, or on two nodes, publishes nothing twice, and a license
 * renewed to a new date is announced again. Only when some endpoint listens: no work otherwise.
 */
export async function publishExpiringLicenses(db: Knex, clock: Clock): Promise<number> {
  if (!(await anyListener(db, 'license.expiring'))) return 0;
  const now = clock.now();
  const widest = Math.max(...EXPIRING_WINDOWS_DAYS);
  const rows: { id: number }[] = await db('licenses')
    .where('enabled', true)
    .where('expires_at', '>', now)
    .where('expires_at', '<=', new Date(now.getTime() + widest * DAY_MS))
    .orderBy('id')
    .select('id');
  let published = 0;
  for (const { id } of rows) {
    const l = await licenses.findById(db, Number(id), now);
    if (!l?.expiresAt) continue;
    const left = l.expiresAt.getTime() - now.getTime();
    const days = Math.min(...EXPIRING_WINDOWS_DAYS.filter((d) => left <= d * DAY_MS));
    const eventId = await publishEvent(db, clock, {
      type: 'license.expiring',
      orderId: l.orderId,
      data: { ...licenseData(l), windowDays: days },
      dedupeKey: `license.expiring:${l.id}:${days}:${l.expiresAt.toISOString()}`,
    });
    if (eventId !== null) published += 1;
  }
  return published;
}
