import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Metrics } from '../lib/metrics.ts';
import type { TFunction } from 'i18next';
import { Webhook } from 'standardwebhooks';
import type { Clock } from '../lib/clock.ts';
import { dataDirSecretBox, type SecretBox } from '../crypto/secret-box.ts';
import { AppError, HttpError, notFound } from '../lib/errors.ts';
import type { Mailer } from '../lib/mailer.ts';
import { enqueue, FailJob, RetryJobAt, type JobRun } from '../lib/queue.ts';
import { assertTargetAllowed, postWebhook, TargetRefused } from '../lib/webhook-target.ts';
import type { Settings } from '../models/settings.ts';
import * as webhooks from '../models/webhooks.ts';
import { recordAudit } from './audit.ts';
import { auditedChange } from './changes.ts';
import { systemActor, type Actor } from './context.ts';
import { DELIVER_JOB, DELIVERY_ATTEMPTS, deliverEvent, endpointMayReceive, type WebhookEventType } from './events.ts';
import { inTransaction } from '../lib/transaction.ts';
import { sendMail, type UrlFor } from './mail.ts';

/**
 * Webhook endpoints and the delivery of events to them (docs/webhooks.md). An endpoint's owner is
 * the vendor (null) or one manager; every function takes the owner, so another owner's endpoint is
 * not found (404).
 */

export interface WebhookDeps {
  db: Knex;
  clock: Clock;
  secretBox: SecretBox;
  settings: (db?: Knex) => Promise<Settings>;
}

export interface DeliveryDeps extends WebhookDeps {
  mailer: Mailer;
  metrics?: Metrics;
  baseUrl: string;
  translatorFor: (lng: string) => TFunction;
}

/** What the webhook services need, from an app's context (one secret box per context: it reads its key once). */
const boxes = new WeakMap<object, SecretBox>();
export function webhookDepsOf(ctx: Omit<DeliveryDeps, 'secretBox'> & { config: { dataDir: string } }): DeliveryDeps {
  let secretBox = boxes.get(ctx);
  if (!secretBox) {
    secretBox = dataDirSecretBox(ctx.config.dataDir);
    boxes.set(ctx, secretBox);
  }
  return {
    db: ctx.db,
    clock: ctx.clock,
    settings: ctx.settings,
    mailer: ctx.mailer,
    baseUrl: ctx.baseUrl,
    translatorFor: ctx.translatorFor,
    secretBox,
    metrics: ctx.metrics,
  };
}

/** Waits before each retry of a failed delivery: 8 attempts over about 31.6 hours (docs/webhooks.md, "Retries"). */
export const RETRY_SCHEDULE_MS = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 50_400_000];
/** An endpoint whose every attempt failed for this long is disabled and the vendor's admins are told. */
export const DISABLE_AFTER_FAILING_MS = 24 * 3_600_000;
/** How long the previous secret keeps signing beside a new one after a rotation. */
export const ROTATION_OVERLAP_MS = 24 * 3_600_000;
/** Connecting, sending and the response together. */
export const DELIVERY_TIMEOUT_MS = 10_000;
/** How long events, their deliveries and the delivery log are kept (the last retry is 31.6 h after an event). */
export const KEEP_EVENTS_MS = 30 * 86_400_000;

/** The daily housekeeping job `webhook.purge`: events older than KEEP_EVENTS_MS go, with their deliveries and log. */
export function purgeOldEvents({ db, clock }: { db: Knex; clock: Clock }): Promise<number> {
  return webhooks.purgeEventsBefore(db, new Date(clock.now().getTime() - KEEP_EVENTS_MS));
}

/** Every event is sent to each endpoint that listens: one owner's endpoints are capped, so one event cannot fan out without end. */
export const MAX_ENDPOINTS_PER_OWNER = 20;
/** The event type of "send a test event" (not subscribable: it goes to the one endpoint asked). */
export const TEST_EVENT = 'webhook.test' as const;

/** A new secret in the Standard Webhooks format: `whsec_` + base64 of 32 random bytes. */
export const newSecret = () => `whsec_${crypto.randomBytes(32).toString('base64')}`;
const sealContext = (endpointId: number) => `webhook:${endpointId}`;

/** The secrets that sign now: the current one, and the previous one during a rotation's overlap. */
export function signingSecrets(box: SecretBox, e: webhooks.Endpoint, now: Date): string[] {
  const current = box.open(e.secretSealed, sealContext(e.id));
  if (!current) throw new Error(`webhook endpoint ${e.id}: its secret does not open (another secret-box key?)`);
  const previous =
    e.previousSecretSealed && e.previousUntil && e.previousUntil > now
      ? box.open(e.previousSecretSealed, sealContext(e.id))
      : null;
  return previous ? [current, previous] : [current];
}

