import type { Knex } from 'knex';
import { consumptionRuleOf, type ConsumptionPeriod } from './policies.ts';
import { toBool } from './normalise.ts';

/**
 * Consumption features of licenses: the rule each license holds (license_features), what it used per
 * period (consumption_usage) and every accepted consumption (consumption_records, unique by nonce).
 */

export interface ConsumptionRule {
  featureId: number;
  code: string;
  name: string;
  max: number | null;
  period: ConsumptionPeriod;
  allowOverage: boolean;
  maxOverage: number | null;
  total: number;
}

export interface ConsumptionRecord {
  nonce: string | null;
  licenseId: number;
  featureId: number;
  deviceId: number | null;
  period: string;
  amount: number;
  usedAfter: number;
  overage: boolean;
}

/** The period an instant falls in: `all` for a license-long maximum, else the month `YYYY-MM` (UTC). */
export function periodOf(period: ConsumptionPeriod, at: Date): string {
  return period === 'month' ? at.toISOString().slice(0, 7) : 'all';
}

/** The first instant after a period (null for `all`). */
export function periodEnd(period: string): Date | null {
  if (period === 'all') return null;
  const [y, m] = period.split('-').map(Number);
  return new Date(Date.UTC(y!, m!, 1));
}

/** The consumption features a license holds, with their rule. */
export async function rulesOf(db: Knex, licenseId: number): Promise<ConsumptionRule[]> {
  const rows = await db('license_features')
    .join('features', 'features.id', 'license_features.feature_id')
    .where('license_features.license_id', licenseId)
    .where('features.type', 'consumption')
    .orderBy('features.code')
    .select('license_features.*', 'features.code', 'features.name');
  return rows.map((r: Record<string, unknown>) => ({
    featureId: Number(r.feature_id),
    code: String(r.code),
    name: String(r.name),
    max: r.max_consumption === null ? null : Number(r.max_consumption),
    ...consumptionRuleOf(r),
    total: Number(r.total_consumption),
  }));
}

/** What a license used of a feature in one period (0 before its first use). */
export async function usedIn(db: Knex, licenseId: number, featureId: number, period: string): Promise<number> {
  const row = await db('consumption_usage')
    .where({ license_id: licenseId, feature_id: featureId, period })
    .first('used');
  return row ? Number(row.used) : 0;
}

/**
 * Adds `amount` to a period's use and the license's total. The caller holds the license row lock
 * (licenses.lockLicense), so the read and the write cannot interleave with another consumption.
 */
export async function add(db: Knex, licenseId: number, featureId: number, period: string, amount: number) {
  const key = { license_id: licenseId, feature_id: featureId, period };
  const updated = await db('consumption_usage')
    .where(key)
    .update({ used: db.raw('used + ?', [amount]) });
  if (!updated) await db('consumption_usage').insert({ ...key, used: amount });
  await db('license_features')
    .where({ license_id: licenseId, feature_id: featureId })
    .update({ total_consumption: db.raw('total_consumption + ?', [amount]) });
}

export async function insertRecord(
  db: Knex,
  r: ConsumptionRecord & { reportId?: number | null },
  now: Date,
): Promise<void> {
  await db('consumption_records').insert({
    nonce: r.nonce,
    license_id: r.licenseId,
    feature_id: r.featureId,
    device_id: r.deviceId,
    report_id: r.reportId ?? null,
    period: r.period,
    amount: r.amount,
    used_after: r.usedAfter,
    overage: r.overage,
    created_at: now,
  });
}

export async function findRecord(db: Knex, nonce: string): Promise<ConsumptionRecord | undefined> {
  const r = await db('consumption_records').where({ nonce }).first();
  return r
    ? {
        nonce: String(r.nonce),
        licenseId: Number(r.license_id),
        featureId: Number(r.feature_id),
        deviceId: r.device_id === null ? null : Number(r.device_id),
        period: String(r.period),
        amount: Number(r.amount),
        usedAfter: Number(r.used_after),
        overage: toBool(r.overage),
      }
    : undefined;
}

/** Each consumption feature of a license with its use in the period `at` falls in (the license pages). */
export async function usageOf(db: Knex, licenseId: number, at: Date) {
  const rules = await rulesOf(db, licenseId);
  const out = [];
  for (const rule of rules) {
    const period = periodOf(rule.period, at);
    out.push({ ...rule, periodKey: period, used: await usedIn(db, licenseId, rule.featureId, period) });
  }
  return out;
}
