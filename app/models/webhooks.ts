import type { Knex } from 'knex';
import { affected, parseJson, toBool, toDate } from './normalise.ts';

/** Webhook endpoints, events, deliveries and the delivery log (db/migrations/0021_webhooks.ts). */

export interface Endpoint {
  id: number;
  /** null: the vendor's endpoint (every event); otherwise the manager who owns it (their orders' events). */
  ownerAccountId: number | null;
  url: string;
  description: string;
  eventTypes: string[];
  enabled: boolean;
  disabledReason: 'manual' | 'failing' | null;
  disabledAt: Date | null;
  secretSealed: string;
  previousSecretSealed: string | null;
  previousUntil: Date | null;
  failingSince: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

type Row = Record<string, unknown>;

const toEndpoint = (r: Row): Endpoint => ({
  id: Number(r.id),
  ownerAccountId: r.owner_account_id === null ? null : Number(r.owner_account_id),
  url: String(r.url),
  description: String(r.description ?? ''),
  eventTypes: parseJson<string[]>(r.event_types) ?? [],
  enabled: toBool(r.enabled),
  disabledReason: (r.disabled_reason as Endpoint['disabledReason']) ?? null,
  disabledAt: toDate(r.disabled_at),
  secretSealed: String(r.secret_sealed),
  previousSecretSealed: (r.previous_secret_sealed as string | null) ?? null,
  previousUntil: toDate(r.previous_until),
  failingSince: toDate(r.failing_since),
  createdAt: toDate(r.created_at)!,
  updatedAt: toDate(r.updated_at)!,
});

/** The endpoints of one owner (null: the vendor's), newest first. */
export function scopeEndpoints(db: Knex, ownerAccountId: number | null): Knex.QueryBuilder {
  const q = db('webhook_endpoints');
  return ownerAccountId === null ? q.whereNull('owner_account_id') : q.where('owner_account_id', ownerAccountId);
}

export async function listOf(db: Knex, ownerAccountId: number | null): Promise<Endpoint[]> {
  return (await scopeEndpoints(db, ownerAccountId).orderBy('id', 'desc').select('*')).map(toEndpoint);
}

/** Every manager's endpoints with their owner's address (the console lists them, read-only), newest first. */
export async function listOfManagers(db: Knex, limit = 500): Promise<(Endpoint & { ownerEmail: string })[]> {
  const rows = await db('webhook_endpoints')
    .join('accounts', 'accounts.id', 'webhook_endpoints.owner_account_id')
    .orderBy('webhook_endpoints.id', 'desc')
    .limit(limit)
    .select('webhook_endpoints.*', 'accounts.email as owner_email');
  return rows.map((r: Row) => ({ ...toEndpoint(r), ownerEmail: String(r.owner_email) }));
}

export async function countOf(db: Knex, ownerAccountId: number | null): Promise<number> {
  return Number((await scopeEndpoints(db, ownerAccountId).count({ n: '*' }).first())?.n ?? 0);
}

/** One endpoint of that owner, or undefined (another owner's endpoint is not found). */
export async function findOf(db: Knex, ownerAccountId: number | null, id: number): Promise<Endpoint | undefined> {
  const r = await scopeEndpoints(db, ownerAccountId).where('id', id).first();
  return r ? toEndpoint(r) : undefined;
}

export async function findById(db: Knex, id: number): Promise<Endpoint | undefined> {
  const r = await db('webhook_endpoints').where({ id }).first();
  return r ? toEndpoint(r) : undefined;
}

/** The enabled endpoints listening to an event type (the JSON list is filtered here: a few rows at most). */
export async function enabledFor(db: Knex, type: string): Promise<Endpoint[]> {
  return (await db('webhook_endpoints').where({ enabled: true }).select('*'))
    .map(toEndpoint)
    .filter((e) => e.eventTypes.includes(type));
}

export interface EndpointFields {
  url: string;
  description: string;
  eventTypes: string[];
}

export async function insert(
  db: Knex,
  owner: number | null,
  f: EndpointFields,
  secretSealed: (id: number) => string,
  now: Date,
): Promise<number> {
  const [id] = await db('webhook_endpoints').insert({
    owner_account_id: owner,
    url: f.url,
    description: f.description,
    event_types: JSON.stringify(f.eventTypes),
    enabled: true,
    secret_sealed: '',
    created_at: now,
    updated_at: now,
  });
  // The sealed secret is bound to the endpoint's id (its context), known only after the insert.
  await db('webhook_endpoints')
    .where({ id: Number(id) })
    .update({ secret_sealed: secretSealed(Number(id)) });
  return Number(id);
}

export async function update(db: Knex, id: number, f: EndpointFields, now: Date): Promise<void> {
  await db('webhook_endpoints')
    .where({ id })
    .update({ url: f.url, description: f.description, event_types: JSON.stringify(f.eventTypes), updated_at: now });
}

export async function setEnabled(
  db: Knex,
  id: number,
  enabled: boolean,
  reason: 'manual' | 'failing' | null,
  now: Date,
): Promise<boolean> {
  return (
    affected(
      await db('webhook_endpoints')
        .where({ id, enabled: !enabled })
        .update({
          enabled,
          disabled_reason: enabled ? null : reason,
          disabled_at: enabled ? null : now,
          failing_since: null,
          updated_at: now,
        }),
    ) === 1
  );
}

export async function rotateSecret(db: Knex, id: number, sealed: string, previous: string, until: Date, now: Date) {
  await db('webhook_endpoints')
    .where({ id })
    .update({ secret_sealed: sealed, previous_secret_sealed: previous, previous_until: until, updated_at: now });
}

export async function remove(db: Knex, id: number): Promise<void> {
  await db('webhook_endpoints').where({ id }).delete();
}

/** After a failed attempt: remembers when the failing began (kept while it goes on). */
export async function markFailing(db: Knex, id: number, now: Date): Promise<void> {
  await db('webhook_endpoints').where({ id }).whereNull('failing_since').update({ failing_since: now });
}

export async function markHealthy(db: Knex, id: number): Promise<void> {
  await db('webhook_endpoints').where({ id }).whereNotNull('failing_since').update({ failing_since: null });
}

// --- events ---

export interface WebhookEvent {
  id: number;
  uid: string;
  type: string;
  orderId: number | null;
  payload: string;
  createdAt: Date;
}

const toEvent = (r: Row): WebhookEvent => ({
  id: Number(r.id),
  uid: String(r.uid),
  type: String(r.type),
  orderId: r.order_id === null ? null : Number(r.order_id),
  payload: String(r.payload),
  createdAt: toDate(r.created_at)!,
});

/** Records an event; null when its dedupe key was recorded before (a periodic event already published). */
export async function insertEvent(
  db: Knex,
  e: { uid: string; type: string; orderId: number | null; dedupeKey: string | null; payload: string },
  now: Date,
): Promise<number | null> {
  const rows = {
    uid: e.uid,
    type: e.type,
    order_id: e.orderId,
    dedupe_key: e.dedupeKey,
    payload: e.payload,
    created_at: now,
  };
  if (!e.dedupeKey) {
    const [id] = await db('webhook_events').insert(rows);
    return Number(id);
  }
  await db('webhook_events').insert(rows).onConflict('dedupe_key').ignore();
  // The drivers report an ignored insert differently: the row with this event's own uid says whether it went in.
  const row = await db('webhook_events').where({ uid: e.uid }).first('id');
  return row ? Number(row.id) : null;
}

export async function findEvent(db: Knex, id: number): Promise<WebhookEvent | undefined> {
  const r = await db('webhook_events').where({ id }).first();
  return r ? toEvent(r) : undefined;
}

// --- deliveries and attempts ---

export type DeliveryState = 'pending' | 'delivered' | 'failed' | 'skipped';

export interface Delivery {
  id: number;
  eventId: number;
  endpointId: number;
  state: DeliveryState;
  attempts: number;
  nextAttemptAt: Date | null;
  deliveredAt: Date | null;
  createdAt: Date;
}

const toDelivery = (r: Row): Delivery => ({
  id: Number(r.id),
  eventId: Number(r.event_id),
  endpointId: Number(r.endpoint_id),
  state: r.state as DeliveryState,
  attempts: Number(r.attempts),
  nextAttemptAt: toDate(r.next_attempt_at),
  deliveredAt: toDate(r.delivered_at),
  createdAt: toDate(r.created_at)!,
});

export async function insertDelivery(db: Knex, eventId: number, endpointId: number, now: Date): Promise<number> {
  const [id] = await db('webhook_deliveries').insert({
    event_id: eventId,
    endpoint_id: endpointId,
    state: 'pending',
    attempts: 0,
    next_attempt_at: now,
    created_at: now,
    updated_at: now,
  });
  return Number(id);
}

export async function findDelivery(db: Knex, id: number): Promise<Delivery | undefined> {
  const r = await db('webhook_deliveries').where({ id }).first();
  return r ? toDelivery(r) : undefined;
}

export async function findDeliveryOf(db: Knex, endpointId: number, id: number): Promise<Delivery | undefined> {
  const r = await db('webhook_deliveries').where({ id, endpoint_id: endpointId }).first();
  return r ? toDelivery(r) : undefined;
}

export async function setDeliveryState(
  db: Knex,
  id: number,
  state: DeliveryState,
  f: { attempts?: number; nextAttemptAt?: Date | null; deliveredAt?: Date | null },
  now: Date,
): Promise<void> {
  await db('webhook_deliveries')
    .where({ id })
    .update({
      state,
      ...(f.attempts !== undefined ? { attempts: f.attempts } : {}),
      ...(f.nextAttemptAt !== undefined ? { next_attempt_at: f.nextAttemptAt } : {}),
      ...(f.deliveredAt !== undefined ? { delivered_at: f.deliveredAt } : {}),
      updated_at: now,
    });
}

export interface DeliveryRow extends Delivery {
  eventUid: string;
  eventType: string;
}

/** An endpoint's latest deliveries, with their event. */
export async function deliveriesOf(db: Knex, endpointId: number, limit = 50): Promise<DeliveryRow[]> {
  const rows = await db('webhook_deliveries as d')
    .join('webhook_events as e', 'e.id', 'd.event_id')
    .where('d.endpoint_id', endpointId)
    .orderBy('d.id', 'desc')
    .limit(limit)
    .select('d.*', 'e.uid as event_uid', 'e.type as event_type');
  return rows.map((r: Row) => ({ ...toDelivery(r), eventUid: String(r.event_uid), eventType: String(r.event_type) }));
}

export interface Attempt {
  id: number;
  deliveryId: number;
  endpointId: number;
  attempt: number;
  manual: boolean;
  statusCode: number | null;
  durationMs: number;
  responseExcerpt: string | null;
  error: string | null;
  startedAt: Date;
}

const toAttempt = (r: Row): Attempt => ({
  id: Number(r.id),
  deliveryId: Number(r.delivery_id),
  endpointId: Number(r.endpoint_id),
  attempt: Number(r.attempt),
  manual: toBool(r.manual),
  statusCode: r.status_code === null || r.status_code === undefined ? null : Number(r.status_code),
  durationMs: Number(r.duration_ms),
  responseExcerpt: (r.response_excerpt as string | null) ?? null,
  error: (r.error as string | null) ?? null,
  startedAt: toDate(r.started_at)!,
});

export async function insertAttempt(db: Knex, a: Omit<Attempt, 'id'>): Promise<void> {
  await db('webhook_attempts').insert({
    delivery_id: a.deliveryId,
    endpoint_id: a.endpointId,
    attempt: a.attempt,
    manual: a.manual,
    status_code: a.statusCode,
    duration_ms: a.durationMs,
    response_excerpt: a.responseExcerpt,
    error: a.error,
    started_at: a.startedAt,
  });
}

/** The delivery log of an endpoint: its latest attempts, newest first. */
export async function attemptsOf(db: Knex, endpointId: number, limit = 100): Promise<Attempt[]> {
  return (await db('webhook_attempts').where({ endpoint_id: endpointId }).orderBy('id', 'desc').limit(limit)).map(
    toAttempt,
  );
}

export async function attemptsOfDelivery(db: Knex, deliveryId: number): Promise<Attempt[]> {
  return (await db('webhook_attempts').where({ delivery_id: deliveryId }).orderBy('id')).map(toAttempt);
}

/** Deletes events recorded before `before` in batches; their deliveries and log rows go with them (foreign keys). */
export async function purgeEventsBefore(db: Knex, before: Date, batch = 1000): Promise<number> {
  let deleted = 0;
  for (;;) {
    const ids = (await db('webhook_events').where('created_at', '<', before).limit(batch).pluck('id')) as number[];
    if (!ids.length) return deleted;
    deleted += affected(await db('webhook_events').whereIn('id', ids).delete());
  }
}
