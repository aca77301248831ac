import type { Knex } from 'knex';
import { toDate } from './normalise.ts';

/** Accepted usage reports, one row each: unique per device and first counter, per nonce and per report hash. */

export interface UsageReport {
  id: number;
  licenseId: number;
  deviceId: number;
  firstCounter: number;
  lastCounter: number;
  headHash: string;
  entries: number;
  peakSeats: number | null;
  consumption: Record<string, number>;
  featuresUsed: Record<string, number>;
  renewedCounter: number | null;
  createdAt: Date;
}

const parse = (text: unknown): Record<string, number> => {
  try {
    const v = JSON.parse(String(text));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {};
  } catch {
    return {};
  }
};

function fromRow(r: Record<string, unknown>): UsageReport {
  return {
    id: Number(r.id),
    licenseId: Number(r.license_id),
    deviceId: Number(r.device_id),
    firstCounter: Number(r.first_counter),
    lastCounter: Number(r.last_counter),
    headHash: String(r.head_hash),
    entries: Number(r.entries),
    peakSeats: r.peak_seats === null ? null : Number(r.peak_seats),
    consumption: parse(r.consumption),
    featuresUsed: parse(r.features_used),
    renewedCounter: r.renewed_counter === null ? null : Number(r.renewed_counter),
    createdAt: toDate(r.created_at)!,
  };
}

/** The device's newest accepted report (the one the next must follow). */
export async function lastOf(db: Knex, deviceId: number): Promise<UsageReport | undefined> {
  const row = await db('usage_reports').where({ device_id: deviceId }).orderBy('last_counter', 'desc').first();
  return row ? fromRow(row) : undefined;
}

export async function seen(db: Knex, nonce: string, reportHash: string): Promise<boolean> {
  return !!(await db('usage_reports').where({ nonce }).orWhere({ report_hash: reportHash }).first('id'));
}

export async function insert(
  db: Knex,
  r: Omit<UsageReport, 'id' | 'createdAt' | 'renewedCounter'> & { nonce: string; reportHash: string },
  now: Date,
): Promise<number> {
  const [id] = await db('usage_reports').insert({
    license_id: r.licenseId,
    device_id: r.deviceId,
    nonce: r.nonce,
    report_hash: r.reportHash,
    first_counter: r.firstCounter,
    last_counter: r.lastCounter,
    head_hash: r.headHash,
    entries: r.entries,
    peak_seats: r.peakSeats,
    consumption: JSON.stringify(r.consumption),
    features_used: JSON.stringify(r.featuresUsed),
    created_at: now,
  });
  return Number(id);
}

export async function setRenewed(db: Knex, id: number, counter: number): Promise<void> {
  await db('usage_reports').where({ id }).update({ renewed_counter: counter });
}

/** A device's reports, newest first. */
export async function listForDevice(db: Knex, deviceId: number, limit = 200): Promise<UsageReport[]> {
  return (await db('usage_reports').where({ device_id: deviceId }).orderBy('last_counter', 'desc').limit(limit)).map(
    fromRow,
  );
}

/**
 * True-up figures of an order, per license that received usage reports: purchased seats against the
 * highest peak any of its devices reported (licenses without reports have nothing to true up).
 */
export async function trueUpOf(db: Knex, orderId: number, limit = 500) {
  const rows = await db('licenses')
    .join('usage_reports', 'usage_reports.license_id', 'licenses.id')
    .where('licenses.order_id', orderId)
    .groupBy('licenses.id', 'licenses.license_key', 'licenses.max_activations', 'licenses.unlimited_activations')
    .orderBy('licenses.id')
    .limit(limit)
    .select(
      'licenses.id',
      'licenses.license_key',
      'licenses.max_activations',
      'licenses.unlimited_activations',
      db.raw('MAX(usage_reports.peak_seats) as peak'),
      db.raw('COUNT(usage_reports.id) as reports'),
    );
  return rows.map((r: Record<string, unknown>) => ({
    licenseId: Number(r.id),
    licenseKey: r.license_key === null ? null : String(r.license_key),
    purchased: Number(r.unlimited_activations) ? null : Number(r.max_activations),
    peak: r.peak === null ? null : Number(r.peak),
    reports: Number(r.reports),
  }));
}
