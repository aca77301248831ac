import type { Knex } from 'knex';
import { affected, countOf, toDate } from './normalise.ts';

/** Renewal requests (migration 0023): a manager or license user asks the vendor to renew or add seats. */

export const RENEWAL_KINDS = ['renewal', 'more_seats'] as const;
export type RenewalKind = (typeof RENEWAL_KINDS)[number];
export const RENEWAL_STATES = ['new', 'in_progress', 'done', 'declined'] as const;
export type RenewalState = (typeof RENEWAL_STATES)[number];
/** States in which a request is open: a second one of the same kind for the same order or license is refused. */
export const OPEN_STATES: readonly RenewalState[] = ['new', 'in_progress'];

export interface RenewalRequest {
  id: number;
  orderId: number;
  orderRef: string;
  customerName: string;
  licenseId: number | null;
  licenseKey: string | null;
  kind: RenewalKind;
  seats: number | null;
  message: string;
  requesterId: number | null;
  requesterEmail: string | null;
  requesterName: string | null;
  requesterRole: string | null;
  requesterLanguage: string | null;
  state: RenewalState;
  vendorNote: string | null;
  handledById: number | null;
  handledByName: string | null;
  handledAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** The key of the one open request of a kind for an order (license null) or a license. */
export const openKey = (kind: RenewalKind, orderId: number, licenseId: number | null) =>
  licenseId === null ? `${kind}:order:${orderId}` : `${kind}:license:${licenseId}`;

const columns = [
  'r.*',
  'orders.order_ref',
  'customers.name as customer_name',
  'licenses.license_key',
  'requester.email as requester_email',
  'requester.name as requester_name',
  'requester.role as requester_role',
  'requester.language as requester_language',
  'handler.name as handled_by_name',
];

const base = (db: Knex) =>
  db('renewal_requests as r')
    .join('orders', 'orders.id', 'r.order_id')
    .join('customers', 'customers.id', 'orders.customer_id')
    .leftJoin('licenses', 'licenses.id', 'r.license_id')
    .leftJoin('accounts as requester', 'requester.id', 'r.requester_account_id')
    .leftJoin('accounts as handler', 'handler.id', 'r.handled_by_account_id');

const num = (v: unknown) => (v == null ? null : Number(v));
const str = (v: unknown) => (v == null ? null : String(v));

function fromRow(r: Record<string, unknown>): RenewalRequest {
  return {
    id: Number(r.id),
    orderId: Number(r.order_id),
    orderRef: String(r.order_ref),
    customerName: String(r.customer_name),
    licenseId: num(r.license_id),
    licenseKey: str(r.license_key),
    kind: r.kind as RenewalKind,
    seats: num(r.seats),
    message: String(r.message ?? ''),
    requesterId: num(r.requester_account_id),
    requesterEmail: str(r.requester_email),
    requesterName: str(r.requester_name),
    requesterRole: str(r.requester_role),
    requesterLanguage: str(r.requester_language),
    state: r.state as RenewalState,
    vendorNote: str(r.vendor_note),
    handledById: num(r.handled_by_account_id),
    handledByName: str(r.handled_by_name),
    handledAt: toDate(r.handled_at),
    createdAt: toDate(r.created_at)!,
    updatedAt: toDate(r.updated_at)!,
  };
}

export interface NewRenewalRequest {
  orderId: number;
  licenseId: number | null;
  kind: RenewalKind;
  seats: number | null;
  message: string;
  requesterId: number;
}

/** Inserts an open request; throws a unique violation when one of its kind is open for the same order or license. */
export async function insert(db: Knex, r: NewRenewalRequest, now: Date): Promise<number> {
  const [id] = await db('renewal_requests').insert({
    order_id: r.orderId,
    license_id: r.licenseId,
    kind: r.kind,
    seats: r.seats,
    message: r.message,
    requester_account_id: r.requesterId,
    state: 'new',
    open_key: openKey(r.kind, r.orderId, r.licenseId),
    created_at: now,
    updated_at: now,
  });
  return Number(id);
}

export async function findById(db: Knex, id: number): Promise<RenewalRequest | undefined> {
  const row = await base(db)
    .where('r.id', id)
    .first(...columns);
  return row ? fromRow(row) : undefined;
}

/** The newest requests, of one state or all (the console's list). */
export async function list(db: Knex, state: RenewalState | null, limit: number, offset: number) {
  const q = base(db).orderBy('r.id', 'desc').limit(limit).offset(offset);
  if (state) q.where('r.state', state);
  return (await q.select(columns)).map(fromRow);
}

/** How many requests are in each state (every state present, 0 when none). */
export async function countByState(db: Knex): Promise<Record<RenewalState, number>> {
  const rows = await db('renewal_requests').groupBy('state').select('state', db.raw('count(*) as n'));
  const counts = Object.fromEntries(RENEWAL_STATES.map((s) => [s, 0])) as Record<RenewalState, number>;
  for (const r of rows as { state: RenewalState; n: unknown }[])
    if (r.state in counts) counts[r.state] = countOf({ n: r.n });
  return counts;
}

/** The requests of an order (its licenses' included), newest first (the portal's order page). */
export async function listForOrder(db: Knex, orderId: number, limit = 50) {
  return (await base(db).where('r.order_id', orderId).orderBy('r.id', 'desc').limit(limit).select(columns)).map(
    fromRow,
  );
}

/** The requests an account made for a license, newest first (the end user's home page). */
export async function listByRequester(db: Knex, accountId: number, limit = 50) {
  return (
    await base(db).where('r.requester_account_id', accountId).orderBy('r.id', 'desc').limit(limit).select(columns)
  ).map(fromRow);
}

/** Moves a request to `state` with the vendor's note; the open key goes once it is closed. False when it changed meanwhile. */
export async function setState(
  db: Knex,
  id: number,
  from: RenewalState,
  change: { state: RenewalState; note: string | null; handledBy: number | null },
  now: Date,
): Promise<boolean> {
  const open = OPEN_STATES.includes(change.state);
  const result = await db('renewal_requests')
    .where({ id, state: from })
    .update({
      state: change.state,
      vendor_note: change.note,
      handled_by_account_id: change.handledBy,
      handled_at: now,
      updated_at: now,
      ...(open ? {} : { open_key: null }),
    });
  return affected(result) === 1;
}
