import type { Knex } from 'knex';
import { parseJson, toDate } from './normalise.ts';

export interface AuditEventInput {
  actorAccountId: number | null;
  actorLabel: string | null;
  action: string;
  objectType?: string | null;
  objectId?: string | number | null;
  orderId?: number | null;
  before?: unknown;
  after?: unknown;
  ip: string | null;
  requestId: string | null;
}

export interface AuditEvent {
  id: number;
  occurredAt: Date;
  actorAccountId: number | null;
  actorLabel: string | null;
  action: string;
  objectType: string | null;
  objectId: string | null;
  orderId: number | null;
  before: unknown;
  after: unknown;
  ip: string | null;
  requestId: string | null;
}

const json = (v: unknown) => (v === undefined || v === null ? null : JSON.stringify(v));

export async function insert(db: Knex, e: AuditEventInput, now: Date): Promise<void> {
  await db('audit_events').insert({
    occurred_at: now,
    actor_account_id: e.actorAccountId,
    actor_label: e.actorLabel,
    action: e.action,
    object_type: e.objectType ?? null,
    object_id: e.objectId === undefined || e.objectId === null ? null : String(e.objectId),
    order_id: e.orderId ?? null,
    before_state: json(e.before),
    after_state: json(e.after),
    ip: e.ip,
    request_id: e.requestId,
  });
}

function fromRow(r: Record<string, unknown>): AuditEvent {
  return {
    id: Number(r.id),
    occurredAt: toDate(r.occurred_at)!,
    actorAccountId: r.actor_account_id === null ? null : Number(r.actor_account_id),
    actorLabel: (r.actor_label as string | null) ?? null,
    action: String(r.action),
    objectType: (r.object_type as string | null) ?? null,
    objectId: (r.object_id as string | null) ?? null,
    orderId: r.order_id === null ? null : Number(r.order_id),
    before: parseJson(r.before_state),
    after: parseJson(r.after_state),
    ip: (r.ip as string | null) ?? null,
    requestId: (r.request_id as string | null) ?? null,
  };
}

export interface AuditFilter {
  action?: string;
  actorAccountId?: number;
  objectType?: string;
  objectId?: string;
}

export async function list(db: Knex, filter: AuditFilter, limit: number, offset = 0): Promise<AuditEvent[]> {
  const q = db('audit_events').orderBy('id', 'desc').limit(limit).offset(offset);
  if (filter.action) q.where('action', filter.action);
  if (filter.actorAccountId) q.where('actor_account_id', filter.actorAccountId);
  if (filter.objectType) q.where('object_type', filter.objectType);
  if (filter.objectId) q.where('object_id', filter.objectId);
  return (await q).map(fromRow);
}
