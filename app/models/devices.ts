import type { Knex } from 'knex';
import { affected, countOf, toBool, toDate } from './normalise.ts';

export const CHANNELS = ['online', 'offline', 'airgap'] as const;
export type Channel = (typeof CHANNELS)[number];

/** What ended an activation (devices.deactivation_reason; labelled deactivationReasons.<reason>). */
export const DEACTIVATION_REASONS = ['device', 'reset', 'revoked', 'expired_slot'] as const;
export type DeactivationReason = (typeof DEACTIVATION_REASONS)[number];

/**
 * A license's activation history (activation_history.event; labelled historyEvents.<event>). A
 * refusal's row keeps its refusal code in `detail`.
 */
export const HISTORY_EVENTS = [
  'activated',
  'deactivated',
  'refused',
  'deactivation_refused',
  'check_refused',
  'reset',
  'revoked',
  'unblacklisted',
  'borrowed',
  'refreshed',
  'consumption_refused',
  'usage_report_refused',
  'usage_reported',
] as const;
export type HistoryEvent = (typeof HISTORY_EVENTS)[number];

/** A devices row as both databases return it (dates, booleans and blobs normalised by fromRow). */
export interface DeviceRow {
  id: number;
  license_id: number;
  license_user_account_id: number | null;
  hardware_id: string;
  active_hardware_id: string | null;
  hostname: string | null;
  os: string | null;
  app_version: string | null;
  channel: Channel;
  device_public_key: string | null;
  request_hash: string | null;
  /** Air-gap codes version 1: the secret derived from the activation code's signature (anyone who saw that code knows it). */
  airgap_secret: Uint8Array | null;
  /** Air-gap codes version 2: the commitment to the secret only the device holds (20 hex digits). */
  airgap_commitment: string | null;
  license_counter: number;
  activated_at: Date | number | string;
  last_seen_at: Date | number | string | null;
  deactivated_at: Date | number | string | null;
  deactivation_reason: string | null;
  blacklisted: boolean | number;
  borrowed_until: Date | number | string | null;
  floating_expires_at: Date | number | string | null;
}

/** One activation of a license on one machine; deactivated rows are kept as history. */
export interface Device {
  id: number;
  licenseId: number;
  licenseUserAccountId: number | null;
  hardwareId: string;
  hostname: string | null;
  os: string | null;
  appVersion: string | null;
  channel: Channel;
  devicePublicKey: string | null;
  requestHash: string | null;
  airgapSecret: Buffer | null;
  airgapCommitment: string | null;
  /** The counter of the newest license or refresh file issued to this activation (0: the license file). */
  licenseCounter: number;
  activatedAt: Date;
  lastSeenAt: Date | null;
  deactivatedAt: Date | null;
  deactivationReason: string | null;
  blacklisted: boolean;
  borrowedUntil: Date | null;
  floatingExpiresAt: Date | null;
  active: boolean;
}

function fromRow(r: DeviceRow): Device {
  return {
    id: Number(r.id),
    licenseId: Number(r.license_id),
    licenseUserAccountId: r.license_user_account_id === null ? null : Number(r.license_user_account_id),
    hardwareId: String(r.hardware_id),
    hostname: r.hostname ?? null,
    os: r.os ?? null,
    appVersion: r.app_version ?? null,
    channel: r.channel,
    devicePublicKey: r.device_public_key ?? null,
    requestHash: r.request_hash ?? null,
    airgapSecret: r.airgap_secret === null || r.airgap_secret === undefined ? null : Buffer.from(r.airgap_secret),
    airgapCommitment: r.airgap_commitment ?? null,
    licenseCounter: Number(r.license_counter),
    activatedAt: toDate(r.activated_at)!,
    lastSeenAt: toDate(r.last_seen_at),
    deactivatedAt: toDate(r.deactivated_at),
    deactivationReason: r.deactivation_reason ?? null,
    blacklisted: toBool(r.blacklisted),
    borrowedUntil: toDate(r.borrowed_until),
    floatingExpiresAt: toDate(r.floating_expires_at),
    active: r.deactivated_at === null,
  };
}

const table = (db: Knex) => db<DeviceRow>('devices');

