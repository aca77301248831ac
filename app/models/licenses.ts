import type { Knex } from 'knex';

export const LICENSE_STATUSES = ['disabled', 'expired', 'active', 'inactive'] as const;
export type LicenseStatus = (typeof LICENSE_STATUSES)[number];

/** The derived status (SPEC §1) as one SQL expression, so lists can filter and count by it. */
export function statusSql(db: Knex, now: Date, alias = 'licenses'): Knex.Raw {
  return db.raw(
    `CASE WHEN ${alias}.enabled = ? THEN 'disabled' WHEN ${alias}.expires_at IS NOT NULL AND ${alias}.expires_at <= ? THEN 'expired' WHEN ${alias}.times_activated > 0 THEN 'active' ELSE 'inactive' END`,
    [false, now],
  );
}

/** License counts by status for a set of orders (a sub-query of order ids). */
export async function countByStatus(db: Knex, orderIds: Knex.QueryBuilder, now: Date): Promise<Record<LicenseStatus, number>> {
  const rows = await db('licenses').whereIn('order_id', orderIds).select({ status: statusSql(db, now) }).count({ n: '*' }).groupBy('status');
  const counts = Object.fromEntries(LICENSE_STATUSES.map((s) => [s, 0])) as Record<LicenseStatus, number>;
  for (const r of rows as { status: LicenseStatus; n: number | string }[]) counts[r.status] = Number(r.n);
  return counts;
}

/** Licenses assigned to an end user (user-based licenses), with product names. */
export async function listForLicenseUser(db: Knex, accountId: number, now: Date) {
  const rows = await db('license_user_assignments as a')
    .join('licenses', 'licenses.id', 'a.license_id')
    .join('products', 'products.id', 'licenses.product_id')
    .where('a.account_id', accountId)
    .orderBy('licenses.id', 'desc')
    .limit(200)
    .select('licenses.id', 'products.name as product_name', 'licenses.expires_at', 'a.max_activations', 'a.times_activated', { status: statusSql(db, now) });
  return rows.map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    productName: String(r.product_name),
    status: r.status as LicenseStatus,
    maxActivations: Number(r.max_activations),
    timesActivated: Number(r.times_activated),
  }));
}
