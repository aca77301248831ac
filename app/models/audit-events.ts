import type { Knex } from 'knex';
import { isSqlite } from '../../db/knexfile.ts';
import { countOf, parseJson, toDate, whereStartsWith } from './normalise.ts';

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

export async function findById(db: Knex, id: number): Promise<AuditEvent | undefined> {
  const row = await db('audit_events').where({ id }).first();
  return row ? fromRow(row) : undefined;
}

/**
 * The console's audit log filters. `actor` matches exactly when it is a whole e-mail address and as a
 * prefix otherwise; `action` matches as a prefix when it ends in "." and exactly otherwise; `to` is
 * exclusive. Callers pass actor and action in lower case, as they are stored.
 */
export interface AuditSearch {
  actor?: string;
  action?: string;
  objectType?: string;
  objectId?: string;
  from?: Date;
  to?: Date;
}

const WHOLE_ADDRESS = /^[^@\s]+@[^@\s]+\.[^@\s.]+$/;

const actorIsExact = (f: AuditSearch) => !!f.actor && WHOLE_ADDRESS.test(f.actor);
const actionIsExact = (f: AuditSearch) => !!f.action && !f.action.endsWith('.');

/** Each filter can be answered from an index of its own (see migrations 0001 and 0002). */
function searched(db: Knex, f: AuditSearch, q: Knex.QueryBuilder = db('audit_events')) {
  if (actorIsExact(f)) q.where('actor_label', f.actor!);
  else if (f.actor) whereStartsWith(db, q, 'actor_label', f.actor);
  if (actionIsExact(f)) q.where('action', f.action!);
  else if (f.action) whereStartsWith(db, q, 'action', f.action);
  if (f.objectType) q.where('object_type', f.objectType);
  if (f.objectId) q.where('object_id', f.objectId);
  if (f.from) q.where('occurred_at', '>=', f.from);
  if (f.to) q.where('occurred_at', '<', f.to);
  return q;
}

const newestFirst = (q: Knex.QueryBuilder) => q.orderBy('occurred_at', 'desc').orderBy('id', 'desc');

/** A prefix (of an actor or action) is the filter's only selective part: its index is in the wrong order for the page. */
const prefixOnly = (f: AuditSearch) =>
  !!((f.actor && !actorIsExact(f)) || (f.action && !actionIsExact(f))) &&
  !actorIsExact(f) &&
  !actionIsExact(f) &&
  !f.objectType;

/**
 * Whether a page of a prefix search is cheaper read by walking the time index newest first and
 * skipping what does not match (about (offset + limit) × events ÷ matches rows) than by reading every
 * match from the prefix's index and sorting them (matches rows): the former once matches² exceed
 * (offset + limit) × events. `license.` matches a tenth of a large log: the walk reads a few hundred
 * rows where the sort would read a million. Counting stops at the break-even.
 */
async function walkTimeIndex(db: Knex, f: AuditSearch, rows: number): Promise<boolean> {
  // Two sub-queries: SQLite answers a lone min() or max() from the index, both together by reading the table.
  const [span] = await db.select({
    hi: db('audit_events').max('id'),
    lo: db('audit_events').min('id'),
  });
  const events = span?.hi ? Number(span.hi) - Number(span.lo) + 1 : 0;
  const breakEven = Math.ceil(Math.sqrt(rows * events));
  return (await countUpTo(db, f, breakEven)) >= breakEven;
}

export async function search(db: Knex, f: AuditSearch, limit: number, offset = 0): Promise<AuditEvent[]> {
  if (!prefixOnly(f)) return (await newestFirst(searched(db, f)).limit(limit).offset(offset)).map(fromRow);
  if (await walkTimeIndex(db, f, offset + limit))
    return (
      await newestFirst(searched(db, f, walking(db, 'audit_events_occurred_at_index')))
        .limit(limit)
        .offset(offset)
    ).map(fromRow);
  // Few enough matches to sort: sort their entries of the prefix's index (which hold the time and
  // the id), then read only the page's rows.
  const page = newestFirst(searched(db, f).select('id', 'occurred_at')).limit(limit).offset(offset).as('page');
  const rows = await db('audit_events as e')
    .join(page, 'page.id', 'e.id')
    .select('e.*')
    .orderBy([
      { column: 'e.occurred_at', order: 'desc' },
      { column: 'e.id', order: 'desc' },
    ]);
  return rows.map(fromRow);
}

/** How many events match, counting no further than `cap`: a count of the whole log would read all of it. */
export async function countUpTo(db: Knex, f: AuditSearch, cap: number): Promise<number> {
  const matching = searched(db, f).select(db.raw('1')).limit(cap).as('matching');
  return countOf(await db.from(matching).count({ n: '*' }).first());
}

/**
 * The object types that occur in the log, for the filter's pick list: one index seek per type (a
 * skip scan), each the first type after the one before. DISTINCT read the whole index on SQLite, every
 * event of the log, on every page of it; a recursive query doing the same seeks read it on MariaDB.
 */
export async function objectTypes(db: Knex): Promise<string[]> {
  const types: string[] = [];
  for (;;) {
    const next = db('audit_events').whereNotNull('object_type').orderBy('object_type').first('object_type');
    if (types.length) next.where('object_type', '>', types[types.length - 1]!);
    const row = await next;
    if (!row) return types;
    types.push(String(row.object_type));
  }
}

