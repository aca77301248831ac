import type { Knex } from 'knex';
import { affected, toBool, toDate } from './normalise.ts';

export interface Device {
  id: number;
  licenseId: number;
  licenseUserAccountId: number | null;
  hardwareId: string;
  hostname: string | null;
  os: string | null;
  appVersion: string | null;
  channel: 'online' | 'offline' | 'airgap';
  activatedAt: Date;
  lastSeenAt: Date | null;
  deactivatedAt: Date | null;
  deactivationReason: string | null;
  blacklisted: boolean;
  borrowedUntil: Date | null;
  active: boolean;
}

function fromRow(r: Record<string, unknown>): Device {
  return {
    id: Number(r.id),
    licenseId: Number(r.license_id),
    licenseUserAccountId: r.license_user_account_id === null ? null : Number(r.license_user_account_id),
    hardwareId: String(r.hardware_id),
    hostname: (r.hostname as string | null) ?? null,
    os: (r.os as string | null) ?? null,
    appVersion: (r.app_version as string | null) ?? null,
    channel: r.channel as Device['channel'],
    activatedAt: toDate(r.activated_at)!,
    lastSeenAt: toDate(r.last_seen_at),
    deactivatedAt: toDate(r.deactivated_at),
    deactivationReason: (r.deactivation_reason as string | null) ?? null,
    blacklisted: toBool(r.blacklisted),
    borrowedUntil: toDate(r.borrowed_until),
    active: r.deactivated_at === null,
  };
}

/** Active devices first, then the history, newest first (bounded: a license page never loads thousands). */
export async function listForLicense(db: Knex, licenseId: number, limit = 200): Promise<Device[]> {
  return (await db('devices').where({ license_id: licenseId }).orderByRaw('CASE WHEN deactivated_at IS NULL THEN 0 ELSE 1 END').orderBy('id', 'desc').limit(limit)).map(fromRow);
}

export async function findForLicense(db: Knex, licenseId: number, deviceId: number): Promise<Device | undefined> {
  const row = await db('devices').where({ id: deviceId, license_id: licenseId }).first();
  return row ? fromRow(row) : undefined;
}

export async function activeForLicense(db: Knex, licenseId: number): Promise<Device[]> {
  return (await db('devices').where({ license_id: licenseId }).whereNull('deactivated_at')).map(fromRow);
}

/**
 * Deactivates one active device; true only for the caller whose update took effect, so seat
 * counts move exactly once even when two requests race.
 */
export async function deactivate(db: Knex, deviceId: number, reason: string, now: Date): Promise<boolean> {
  return affected(await db('devices').where({ id: deviceId }).whereNull('deactivated_at').update({ deactivated_at: now, active_hardware_id: null, deactivation_reason: reason })) === 1;
}

/** Frees one seat on the license (and on the license user's assignment), never below zero. */
export async function releaseSeat(db: Knex, device: Device, now: Date): Promise<void> {
  await db('licenses').where({ id: device.licenseId }).where('times_activated', '>', 0).update({ times_activated: db.raw('times_activated - 1'), updated_at: now });
  if (device.licenseUserAccountId) {
    await db('license_user_assignments').where({ license_id: device.licenseId, account_id: device.licenseUserAccountId }).where('times_activated', '>', 0).update({ times_activated: db.raw('times_activated - 1') });
  }
}

export async function markBlacklisted(db: Knex, deviceId: number): Promise<void> {
  await db('devices').where({ id: deviceId }).update({ blacklisted: true });
}

export async function addToBlacklist(db: Knex, licenseId: number, hardwareId: string, actorId: number | null, now: Date): Promise<boolean> {
  const exists = await db('license_blacklist').where({ license_id: licenseId, hardware_id: hardwareId }).first();
  if (exists) return false;
  await db('license_blacklist').insert({ license_id: licenseId, hardware_id: hardwareId, created_by_account_id: actorId, created_at: now });
  return true;
}

export async function addHistory(db: Knex, e: { licenseId: number; deviceId: number | null; event: string; channel?: string | null; hardwareId?: string | null; detail?: string | null; actorId?: number | null }, now: Date): Promise<void> {
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
  return (await db('devices').where({ license_user_account_id: accountId }).whereNull('deactivated_at').orderBy('id').limit(500)).map(fromRow);
}