export async function findById(db: Knex, id: number): Promise<Device | undefined> {
  const row = await table(db).where({ id }).first();
  return row ? fromRow(row) : undefined;
}

/** The active activation of a hardware id on a license (at most one: unique key on active_hardware_id). */
export async function findActive(db: Knex, licenseId: number, hardwareId: string): Promise<Device | undefined> {
  const row = await table(db).where({ license_id: licenseId, active_hardware_id: hardwareId }).first();
  return row ? fromRow(row) : undefined;
}

/** The newest activation (active or not) of a hardware id on a license. */
export async function findLatest(db: Knex, licenseId: number, hardwareId: string): Promise<Device | undefined> {
  const row = await table(db).where({ license_id: licenseId, hardware_id: hardwareId }).orderBy('id', 'desc').first();
  return row ? fromRow(row) : undefined;
}

/**
 * The machines that ever held an activation of the license, in one statement: how many distinct
 * ones, and whether this hardware id is one of them (a returning machine is no transfer).
 */
export async function machinesOf(
  db: Knex,
  licenseId: number,
  hardwareId: string,
): Promise<{ distinct: number; held: boolean }> {
  const row = (await table(db)
    .where({ license_id: licenseId })
    .first(
      db.raw('count(distinct hardware_id) as n'),
      db.raw('coalesce(max(case when hardware_id = ? then 1 else 0 end), 0) as held', [hardwareId]),
    )) as unknown as { n: number | string; held: number | string } | undefined;
  return { distinct: Number(row?.n ?? 0), held: Number(row?.held ?? 0) === 1 };
}

/** Active floating slots not checked in since `at` and not borrowed past it. */
export async function lapsedSlots(db: Knex, licenseId: number, at: Date): Promise<Device[]> {
  const rows = await table(db)
    .where({ license_id: licenseId })
    .whereNull('deactivated_at')
    .where('floating_expires_at', '<=', at)
    .where((w) => w.whereNull('borrowed_until').orWhere('borrowed_until', '<=', at));
  return rows.map(fromRow);
}

export interface NewDevice {
  licenseId: number;
  licenseUserAccountId: number | null;
  hardwareId: string;
  hostname: string | null;
  os: string | null;
  appVersion: string | null;
  channel: Channel;
  devicePublicKey: string | null;
  requestHash: string;
  airgapCommitment: string | null;
  floatingExpiresAt: Date | null;
}

/**
 * Inserts an active device; a second active device of the same machine breaks the unique key.
 * Returns the row as inserted (the columns not set take their defaults), without reading it back.
 */
export async function insert(db: Knex, d: NewDevice, now: Date): Promise<Device> {
  const row = {
    license_id: d.licenseId,
    license_user_account_id: d.licenseUserAccountId,
    hardware_id: d.hardwareId,
    active_hardware_id: d.hardwareId,
    hostname: d.hostname,
    os: d.os,
    app_version: d.appVersion,
    channel: d.channel,
    device_public_key: d.devicePublicKey,
    request_hash: d.requestHash,
    airgap_commitment: d.airgapCommitment,
    activated_at: now,
    last_seen_at: now,
    floating_expires_at: d.floatingExpiresAt,
  };
  const [id] = await table(db).insert(row);
  return fromRow({
    ...row,
    id: Number(id),
    airgap_secret: null,
    license_counter: 0,
    deactivated_at: null,
    deactivation_reason: null,
    blacklisted: false,
    borrowed_until: null,
  });
}

/** Records that the device was seen (and, for a floating slot, holds it until `floatingExpiresAt`). */
export async function touch(db: Knex, id: number, now: Date, floatingExpiresAt?: Date | null): Promise<void> {
  await table(db)
    .where({ id })
    .update({ last_seen_at: now, ...(floatingExpiresAt ? { floating_expires_at: floatingExpiresAt } : {}) });
}

/**
 * The next counter of the device's license files, taken in one statement so that no two files ever
 * carry the same counter. Call it under the license row lock (models/licenses.ts lockLicense), which
 * every path that issues a file takes first: the increment and the read back see no other writer.
 */
