import type { Knex } from 'knex';
import { affected, toDate } from './normalise.ts';

/** License users' assignments to user-based licenses, each with its own activation limit and count. */

export interface AssignmentRow {
  license_id: number;
  account_id: number;
  max_activations: number;
  times_activated: number;
  created_at: Date | number | string;
}

export interface Assignment {
  licenseId: number;
  accountId: number;
  maxActivations: number;
  timesActivated: number;
}

export interface AssignedUser {
  id: number;
  email: string;
  name: string | null;
  maxActivations: number;
  timesActivated: number;
}

const table = (db: Knex) => db<AssignmentRow>('license_user_assignments');

export async function find(db: Knex, licenseId: number, accountId: number): Promise<Assignment | undefined> {
  const row = await table(db).where({ license_id: licenseId, account_id: accountId }).first();
  return row
    ? {
        licenseId: Number(row.license_id),
        accountId: Number(row.account_id),
        maxActivations: Number(row.max_activations),
        timesActivated: Number(row.times_activated),
      }
    : undefined;
}

export async function insert(
  db: Knex,
  licenseId: number,
  accountId: number,
  maxActivations: number,
  now: Date,
): Promise<void> {
  await table(db).insert({
    license_id: licenseId,
    account_id: accountId,
    max_activations: maxActivations,
    times_activated: 0,
    created_at: now,
  });
}

export async function setLimit(db: Knex, licenseId: number, accountId: number, maxActivations: number): Promise<void> {
  await table(db).where({ license_id: licenseId, account_id: accountId }).update({ max_activations: maxActivations });
}

export async function remove(db: Knex, licenseId: number, accountId: number): Promise<void> {
  await table(db).where({ license_id: licenseId, account_id: accountId }).delete();
}

/** The users of one license as a query over account ids (the Management API pages it with cursorPage). */
export const usersQuery = (db: Knex, licenseId: number): Knex.QueryBuilder =>
  table(db)
    .join('accounts', 'accounts.id', 'license_user_assignments.account_id')
    .where('license_user_assignments.license_id', licenseId)
    .select(
      'accounts.id',
      'accounts.email',
      'accounts.name',
      'license_user_assignments.max_activations',
      'license_user_assignments.times_activated',
    );

export const userFromRow = (r: Record<string, unknown>): AssignedUser => ({
  id: Number(r.id),
  email: String(r.email),
  name: (r.name as string | null) ?? null,
  maxActivations: Number(r.max_activations),
  timesActivated: Number(r.times_activated),
});

/** The users of one license, by e-mail address. */
export async function usersOfLicense(db: Knex, licenseId: number): Promise<AssignedUser[]> {
  return (await usersQuery(db, licenseId).orderBy('accounts.email')).map(userFromRow);
}

/** The licenses of one user, newest first, with product and order (the console's license-user page). */
export async function licensesOfUser(db: Knex, accountId: number, limit = 200) {
  const rows = await table(db)
    .join('licenses', 'licenses.id', 'license_user_assignments.license_id')
    .join('products', 'products.id', 'licenses.product_id')
    .join('orders', 'orders.id', 'licenses.order_id')
    .where('license_user_assignments.account_id', accountId)
    .orderBy('licenses.id', 'desc')
    .limit(limit)
    .select(
      'licenses.id',
      'products.name as product_name',
      'orders.order_ref',
      'license_user_assignments.max_activations',
      'license_user_assignments.times_activated',
    );
  return rows.map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    product_name: String(r.product_name),
    order_ref: String(r.order_ref),
    max_activations: Number(r.max_activations),
    times_activated: Number(r.times_activated),
  }));
}

/** E-mail addresses of the users of each of `licenseIds`. */
export async function emailsByLicense(db: Knex, licenseIds: number[]): Promise<Map<number, string[]>> {
  const rows = await table(db)
    .join('accounts', 'accounts.id', 'license_user_assignments.account_id')
    .whereIn('license_id', licenseIds)
    .select('license_id', 'accounts.email');
  const byLicense = new Map<number, string[]>();
  for (const u of rows as { license_id: number; email: string }[])
    byLicense.set(Number(u.license_id), [...(byLicense.get(Number(u.license_id)) ?? []), u.email]);
  return byLicense;
}

/** The user's license of a product to activate: one with a free seat of their own first, then the first issued. */
export async function licenseToActivate(db: Knex, accountId: number, productId: number): Promise<number | undefined> {
  const row = await table(db)
    .join('licenses', 'licenses.id', 'license_user_assignments.license_id')
    .where('license_user_assignments.account_id', accountId)
    .where('licenses.product_id', productId)
    .orderByRaw(
      'CASE WHEN license_user_assignments.times_activated < license_user_assignments.max_activations THEN 0 ELSE 1 END',
    )
    .orderBy('licenses.id')
    .first('licenses.id');
  return row ? Number(row.id) : undefined;
}

/** Takes one of the user's own seats on the license with a guarded update: false when none is free. */
export async function takeSeat(db: Knex, licenseId: number, accountId: number): Promise<boolean> {
  const n = await table(db)
    .where({ license_id: licenseId, account_id: accountId })
    .where('times_activated', '<', db.ref('max_activations'))
    .update({ times_activated: db.raw('times_activated + 1') });
  return Number(n) === 1;
}

/** A license reset: every user's count back to 0. */
export async function resetCounts(db: Knex, licenseId: number): Promise<void> {
  await table(db).where({ license_id: licenseId }).update({ times_activated: 0 });
}

