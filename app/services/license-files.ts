import type { Knex } from 'knex';
import * as licenses from '../models/licenses.ts';
import * as devices from '../models/devices.ts';
import { getSettings, settingDefaults } from '../models/settings.ts';
import { signAsServer } from '../crypto/envelopes.ts';
import { HttpError, notFound } from '../lib/errors.ts';
import type { Language } from '../../config/index.ts';
import { auditedChange } from './changes.ts';
import type { Actor, ServiceDeps } from './context.ts';

/**
 * License files: the signed answer an offline device keeps (typ `license`), and refresh files (typ
 * `refresh`) that carry the current entitlements to a device already activated, with a counter that
 * only grows so a device can refuse an older file. docs/file-formats.md describes the payload.
 */

export const LICENSE_PAYLOAD_VERSION = 1;

export interface LicensePayloadInput {
  license: licenses.License;
  deviceId: number;
  hardwareId: string;
  devicePublicKey: string;
  requestNonce: string;
  counter: number;
  userEmail: string | null;
  now: Date;
  leaseDays: number;
}

async function featuresOf(db: Knex, licenseId: number) {
  const rows = await db('license_features').join('features', 'features.id', 'license_features.feature_id').where('license_features.license_id', licenseId).orderBy('features.code').select('features.code', 'features.type', 'license_features.max_consumption');
  return rows.map((r: Record<string, unknown>) => ({ code: String(r.code), type: String(r.type), maxConsumption: r.max_consumption === null ? null : Number(r.max_consumption) }));
}

/** The payload every license and refresh file carries: bound to product, license, hardware id, device key and request nonce. */
export async function licensePayload(db: Knex, p: LicensePayloadInput) {
  const l = p.license;
  const leaseEnd = new Date(p.now.getTime() + p.leaseDays * 86_400_000);
  return {
    v: LICENSE_PAYLOAD_VERSION,
    product: l.productCode,
    licenseId: l.id,
    licenseKey: l.licenseKey,
    user: p.userEmail,
    activationId: p.deviceId,
    hardwareId: p.hardwareId,
    devicePublicKey: p.devicePublicKey,
    requestNonce: p.requestNonce,
    issuedAt: p.now.toISOString(),
    counter: p.counter,
    licenseType: l.licenseType,
    trial: l.isTrial,
    startsAt: l.startDate?.toISOString() ?? null,
    expiresAt: l.expiresAt?.toISOString() ?? null,
    leaseEndsAt: (l.expiresAt && l.expiresAt < leaseEnd ? l.expiresAt : leaseEnd).toISOString(),
    maintenanceUntil: l.maintenanceUntil?.toISOString() ?? null,
    maxActivations: l.unlimitedActivations ? null : l.maxActivations,
    floating: l.floating ? { users: l.floatingUsers, timeoutMinutes: l.floatingTimeoutMinutes } : null,
    features: await featuresOf(db, l.id),
  };
}

/**
 * A fresh license file for an active offline device, with today's entitlements and a counter one
 * higher than any file it got before. Audited; the device's history records it.
 */
export async function issueRefreshFile(deps: ServiceDeps & { dataDir: string; defaultLanguage: Language }, actor: Actor, licenseId: number, deviceId: number): Promise<{ text: string; filename: string }> {
  const settings = await getSettings(deps.db, settingDefaults(deps.defaultLanguage));
  return auditedChange(deps, actor, async (trx, now) => {
    const license = await licenses.findById(trx, licenseId, now);
    const device = license ? await devices.findForLicense(trx, licenseId, deviceId) : undefined;
    if (!license || !device) throw notFound();
    const row = await trx('devices').where({ id: deviceId }).first('device_public_key', 'license_counter');
    if (!device.active || device.channel !== 'offline' || !row.device_public_key) throw new HttpError(409, 'portal.refresh.notOffline');
    if (!license.enabled) throw new HttpError(409, 'portal.refresh.disabled');
    const nonce = await trx('request_nonces').where({ device_id: deviceId, kind: 'activation' }).orderBy('created_at').first('nonce');
    if (!nonce) throw new HttpError(409, 'portal.refresh.notOffline');
    const user = device.licenseUserAccountId ? await trx('accounts').where({ id: device.licenseUserAccountId }).first('email') : null;
    const counter = Number(row.license_counter) + 1;
    await trx('devices').where({ id: deviceId }).update({ license_counter: counter });
    await devices.addHistory(trx, { licenseId, deviceId, event: 'refreshed', channel: device.channel, hardwareId: device.hardwareId, detail: `counter ${counter}`, actorId: actor.accountId }, now);
    const payload = await licensePayload(trx, { license, deviceId, hardwareId: device.hardwareId, devicePublicKey: String(row.device_public_key), requestNonce: String(nonce.nonce), counter, userEmail: user ? String(user.email) : null, now, leaseDays: settings.offlineLeaseDays });
    const text = await signAsServer(trx, deps.dataDir, 'refresh', payload);
    return {
      result: { text, filename: `${license.productCode}-${device.hardwareId.replace(/[^\w.-]/g, '_').slice(0, 40)}-refresh-${counter}.lic` },
      audit: { action: 'device.refresh_file_issued', objectType: 'device', objectId: deviceId, orderId: license.orderId, after: { counter, leaseEndsAt: payload.leaseEndsAt } },
    };
  });
}