/** The Standard Webhooks headers of one attempt: `webhook-signature` carries one `v1,` signature per secret. */
export function signedHeaders(secrets: string[], eventUid: string, at: Date, body: string): Record<string, string> {
  return {
    'webhook-id': eventUid,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': secrets.map((s) => new Webhook(s).sign(eventUid, at, body)).join(' '),
  };
}

/** The URL, resolved now, must be an allowed target: a clear field error otherwise (422). */
async function checkTarget(deps: WebhookDeps, url: string): Promise<void> {
  try {
    await assertTargetAllowed(url, (await deps.settings()).webhookPrivateTargets);
  } catch (err) {
    if (err instanceof TargetRefused) throw AppError.validation({ url: err.reason });
    throw err;
  }
}

const auditView = (e: webhooks.Endpoint) => ({
  url: e.url,
  description: e.description,
  events: e.eventTypes,
  enabled: e.enabled,
  owner: e.ownerAccountId,
});

export interface EndpointInput {
  url: string;
  description: string | null;
  events: WebhookEventType[];
}

const fieldsOf = (i: EndpointInput): webhooks.EndpointFields => ({
  url: i.url,
  description: i.description ?? '',
  eventTypes: i.events,
});

/** Registers an endpoint; returns its id and its secret, shown once. */
export async function createEndpoint(
  deps: WebhookDeps,
  actor: Actor,
  owner: number | null,
  input: EndpointInput,
): Promise<{ id: number; secret: string }> {
  if ((await webhooks.countOf(deps.db, owner)) >= MAX_ENDPOINTS_PER_OWNER)
    throw AppError.validation({ _form: 'webhooks.tooMany' }, { max: MAX_ENDPOINTS_PER_OWNER });
  await checkTarget(deps, input.url);
  const secret = newSecret();
  return auditedChange(deps, actor, async (trx, now) => {
    const id = await webhooks.insert(
      trx,
      owner,
      fieldsOf(input),
      (i) => deps.secretBox.seal(secret, sealContext(i)),
      now,
    );
    const after = auditView((await webhooks.findById(trx, id))!);
    return {
      result: { id, secret },
      audit: { action: 'webhook_endpoint.created', objectType: 'webhook_endpoint', objectId: id, after },
    };
  });
}

async function mustFind(db: Knex, owner: number | null, id: number) {
  const e = await webhooks.findOf(db, owner, id);
  if (!e) throw notFound();
  return e;
}

export async function updateEndpoint(
  deps: WebhookDeps,
  actor: Actor,
  owner: number | null,
  id: number,
  input: EndpointInput,
): Promise<void> {
  await checkTarget(deps, input.url);
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await mustFind(trx, owner, id);
    await webhooks.update(trx, id, fieldsOf(input), now);
    const after = (await webhooks.findById(trx, id))!;
    return {
      result: undefined,
      audit: {
        action: 'webhook_endpoint.updated',
        objectType: 'webhook_endpoint',
        objectId: id,
        before: auditView(before),
        after: auditView(after),
      },
    };
  });
}

/** A new secret (returned once); the previous one keeps signing beside it for ROTATION_OVERLAP_MS. */
export async function rotateSecret(deps: WebhookDeps, actor: Actor, owner: number | null, id: number): Promise<string> {
  const secret = newSecret();
  return auditedChange(deps, actor, async (trx, now) => {
    const before = await mustFind(trx, owner, id);
    const until = new Date(now.getTime() + ROTATION_OVERLAP_MS);
    await webhooks.rotateSecret(trx, id, deps.secretBox.seal(secret, sealContext(id)), before.secretSealed, until, now);
    return {
      result: secret,
      audit: {
        action: 'webhook_endpoint.secret_rotated',
        objectType: 'webhook_endpoint',
        objectId: id,
        after: { previousSecretSignsUntil: until.toISOString() },
      },
    };
  });
}