/**
 * The index an export walks: the most selective one whose entries for the matching rows are already
 * in (occurred_at, id) order, so each batch reads on from where the last one stopped. Left to itself
 * the planner may instead read a prefix range and sort every remaining match again for each batch
 * (SQLite), or take the equality part of an index and skip over the rows already sent (MariaDB).
 */
function exportIndex(f: AuditSearch): string {
  if (actionIsExact(f)) return 'audit_events_action_occurred_at_index';
  if (actorIsExact(f)) return 'audit_events_actor_label_occurred_at_index';
  if (f.objectType && f.objectId) return 'audit_events_object_occurred_at_index';
  if (f.objectType) return 'audit_events_object_type_occurred_at_index';
  return 'audit_events_occurred_at_index';
}

const walking = (db: Knex, index: string) =>
  db.from(db.raw(isSqlite(db) ? '?? INDEXED BY ??' : '?? FORCE INDEX (??)', ['audit_events', index]));

/**
 * Every matching event, newest first, `batchSize` at a time and at most `max` in all. Each batch
 * continues after the last row of the one before (keyset on occurred_at, id), so every query is one
 * index range however deep into the log the export is.
 */
export async function* batches(db: Knex, f: AuditSearch, batchSize: number, max: number): AsyncGenerator<AuditEvent[]> {
  const index = exportIndex(f);
  let last: AuditEvent | undefined;
  let left = max;
  while (left > 0) {
    // After the first batch the keyset is the upper bound; `to` would only be a second one, and SQLite
    // would start its range at the looser of the two.
    const q = searched(db, last ? { ...f, to: undefined } : f, walking(db, index));
    if (last) {
      const { occurredAt, id } = last;
      q.where('occurred_at', '<=', occurredAt).where((w) =>
        w.where('occurred_at', '<', occurredAt).orWhere('id', '<', id),
      );
    }
    const rows = (await newestFirst(q).limit(Math.min(batchSize, left))).map(fromRow);
    if (rows.length === 0) return;
    yield rows;
    if (rows.length < batchSize) return;
    left -= rows.length;
    last = rows[rows.length - 1];
  }
}

export interface FieldChange {
  field: string;
  before: unknown;
  after: unknown;
  /** False when the key is missing on that side (created or removed), as opposed to null. */
  inBefore: boolean;
  inAfter: boolean;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** JSON with object keys sorted, so equal values compare equal whatever order their keys were written in. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (isRecord(v))
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

/** The top-level keys whose values differ between before and after (a missing side counts as {}). */
export function changedFields(before: unknown, after: unknown): FieldChange[] {
  const b = isRecord(before) ? before : before === null || before === undefined ? {} : undefined;
  const a = isRecord(after) ? after : after === null || after === undefined ? {} : undefined;
  if (!b || !a) return [];
  const keys = [...new Set([...Object.keys(b), ...Object.keys(a)])];
  return keys
    .filter((k) => !(k in b && k in a && canonical(b[k]) === canonical(a[k])))
    .map((k) => ({ field: k, before: b[k], after: a[k], inBefore: k in b, inAfter: k in a }));
}

/** Orders per statement of listForOrders: one index range each, in one UNION ALL. */
const ORDERS_PER_STATEMENT = 100;

/**
 * The newest events of a set of orders (a sub-query of order ids), for a manager's dashboard: the
 * newest `limit` of each order from the (order_id, occurred_at) index, then the newest of those. A
 * single query over all the orders' events would read and sort every one of them (SQLite), however
 * many millions; this reads `limit` index entries per order.
 */
export async function listForOrders(db: Knex, orderIds: Knex.QueryBuilder, limit: number): Promise<AuditEvent[]> {
  const ids = (await orderIds).map((r: Record<string, unknown>) => Number(Object.values(r)[0]));
  const newestOf = (orderId: number) =>
    db.from(newestFirst(db('audit_events').where('order_id', orderId)).limit(limit).as(`order_${orderId}`)).select('*');
  const events: AuditEvent[] = [];
  for (let k = 0; k < ids.length; k += ORDERS_PER_STATEMENT) {
    const [first, ...rest] = ids.slice(k, k + ORDERS_PER_STATEMENT).map(newestOf);
    events.push(...(await (rest.length ? first!.unionAll(rest) : first!)).map(fromRow));
  }
  return events.sort((a, b) => b.occurredAt.getTime() - a.occurredAt.getTime() || b.id - a.id).slice(0, limit);
}

/**
 * Deletes up to `batch` events that occurred before `cutoff`, oldest ids first, in one short
 * statement pair (no long transaction: activations writing their own events are not held up).
 * Returns how many were deleted.
 */
export async function deleteBatchBefore(db: Knex, cutoff: Date, batch: number): Promise<number> {
  const ids = (await db('audit_events').where('occurred_at', '<', cutoff).orderBy('id').limit(batch).select('id')).map(
    (r: { id: number }) => Number(r.id),
  );
  if (!ids.length) return 0;
  return Number(await db('audit_events').whereIn('id', ids).delete());
}
