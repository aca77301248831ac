import crypto from 'node:crypto';
import type { Knex } from 'knex';
import {
  airgapActivationMessage,
  airgapExpiresDay,
  encodeActivationCode,
  AIRGAP_MAX_FEATURES,
} from '../../sdk/src/airgap.ts';
import type { LicensePayload } from '../../sdk/src/payloads.ts';
import * as licenses from '../models/licenses.ts';
import * as devices from '../models/devices.ts';
import * as accounts from '../models/accounts.ts';
import * as products from '../models/products.ts';
import * as requestNonces from '../models/request-nonces.ts';
import type { Settings } from '../models/settings.ts';
import { HttpError, notFound } from '../lib/errors.ts';
import { deviceActions } from '../policies/devices.ts';
import { inTransaction } from '../lib/transaction.ts';
import { recordAudit } from './audit.ts';
import { ActivationError, assertUsable } from './refusals.ts';
import type { Signer } from './signer.ts';
import type { Actor, ServiceDeps } from './context.ts';

/**
 * THE license-artifact path: every license file (typ `license`, counter 0, the answer to an
 * activation), every refresh file (typ `refresh`, a counter that only grows: API checks, console and
 * portal refreshes) and every air-gap activation code is built, counted and signed here, through
 * the app's one signer. docs/file-formats.md describes the payloads.
 */

export const LICENSE_PAYLOAD_VERSION = 1;

export interface ArtifactDeps extends ServiceDeps {
  signer: Signer;
  settings: (db?: Knex) => Promise<Settings>;
}

/** What a license entitles to, as its files say it (everything but the device, counter, dates of issue and lease). */
async function entitlementsOf(db: Knex, l: licenses.License) {
  return {
    licenseType: l.licenseType,
    trial: l.isTrial,
    startsAt: l.startDate?.toISOString() ?? null,
    expiresAt: l.expiresAt?.toISOString() ?? null,
    maintenanceUntil: l.maintenanceUntil?.toISOString() ?? null,
    maxActivations: l.unlimitedActivations ? null : l.maxActivations,
    floating: l.floating
      ? { users: l.floatingUsers as number, timeoutMinutes: l.floatingTimeoutMinutes as number }
      : null,
    features: (await licenses.featuresOf(db, l.id)).map((f) => ({
      code: f.code,
      type: f.type,
      maxConsumption: f.maxConsumption,
    })),
  };
}

const digestOf = (e: object) => crypto.createHash('sha256').update(JSON.stringify(e)).digest('hex');

/**
 * SHA-256 of a license's entitlements now. Each device keeps the digest of the last file it was
 * given (devices.entitlements_sha256): a device whose digest differs has a renewal pending, which its
 * next usage report picks up (services/usage-reports.ts).
 */
export async function entitlementsDigest(db: Knex, l: licenses.License): Promise<string> {
  return digestOf(await entitlementsOf(db, l));
}

/** The payload every license and refresh file carries: bound to product, license, hardware id, device key and request nonce. */
async function licensePayload(
  db: Knex,
  l: licenses.License,
  device: devices.Device,
  counter: number,
  issuedAt: Date,
  leaseDays: number,
): Promise<LicensePayload> {
  const leaseEnd = new Date(issuedAt.getTime() + leaseDays * 86_400_000);
  const user = device.licenseUserAccountId ? await accounts.findById(db, device.licenseUserAccountId) : undefined;
  return {
    v: LICENSE_PAYLOAD_VERSION,
    product: l.productCode,
    licenseId: l.id,
    licenseKey: l.licenseKey,
    user: user?.email ?? null,
    activationId: device.id,
    hardwareId: device.hardwareId,
    devicePublicKey: device.devicePublicKey ?? '',
    requestNonce: (await requestNonces.activationNonceOf(db, device.id)) ?? '',
    issuedAt: issuedAt.toISOString(),
    counter,
    licenseType: l.licenseType,
    trial: l.isTrial,
    startsAt: l.startDate?.toISOString() ?? null,
    expiresAt: l.expiresAt?.toISOString() ?? null,
    leaseEndsAt: (l.expiresAt && l.expiresAt < leaseEnd ? l.expiresAt : leaseEnd).toISOString(),
    maintenanceUntil: l.maintenanceUntil?.toISOString() ?? null,
    maxActivations: l.unlimitedActivations ? null : l.maxActivations,
    floating: l.floating
      ? { users: l.floatingUsers as number, timeoutMinutes: l.floatingTimeoutMinutes as number }
      : null,
    features: (await licenses.featuresOf(db, l.id)).map((f) => ({
      code: f.code,
      type: f.type,
      maxConsumption: f.maxConsumption,
    })),
  };
}

/** The entitlement fields of a payload, in the order entitlementsOf gives them. */
const entitlementsIn = (p: LicensePayload) => ({
  licenseType: p.licenseType,
  trial: p.trial,
  startsAt: p.startsAt,
  expiresAt: p.expiresAt,
  maintenanceUntil: p.maintenanceUntil,
  maxActivations: p.maxActivations,
  floating: p.floating,
  features: p.features,
});