export async function nextCounter(
  db: Knex,
  id: number,
  /** Records in the same statement that the device was seen (see touch). */
  seen?: { at: Date; floatingExpiresAt: Date | null },
): Promise<number> {
  await table(db)
    .where({ id })
    .update({
      license_counter: db.raw('license_counter + 1'),
      ...(seen ? { last_seen_at: seen.at } : {}),
      ...(seen?.floatingExpiresAt ? { floating_expires_at: seen.floatingExpiresAt } : {}),
    });
  return Number((await table(db).where({ id }).first('license_counter'))!.license_counter);
}

/**
 * What a device was last given, in one UPDATE per issued file: its lease end (the later one wins:
 * downloading the activation's file again must not shorten a refreshed lease; docs/notifications.md,
 * "Lease ending") and the digest of the file's entitlements (a "renewal pending" device is one whose
 * license no longer matches it; services/usage-reports.ts).
 */
export async function recordFileIssued(
  db: Knex,
  id: number,
  file: { leaseEndsAt: Date; entitlementsDigest: string },
): Promise<void> {
  await db('devices')
    .where({ id })
    .update({
      lease_ends_at: db.raw('CASE WHEN lease_ends_at IS NULL OR lease_ends_at < ? THEN ? ELSE lease_ends_at END', [
        file.leaseEndsAt,
        file.leaseEndsAt,
      ]),
      entitlements_sha256: file.entitlementsDigest,
    });
}

export async function setBorrowedUntil(db: Knex, id: number, until: Date): Promise<void> {
  await table(db).where({ id }).update({ borrowed_until: until });
}

/** The license of a device that an end user activated, or undefined when it is not theirs. */
export async function licenseOfUserDevice(db: Knex, id: number, accountId: number): Promise<number | undefined> {
  const row = await table(db).where({ id, license_user_account_id: accountId }).first('license_id');
  return row ? Number(row.license_id) : undefined;
}

export async function hasActiveForUser(db: Knex, licenseId: number, accountId: number): Promise<boolean> {
  return (
    (await table(db)
      .where({ license_id: licenseId, license_user_account_id: accountId })
      .whereNull('deactivated_at')
      .first('id')) !== undefined
  );
}

export async function isBlacklisted(db: Knex, licenseId: number, hardwareId: string): Promise<boolean> {
  return (
    (await db('license_blacklist').where({ license_id: licenseId, hardware_id: hardwareId }).first('license_id')) !==
    undefined
  );
}

/** Air-gap activations made with version 1 codes that are still active: their deactivation codes cannot be proven. */
export async function listLegacyAirgap(db: Knex, limit = 200): Promise<Device[]> {
  const rows = await table(db)
    .where({ channel: 'airgap' })
    .whereNull('deactivated_at')
    .whereNull('airgap_commitment')
    .orderBy('id')
    .limit(limit);
  return rows.map(fromRow);
}

export async function countLegacyAirgap(db: Knex): Promise<number> {
  return countOf(
    await table(db)
      .where({ channel: 'airgap' })
      .whereNull('deactivated_at')
      .whereNull('airgap_commitment')
      .count({ n: '*' })
      .first(),
  );
}

/** Active devices first, then the history, newest first (bounded: a license page never loads thousands). */
export async function listForLicense(db: Knex, licenseId: number, limit = 200): Promise<Device[]> {
  return (
    await table(db)
      .where({ license_id: licenseId })
      .orderByRaw('CASE WHEN deactivated_at IS NULL THEN 0 ELSE 1 END')
      .orderBy('id', 'desc')
      .limit(limit)
  ).map(fromRow);
}

/** Every device of a license, active or not (the Management API pages it by id with cursorPage). */
export const forLicenseQuery = (db: Knex, licenseId: number): Knex.QueryBuilder =>
  table(db).where({ license_id: licenseId }).select('*');

export const fromApiRow = (r: Record<string, unknown>): Device => fromRow(r as unknown as DeviceRow);

export async function findForLicense(db: Knex, licenseId: number, deviceId: number): Promise<Device | undefined> {
  const row = await table(db).where({ id: deviceId, license_id: licenseId }).first();
  return row ? fromRow(row) : undefined;
}

export async function activeForLicense(db: Knex, licenseId: number): Promise<Device[]> {
  return (await table(db).where({ license_id: licenseId }).whereNull('deactivated_at')).map(fromRow);
}

