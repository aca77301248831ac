import type { Knex } from 'knex';

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
  return row ? { licenseId: Number(row.license_id), accountId: Number(row.account_id), maxActivations: Number(row.max_activations), timesActivated: Number(row.times_activated) } : undefined;
}

export async function insert(db: Knex, licenseId: number, accountId: number, maxActivations: number, now: Date): Promise<void> {
  await table(db).insert({ license_id: licenseId, account_id: accountId, max_activations: maxActivations, times_activated: 0, created_at: now });
}

export async function setLimit(db: Knex, licenseId: number, accountId: number, maxActivations: number): Promise<void> {
  await table(db).where({ license_id: licenseId, account_id: accountId }).update({ max_activations: maxActivations });
}

export async function remove(db: Knex, licenseId: number, accountId: number): Promise<void> {
  await table(db).where({ license_id: licenseId, account_id: accountId }).delete();
}

/** The users of one license, by e-mail address. */
export async function usersOfLicense(db: Knex, licenseId: number): Promise<AssignedUser[]> {
  const rows = await table(db)
    .join('accounts', 'accounts.id', 'license_user_assignments.account_id')
    .where('license_user_assignments.license_id', licenseId)
    .orderBy('accounts.email')
    .select('accounts.id', 'accounts.email', 'accounts.name', 'license_user_assignments.max_activations', 'license_user_assignments.times_activated');
  return rows.map((r: Record<string, unknown>) => ({ id: Number(r.id), email: String(r.email), name: (r.name as string | null) ?? null, maxActivations: Number(r.max_activations), timesActivated: Number(r.times_activated) }));
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
    .select('licenses.id', 'products.name as product_name', 'orders.order_ref', 'license_user_assignments.max_activations', 'license_user_assignments.times_activated');
  return rows.map((r: Record<string, unknown>) => ({ id: Number(r.id), product_name: String(r.product_name), order_ref: String(r.order_ref), max_activations: Number(r.max_activations), times_activated: Number(r.times_activated) }));
}

/** E-mail addresses of the users of each of `licenseIds`. */
export async function emailsByLicense(db: Knex, licenseIds: number[]): Promise<Map<number, string[]>> {
  const rows = await table(db).join('accounts', 'accounts.id', 'license_user_assignments.account_id').whereIn('license_id', licenseIds).select('license_id', 'accounts.email');
  const byLicense = new Map<number, string[]>();
  for (const u of rows as { license_id: number; email: string }[]) byLicense.set(Number(u.license_id), [...(byLicense.get(Number(u.license_id)) ?? []), u.email]);
  return byLicense;
}

/** The user's license of a product to activate: one with a free seat of their own first, then the first issued. */
export async function licenseToActivate(db: Knex, accountId: number, productId: number): Promise<number | undefined> {
  const row = await table(db)
    .join('licenses', 'licenses.id', 'license_user_assignments.license_id')
    .where('license_user_assignments.account_id', accountId)
    .where('licenses.product_id', productId)
    .orderByRaw('CASE WHEN license_user_assignments.times_activated < license_user_assignments.max_activations THEN 0 ELSE 1 END')
    .orderBy('licenses.id')
    .first('licenses.id');
  return row ? Number(row.id) : undefined;
}

/** Takes one of the user's own seats on the license with a guarded update: false when none is free. */
export async function takeSeat(db: Knex, licenseId: number, accountId: number): Promise<boolean> {
  const n = await table(db).where({ license_id: licenseId, account_id: accountId }).where('times_activated', '<', db.ref('max_activations')).update({ times_activated: db.raw('times_activated + 1') });
  return Number(n) === 1;
}

/** A license reset: every user's count back to 0. */
export async function resetCounts(db: Knex, licenseId: number): Promise<void> {
  await table(db).where({ license_id: licenseId }).update({ times_activated: 0 });
}