export async function setEndpointEnabled(
  deps: WebhookDeps,
  actor: Actor,
  owner: number | null,
  id: number,
  enabled: boolean,
): Promise<void> {
  if (enabled) {
    // The target is checked again: the setting may have changed since, or the name now resolves elsewhere.
    const url = (await mustFind(deps.db, owner, id)).url;
    try {
      await assertTargetAllowed(url, (await deps.settings()).webhookPrivateTargets);
    } catch (err) {
      if (err instanceof TargetRefused) throw new HttpError(409, err.reason);
      throw err;
    }
  }
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await mustFind(trx, owner, id);
    if (!(await webhooks.setEnabled(trx, id, enabled, enabled ? null : 'manual', now)))
      throw new HttpError(409, enabled ? 'webhooks.alreadyEnabled' : 'webhooks.alreadyDisabled');
    return {
      result: undefined,
      audit: {
        action: enabled ? 'webhook_endpoint.enabled' : 'webhook_endpoint.disabled',
        objectType: 'webhook_endpoint',
        objectId: id,
        before: { enabled: before.enabled, reason: before.disabledReason },
        after: { enabled },
      },
    };
  });
}

export async function deleteEndpoint(deps: WebhookDeps, actor: Actor, owner: number | null, id: number): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    const before = await mustFind(trx, owner, id);
    await webhooks.remove(trx, id);
    return {
      result: undefined,
      audit: {
        action: 'webhook_endpoint.deleted',
        objectType: 'webhook_endpoint',
        objectId: id,
        before: auditView(before),
      },
    };
  });
}

/** "Send a test event": a `webhook.test` event to this endpoint alone, delivered (and retried) like any other. */
export async function sendTestEvent(deps: WebhookDeps, actor: Actor, owner: number | null, id: number): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    const e = await mustFind(trx, owner, id);
    if (!e.enabled) throw new HttpError(409, 'webhooks.disabledEndpoint');
    const eventId = await deliverEvent(trx, deps.clock, { type: TEST_EVENT, orderId: null, data: { endpointId: id } }, [
      e,
    ]);
    return {
      result: undefined,
      audit: {
        action: 'webhook_endpoint.test_sent',
        objectType: 'webhook_endpoint',
        objectId: id,
        after: { eventId },
      },
    };
  });
}

/** "Send again": one more attempt of a delivery, now, whatever became of it (logged as sent by hand). */
export async function resendDelivery(
  deps: WebhookDeps,
  actor: Actor,
  owner: number | null,
  endpointId: number,
  deliveryId: number,
): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    const e = await mustFind(trx, owner, endpointId);
    const delivery = await webhooks.findDeliveryOf(trx, endpointId, deliveryId);
    if (!delivery) throw notFound();
    if (!e.enabled) throw new HttpError(409, 'webhooks.disabledEndpoint');
    await enqueue(trx, deps.clock, { kind: DELIVER_JOB, payload: { deliveryId, manual: true }, maxAttempts: 1 });
    return {
      result: undefined,
      audit: {
        action: 'webhook_delivery.resent',
        objectType: 'webhook_endpoint',
        objectId: endpointId,
        after: { deliveryId, state: delivery.state },
      },
    };
  });
}

/**
 * The `webhook.deliver` job: one attempt to send one delivery. Each attempt is logged (status,
 * duration, the first KB of the response, the error); 2xx is delivered; otherwise the next attempt
 * follows RETRY_SCHEDULE_MS (RetryJobAt) until DELIVERY_ATTEMPTS, after which the job fails. The
 * endpoint must still be enabled and its owner still see the event's order, at every attempt.
 */