/** The account ids among `accountIds` assigned to a license of an order outside `orderIds` (a subquery of order ids). */
export async function assignedOutside(
  db: Knex,
  accountIds: number[],
  orderIds: Knex.QueryBuilder,
): Promise<Set<number>> {
  if (!accountIds.length) return new Set();
  const rows = await table(db)
    .join('licenses', 'licenses.id', 'license_user_assignments.license_id')
    .whereIn('license_user_assignments.account_id', accountIds)
    .whereNotIn('licenses.order_id', orderIds)
    .distinct('license_user_assignments.account_id');
  return new Set(rows.map((r: { account_id: number }) => Number(r.account_id)));
}

// --- Invitations: an assignment that waits for the account's owner to accept it (docs/decisions.md, "Account ownership").

export interface InvitationRow {
  id: number;
  license_id: number;
  account_id: number;
  max_activations: number;
  token_hash: string;
  invited_by_account_id: number | null;
  created_at: Date | number | string;
  expires_at: Date | number | string;
  accepted_at: Date | number | string | null;
}

export interface Invitation {
  id: number;
  licenseId: number;
  accountId: number;
  maxActivations: number;
  invitedBy: number | null;
  createdAt: Date;
  expiresAt: Date;
  acceptedAt: Date | null;
}

/** A pending invitation as the license page lists it. */
export interface InvitedUser {
  invitationId: number;
  email: string;
  maxActivations: number;
  expiresAt: Date;
}

const invitations = (db: Knex) => db<InvitationRow>('license_user_invitations');

const invitationFrom = (r: InvitationRow): Invitation => ({
  id: Number(r.id),
  licenseId: Number(r.license_id),
  accountId: Number(r.account_id),
  maxActivations: Number(r.max_activations),
  invitedBy: r.invited_by_account_id === null ? null : Number(r.invited_by_account_id),
  createdAt: toDate(r.created_at)!,
  expiresAt: toDate(r.expires_at)!,
  acceptedAt: toDate(r.accepted_at),
});

export async function insertInvitation(
  db: Knex,
  i: {
    licenseId: number;
    accountId: number;
    maxActivations: number;
    tokenHash: string;
    invitedBy: number | null;
    expiresAt: Date;
  },
  now: Date,
): Promise<number> {
  const [id] = await invitations(db).insert({
    license_id: i.licenseId,
    account_id: i.accountId,
    max_activations: i.maxActivations,
    token_hash: i.tokenHash,
    invited_by_account_id: i.invitedBy,
    created_at: now,
    expires_at: i.expiresAt,
  });
  return Number(id);
}

/** An invitation that can still be accepted: not accepted, not expired, not withdrawn (deleted). */
export async function findUsableInvitation(db: Knex, tokenHash: string, now: Date): Promise<Invitation | undefined> {
  const row = await invitations(db)
    .where({ token_hash: tokenHash })
    .whereNull('accepted_at')
    .where('expires_at', '>', now)
    .first();
  return row ? invitationFrom(row) : undefined;
}

/** A pending invitation of one license (withdrawing it), or undefined. */
export async function findPendingInvitation(
  db: Knex,
  licenseId: number,
  invitationId: number,
): Promise<Invitation | undefined> {
  const row = await invitations(db).where({ id: invitationId, license_id: licenseId }).whereNull('accepted_at').first();
  return row ? invitationFrom(row) : undefined;
}

/** Whether invitation `id` still exists, pending, with this token (a rolled-back attempt's invitation does not). */
export async function invitationPending(db: Knex, id: number, tokenHash: string): Promise<boolean> {
  return !!(await invitations(db).where({ id, token_hash: tokenHash }).whereNull('accepted_at').first('id'));
}

/** Marks the invitation accepted; true only for the one caller that wins (a link works once, even under races). */
export async function acceptInvitation(db: Knex, id: number, now: Date): Promise<boolean> {
  return (
    affected(
      await invitations(db)
        .where({ id })
        .whereNull('accepted_at')
        .where('expires_at', '>', now)
        .update({ accepted_at: now }),
    ) === 1
  );
}

/** Deletes the pending invitations of one account to one license (withdrawn, or replaced by a new one). */
export async function removePendingInvitations(db: Knex, licenseId: number, accountId: number): Promise<void> {
  await invitations(db).where({ license_id: licenseId, account_id: accountId }).whereNull('accepted_at').delete();
}

export async function removeInvitation(db: Knex, id: number): Promise<void> {
  await invitations(db).where({ id }).whereNull('accepted_at').delete();
}

/** The pending, unexpired invitations of one license, by e-mail address. */
export async function invitedToLicense(db: Knex, licenseId: number, now: Date): Promise<InvitedUser[]> {
  const rows = await invitations(db)
    .join('accounts', 'accounts.id', 'license_user_invitations.account_id')
    .where('license_user_invitations.license_id', licenseId)
    .whereNull('license_user_invitations.accepted_at')
    .where('license_user_invitations.expires_at', '>', now)
    .orderBy('accounts.email')
    .select(
      'license_user_invitations.id',
      'accounts.email',
      'license_user_invitations.max_activations',
      'license_user_invitations.expires_at',
    );
  return rows.map((r: Record<string, unknown>) => ({
    invitationId: Number(r.id),
    email: String(r.email),
    maxActivations: Number(r.max_activations),
    expiresAt: toDate(r.expires_at)!,
  }));
}
