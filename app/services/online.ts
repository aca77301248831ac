import { verifyDeviceSigned } from '../../sdk/src/envelope.ts';
import { EnvelopeError } from '../../sdk/src/errors.ts';
import { LicenseError } from '../../sdk/src/license-error.ts';
import { readActivationRequestPayload, readCheckRequestPayload, readDeactivationRequestPayload } from '../../sdk/src/payloads.ts';
import * as licenses from '../models/licenses.ts';
import { lockLicense } from '../models/licenses.ts';
import { getSettings, settingDefaults } from '../models/settings.ts';
import { signAsServer } from '../crypto/envelopes.ts';
import { activate, deactivate, requestActivationInput, deactivationReceipt, expireFloatingSlots, licenseFile, signedByRegisteredDevice, type ActivationDeps } from './activation.ts';
import { licensePayload } from './license-files.ts';
import type { Actor } from './context.ts';

/**
 * The License API's work (SPEC §7): the same signed requests as the offline portal, sent by the
 * application itself, answered with the same signed envelopes. One activation service.
 */

/** A refusal of the API with a stable code (`{ error: { code, message } }`). */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
  ) {
    super(code);
  }
}

function readEnvelope<T>(text: unknown, typ: 'activation-request' | 'deactivation-request' | 'check-request', reader: (p: Parameters<typeof readCheckRequestPayload>[0]) => T): T {
  if (typeof text !== 'string' || !text.trim()) throw new ApiError('request_missing', 400);
  try {
    return reader(verifyDeviceSigned(text, typ).payload);
  } catch (err) {
    if (err instanceof EnvelopeError) throw new ApiError(err.code === 'signature' ? 'signature_invalid' : err.code === 'type' ? 'wrong_type' : 'request_malformed', err.code === 'too_large' ? 413 : 400);
    if (err instanceof LicenseError) throw new ApiError('request_malformed', 400);
    throw err;
  }
}


export async function activateOnline(deps: ActivationDeps, actor: Actor, requestText: unknown, credentials: { email: string; password: string } | null) {
  const p = readEnvelope(requestText, 'activation-request', readActivationRequestPayload);
  const input = requestActivationInput('online', p, String(requestText), credentials);
  if (!input) throw new ApiError('user_credentials', 401);
  const result = await activate(deps, actor, input);
  const file = await licenseFile(deps, result.deviceId);
  return { activationId: result.deviceId, repeated: result.repeated, license: file.text };
}

/**
 * An online check: the device proves with its key that it holds the activation; the answer is a
 * refresh envelope with today's entitlements (a growing counter). A floating license's slot is
 * held for another timeout; a borrowed device keeps its slot until the borrow ends.
 */
export async function checkOnline(deps: ActivationDeps, _actor: Actor, requestText: unknown) {
  const p = readEnvelope(requestText, 'check-request', readCheckRequestPayload);
  const settings = await getSettings(deps.db, settingDefaults(deps.defaultLanguage));
  return deps.db.transaction(async (trx) => {
    const at = deps.clock.now();
    const device = await trx('devices').where({ id: p.activationId, license_id: p.licenseId }).first();
    if (!device || device.device_public_key !== p.devicePublicKey || device.hardware_id !== p.hardwareId) throw new ApiError('activation_unknown', 404);
    // The license row before any change to its devices, as in every such transaction (models/licenses.ts
    // lockLicense): freeing lapsed floating slots here must not cross an activation doing the same.
    await lockLicense(trx, p.licenseId);
    let license = (await licenses.findById(trx, p.licenseId, at))!;
    if (license.productCode !== p.product) throw new ApiError('activation_unknown', 404);
    // Only when stale floating slots were freed (this device's among them, perhaps) is anything read again.
    const freed = await expireFloatingSlots(trx, license, at);
    const current = freed ? await trx('devices').where({ id: device.id }).first('deactivated_at', 'license_counter') : device;
    if (current.deactivated_at !== null) throw new ApiError('activation_inactive', 410);
    if (!license.enabled) throw new ApiError('license_disabled', 403);
    if (license.expiresAt && license.expiresAt <= at) throw new ApiError('expired', 403);
    const counter = Number(current.license_counter) + 1;
    await trx('devices')
      .where({ id: device.id })
      .update({ last_seen_at: at, license_counter: counter, ...(license.floating && license.floatingTimeoutMinutes ? { floating_expires_at: new Date(at.getTime() + license.floatingTimeoutMinutes * 60_000) } : {}) });
    if (freed) license = (await licenses.findById(trx, p.licenseId, at))!;
    const nonce = await trx('request_nonces').where({ device_id: device.id, kind: 'activation' }).orderBy('created_at').first('nonce');
    const user = device.license_user_account_id ? await trx('accounts').where({ id: device.license_user_account_id }).first('email') : null;
    const payload = await licensePayload(trx, { license, deviceId: Number(device.id), hardwareId: p.hardwareId, devicePublicKey: p.devicePublicKey, requestNonce: String(nonce?.nonce ?? ''), counter, userEmail: user ? String(user.email) : null, now: at, leaseDays: settings.offlineLeaseDays });
    return { valid: true, license: await signAsServer(trx, deps.dataDir, 'refresh', payload), leaseEndsAt: payload.leaseEndsAt, floatingExpiresAt: license.floating ? new Date(at.getTime() + (license.floatingTimeoutMinutes ?? 0) * 60_000).toISOString() : null };
  });
}

/** Deactivation (and `release` of a floating slot): the same proof as offline, a signed receipt back. */
export async function deactivateOnline(deps: ActivationDeps, actor: Actor, requestText: unknown) {
  const p = readEnvelope(requestText, 'deactivation-request', readDeactivationRequestPayload);
  const result = await deactivate(deps, actor, { channel: 'online', licenseId: p.licenseId, activationId: p.activationId, hardwareId: p.hardwareId, nonce: p.nonce, usage: p.usage, proves: signedByRegisteredDevice(p.devicePublicKey, p.hardwareId, p.activationNonce) });
  return { repeated: result.repeated, receipt: await deactivationReceipt(deps, result.deviceId, p.nonce) };
}