export async function deliverWebhook(deps: DeliveryDeps, job: JobRun): Promise<void> {
  const deliveryId = Number(job.payload.deliveryId);
  const manual = job.payload.manual === true;
  const delivery = await webhooks.findDelivery(deps.db, deliveryId);
  if (!delivery || (!manual && delivery.state !== 'pending')) return;
  const endpoint = await webhooks.findById(deps.db, delivery.endpointId);
  const event = await webhooks.findEvent(deps.db, delivery.eventId);
  if (!endpoint || !event) return;
  const at = deps.clock.now();
  const receives = event.type === TEST_EVENT || (await endpointMayReceive(deps.db, endpoint, event.orderId));
  if (!endpoint.enabled || !receives) {
    if (!manual) await webhooks.setDeliveryState(deps.db, deliveryId, 'skipped', { nextAttemptAt: null }, at);
    deps.metrics?.webhook('skipped');
    return;
  }

  const headers = signedHeaders(signingSecrets(deps.secretBox, endpoint, at), event.uid, at, event.payload);
  const result = await postWebhook(endpoint.url, event.payload, headers, {
    allowPrivate: (await deps.settings()).webhookPrivateTargets,
    timeoutMs: DELIVERY_TIMEOUT_MS,
    now: () => performance.now(),
  });
  const ok = result.statusCode !== null && result.statusCode >= 200 && result.statusCode < 300;
  const attempt = delivery.attempts + 1;
  const now = deps.clock.now();
  const retryAt =
    !ok && !manual && attempt < DELIVERY_ATTEMPTS ? new Date(now.getTime() + RETRY_SCHEDULE_MS[attempt - 1]!) : null;

  const disabled = await inTransaction(deps.db, async (trx) => {
    await webhooks.insertAttempt(trx, {
      deliveryId,
      endpointId: endpoint.id,
      attempt,
      manual,
      statusCode: result.statusCode,
      durationMs: Math.round(result.durationMs),
      responseExcerpt: result.excerpt,
      error: result.error ?? (ok ? null : `HTTP ${result.statusCode}`),
      startedAt: at,
    });
    if (ok) {
      await webhooks.setDeliveryState(
        trx,
        deliveryId,
        'delivered',
        { attempts: attempt, nextAttemptAt: null, deliveredAt: now },
        now,
      );
      await webhooks.markHealthy(trx, endpoint.id);
      return false;
    }
    await webhooks.markFailing(trx, endpoint.id, now);
    const fresh = (await webhooks.findById(trx, endpoint.id))!;
    const disableNow =
      fresh.enabled &&
      fresh.failingSince !== null &&
      now.getTime() - fresh.failingSince.getTime() >= DISABLE_AFTER_FAILING_MS;
    const state = manual ? delivery.state : retryAt && !disableNow ? 'pending' : 'failed';
    await webhooks.setDeliveryState(
      trx,
      deliveryId,
      state,
      { attempts: attempt, nextAttemptAt: state === 'pending' ? retryAt : null },
      now,
    );
    // Guarded update: of two attempts failing at once, one disables the endpoint (and tells the admins).
    if (!disableNow || !(await webhooks.setEnabled(trx, endpoint.id, false, 'failing', now))) return false;
    await recordAudit(trx, systemActor('webhooks'), now, {
      action: 'webhook_endpoint.disabled_failing',
      objectType: 'webhook_endpoint',
      objectId: endpoint.id,
      before: { enabled: true, failingSince: fresh.failingSince!.toISOString() },
      after: { enabled: false, lastError: result.error ?? `HTTP ${result.statusCode}` },
    });
    return true;
  });
  deps.metrics?.webhook(ok ? 'delivered' : retryAt && !disabled ? 'retried' : 'failed');
  if (disabled) await tellAdmins(deps, endpoint);
  if (ok || manual) return;
  const why = result.error ?? `HTTP ${result.statusCode}`;
  if (retryAt && !disabled) throw new RetryJobAt(retryAt, `attempt ${attempt} failed: ${why}`);
  throw new FailJob(
    disabled
      ? `attempt ${attempt} failed (${why}); the endpoint kept failing and was disabled`
      : `delivery failed after ${attempt} attempts: ${why}`,
  );
}

/** The vendor's admins (and a manager, of their own endpoint) are told by mail that it was disabled for failing. */
async function tellAdmins(deps: DeliveryDeps, endpoint: webhooks.Endpoint): Promise<void> {
  const admins: Recipient[] = await deps
    .db('accounts')
    .where({ role: 'admin', disabled: false })
    .select('email', 'name', 'language');
  const owner: Recipient | undefined =
    endpoint.ownerAccountId === null
      ? undefined
      : await deps.db('accounts').where({ id: endpoint.ownerAccountId }).first('email', 'name', 'language');
  const recipients: [Recipient, Parameters<UrlFor>][] = [
    ...admins.map((a): [Recipient, Parameters<UrlFor>] => [
      a,
      ['console', (p) => (endpoint.ownerAccountId === null ? p.adminWebhook(endpoint.id) : p.adminWebhooks())],
    ]),
    ...(owner ? [[owner, ['portal', (p) => p.portalWebhook(endpoint.id)]] as [Recipient, Parameters<UrlFor>]] : []),
  ];
  for (const [to, link] of recipients) {
    await sendMail(deps, 'webhook-disabled', {
      to: to.email,
      language: to.language,
      data: (url) => ({
        name: to.name,
        url: endpoint.url,
        hours: DISABLE_AFTER_FAILING_MS / 3_600_000,
        link: url(...link),
      }),
    });
  }
}

interface Recipient {
  email: string;
  name: string;
  language: string;
}