/**
 * Deactivates one active device; true only for the caller whose update took effect, so seat
 * counts move exactly once even when two requests race.
 */
export async function deactivate(db: Knex, deviceId: number, reason: DeactivationReason, now: Date): Promise<boolean> {
  return (
    affected(
      await table(db)
        .where({ id: deviceId })
        .whereNull('deactivated_at')
        .update({ deactivated_at: now, active_hardware_id: null, deactivation_reason: reason }),
    ) === 1
  );
}

/** Frees one seat on the license (and on the license user's assignment), never below zero. */
export async function releaseSeat(db: Knex, device: Device, now: Date): Promise<void> {
  await db('licenses')
    .where({ id: device.licenseId })
    .where('times_activated', '>', 0)
    .update({ times_activated: db.raw('times_activated - 1'), updated_at: now });
  if (device.licenseUserAccountId) {
    await db('license_user_assignments')
      .where({ license_id: device.licenseId, account_id: device.licenseUserAccountId })
      .where('times_activated', '>', 0)
      .update({ times_activated: db.raw('times_activated - 1') });
  }
}

export async function markBlacklisted(db: Knex, deviceId: number): Promise<void> {
  await table(db).where({ id: deviceId }).update({ blacklisted: true });
}

/**
 * Takes a hardware id off the license's blacklist and unmarks its device rows: the machine may
 * activate the license again. True only for the caller whose delete took effect.
 */
export async function removeFromBlacklist(db: Knex, licenseId: number, hardwareId: string): Promise<boolean> {
  const removed = affected(
    await db('license_blacklist').where({ license_id: licenseId, hardware_id: hardwareId }).delete(),
  );
  await table(db).where({ license_id: licenseId, hardware_id: hardwareId }).update({ blacklisted: false });
  return removed > 0;
}

export async function addToBlacklist(
  db: Knex,
  licenseId: number,
  hardwareId: string,
  actorId: number | null,
  now: Date,
): Promise<boolean> {
  const exists = await db('license_blacklist').where({ license_id: licenseId, hardware_id: hardwareId }).first();
  if (exists) return false;
  await db('license_blacklist').insert({
    license_id: licenseId,
    hardware_id: hardwareId,
    created_by_account_id: actorId,
    created_at: now,
  });
  return true;
}

export async function addHistory(
  db: Knex,
  e: {
    licenseId: number;
    deviceId: number | null;
    event: HistoryEvent;
    channel?: string | null;
    hardwareId?: string | null;
    detail?: string | null;
    actorId?: number | null;
  },
  now: Date,
): Promise<void> {
  await db('activation_history').insert({
    license_id: e.licenseId,
    device_id: e.deviceId,
    event: e.event,
    channel: e.channel ?? null,
    hardware_id: e.hardwareId ?? null,
    detail: e.detail ?? null,
    actor_account_id: e.actorId ?? null,
    occurred_at: now,
  });
}

export async function listHistory(db: Knex, licenseId: number, limit = 100) {
  const rows = await db('activation_history').where({ license_id: licenseId }).orderBy('id', 'desc').limit(limit);
  return rows.map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    event: String(r.event),
    channel: (r.channel as string | null) ?? null,
    hardwareId: (r.hardware_id as string | null) ?? null,
    detail: (r.detail as string | null) ?? null,
    occurredAt: toDate(r.occurred_at)!,
  }));
}

/** The active devices an end user activated (user-based licenses), for "My licenses". */
export async function activeForLicenseUser(db: Knex, accountId: number): Promise<Device[]> {
  return (
    await table(db).where({ license_user_account_id: accountId }).whereNull('deactivated_at').orderBy('id').limit(500)
  ).map(fromRow);
}

/** The digest of the entitlements of the last file each device of a license was given (null: before it was kept). */
export async function entitlementDigests(db: Knex, licenseId: number): Promise<Map<number, string | null>> {
  const rows = await db('devices').where({ license_id: licenseId }).select('id', 'entitlements_sha256');
  return new Map(
    rows.map((r: { id: number; entitlements_sha256: string | null }) => [Number(r.id), r.entitlements_sha256]),
  );
}