/**
 * A signed license (`license`) or refresh (`refresh`) file for an ACTIVE device, under the one
 * validity rule. The license file is deterministic (counter 0, issued at the activation), so the
 * same activation always yields the same file; a refresh file takes the device's next counter in
 * one statement — the caller holds the license row lock (lockLicense), as every path that issues
 * one does, so no two files of a device ever carry the same counter.
 */
export async function issueLicenseFile(
  db: Knex,
  deps: ArtifactDeps,
  license: licenses.License,
  device: devices.Device,
  file: {
    typ: 'license' | 'refresh';
    at: Date;
    /** A refresh the device asked for itself (online check): it was seen now, holding its floating slot until then. */
    seen?: { floatingExpiresAt: Date | null };
  },
): Promise<{ text: string; payload: LicensePayload }> {
  const { typ, at, seen } = file;
  if (!device.active) throw new ActivationError('activation_inactive', 410);
  if (device.channel === 'airgap' || !device.devicePublicKey) throw new ActivationError('airgap_only', 403);
  await assertUsable(db, license, device.channel, device.hardwareId, at);
  const settings = await deps.settings(db);
  const counter = typ === 'refresh' ? await devices.nextCounter(db, device.id, seen && { at, ...seen }) : 0;
  const payload = await licensePayload(
    db,
    license,
    device,
    counter,
    typ === 'refresh' ? at : device.activatedAt,
    settings.offlineLeaseDays,
  );
  const text = await deps.signer.license(db, typ, payload);
  await devices.recordFileIssued(db, device.id, {
    leaseEndsAt: new Date(payload.leaseEndsAt),
    entitlementsDigest: digestOf(entitlementsIn(payload)),
  });
  return { text, payload };
}

/** The bitmap of the first 8 features of the product (by code) that the license holds. */
async function featureBitmap(db: Knex, license: licenses.License): Promise<number> {
  const held = new Set((await licenses.featuresOf(db, license.id)).map((f) => f.featureId));
  const all = (await products.listFeatures(db, license.productId)).slice(0, AIRGAP_MAX_FEATURES);
  return all.reduce((bits, f, i) => (held.has(f.id) ? bits | (1 << i) : bits), 0);
}

/** The signed air-gap activation code of an active air-gap device, deterministic for the activation. */
export async function airgapActivationCode(
  db: Knex,
  deps: ArtifactDeps,
  license: licenses.License,
  device: devices.Device,
  request: { hardwareHash: string; commitment: string },
  at: Date,
): Promise<string> {
  if (!device.active) throw new ActivationError('activation_inactive', 410);
  await assertUsable(db, license, 'airgap', device.hardwareId, at);
  const fields = { expiresDay: airgapExpiresDay(license.expiresAt), features: await featureBitmap(db, license) };
  const message = airgapActivationMessage({
    productCode: license.productCode,
    hardwareHash: request.hardwareHash,
    commitment: request.commitment,
    licenseKey: license.licenseKey ?? '',
    ...fields,
  });
  return encodeActivationCode({ ...fields, signature: await deps.signer.signature(db, message) });
}

/**
 * A fresh refresh file for an active offline device, issued from the console or the User Portal:
 * today's entitlements, the next counter. Audited; the device's history records it.
 */
export async function issueRefreshFile(
  deps: ArtifactDeps,
  actor: Actor,
  licenseId: number,
  deviceId: number,
): Promise<{ text: string; filename: string }> {
  return inTransaction(deps.db, async (trx) => {
    const now = deps.clock.now();
    await licenses.lockLicense(trx, licenseId);
    const license = await licenses.findById(trx, licenseId, now);
    const device = license ? await devices.findForLicense(trx, licenseId, deviceId) : undefined;
    if (!license || !device) throw notFound();
    if (!deviceActions(license, device).refresh) throw new HttpError(409, 'portal.refresh.notOffline');
    let file: Awaited<ReturnType<typeof issueLicenseFile>>;
    try {
      file = await issueLicenseFile(trx, deps, license, device, { typ: 'refresh', at: now });
    } catch (err) {
      if (err instanceof ActivationError) throw new HttpError(409, `offline.refusals.${err.code}.why`);
      throw err;
    }
    const { counter, leaseEndsAt } = file.payload;
    await devices.addHistory(
      trx,
      {
        licenseId,
        deviceId,
        event: 'refreshed',
        channel: device.channel,
        hardwareId: device.hardwareId,
        detail: `counter ${counter}`,
        actorId: actor.accountId,
      },
      now,
    );
    await recordAudit(trx, actor, now, {
      action: 'device.refresh_file_issued',
      objectType: 'device',
      objectId: deviceId,
      orderId: license.orderId,
      after: { counter, leaseEndsAt },
    });
    return {
      text: file.text,
      filename: `${license.productCode}-${device.hardwareId.replace(/[^\w.-]/g, '_').slice(0, 40)}-refresh-${counter}.lic`,
    };
  });
}
