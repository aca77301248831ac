import crypto from 'node:crypto';
import type { Knex } from 'knex';
import {
  airgapActivationMessage,
  airgapExpiresDay,
  airgapSecret,
  confirmationCode,
  deactivationTagValid,
  encodeActivationCode,
  parseAirgapRequest,
  parseDeactivationCode,
  productHash,
} from '../../sdk/src/airgap.ts';
import { CodeError, normaliseCodeText } from '../../sdk/src/codes.ts';
import { listTrustedKeys, loadPrivateKey } from '../crypto/signing-keys.ts';
import { getSettings, settingDefaults } from '../models/settings.ts';
import { normaliseLicenseKey } from '../lib/license-keys.ts';
import { ActivationError, activate, deactivate, recordRefusal, type ActivationDeps } from './activation.ts';
import type { Actor } from './context.ts';

/**
 * The Air-Gapped Activation Portal's work between typed codes and the one activation service.
 * Codes are made and read by the SDK (sdk/src/airgap.ts); the server adds its private key and the
 * database. docs/file-formats.md describes every bit.
 */

/** A typed code that failed its check symbols: a typo, not an attempt (it never counts). */
export class TypoError extends Error {
  constructor(
    readonly field: string,
    readonly group: number | null,
  ) {
    super('typo');
  }
}

function readCode<T>(field: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof CodeError) {
      if (err.code === 'typo') throw new TypoError(field, err.group ?? null);
      throw new ActivationError('code_malformed', 422);
    }
    throw err;
  }
}

/** Checks the codes' form first, so typos are reported before anything is counted or audited. */
export function parseActivationInput(requestCode: string, now?: Date) {
  return readCode('request_code', () => parseAirgapRequest(requestCode, now));
}

export function parseDeactivationInput(code: string) {
  return readCode('deactivation_code', () => parseDeactivationCode(code));
}

async function productFor(db: Knex, hash: number): Promise<{ id: number; code: string } | undefined> {
  const rows: { id: number; code: string }[] = await db('products').select('id', 'code');
  return rows.find((p) => productHash(p.code) === hash);
}

/** The activation service records its own refusals: mark them so they are not recorded twice. */
async function markRecorded<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof ActivationError) Object.assign(err, { recorded: true });
    throw err;
  }
}


export interface AirgapActivation {
  code: string;
  deviceId: number;
  productName: string;
  licenseKey: string;
  expiresAt: Date | null;
  seatsLeft: number | null;
}

/**
 * Activates from a license key and a request code: the same checks as every activation (the license
 * must be air-gapped), then the signed activation code bound to the request.
 */
/** Refusals found before the activation service runs are recorded like its own. */
async function audited<T>(deps: ActivationDeps, actor: Actor, action: string, hardwareId: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof ActivationError && !(err as { recorded?: boolean }).recorded) await recordRefusal(deps, actor, { channel: 'airgap', hardwareId }, err.code, action);
    throw err;
  }
}

export async function activateByCode(deps: ActivationDeps, actor: Actor, typedKey: string, requestCode: string): Promise<AirgapActivation> {
  const request = parseActivationInput(requestCode, deps.clock.now());
  return audited(deps, actor, 'activation.refused', `ag-${request.hardwareHash}`, () => activateParsed(deps, actor, typedKey, requestCode, request));
}

async function activateParsed(deps: ActivationDeps, actor: Actor, typedKey: string, requestCode: string, request: ReturnType<typeof parseActivationInput>): Promise<AirgapActivation> {
  const settings = await getSettings(deps.db, settingDefaults(deps.defaultLanguage));
  const at = deps.clock.now();
  // The code carries the hour it was made in: allow that hour on top of the lifetime.
  const age = at.getTime() - request.issuedAt.getTime();
  if (age > settings.airgapCodeMinutes * 60_000 + 3600_000 || age < -3600_000) throw new ActivationError('code_expired', 422);
  const product = await productFor(deps.db, request.productHash);
  if (!product) throw new ActivationError('product_unknown', 404);
  const licenseKey = normaliseLicenseKey(typedKey);
  const nonce = `aga-${request.hardwareHash}-${request.nonce}`;
  if (await deps.db('request_nonces').where({ nonce }).first()) throw new ActivationError('code_used', 409);
  const result = await markRecorded(() => activate(deps, actor, {
    channel: 'airgap',
    productCode: product.code,
    licenseKey,
    user: null,
    hardwareId: `ag-${request.hardwareHash}`,
    devicePublicKey: null,
    nonce,
    requestHash: crypto.createHash('sha256').update(normaliseCodeText(requestCode)).digest('hex'),
    hostname: null,
    os: null,
    appVersion: null,
  }));
  const license = result.license;
  const features = await deps.db('features').where({ product_id: license.productId }).orderBy('code').select('id');
  const held = new Set((await deps.db('license_features').where({ license_id: license.id }).select('feature_id')).map((r: { feature_id: number }) => Number(r.feature_id)));
  const bitmap = features.slice(0, 8).reduce((bits: number, f: { id: number }, i: number) => (held.has(Number(f.id)) ? bits | (1 << i) : bits), 0);
  const expiresDay = airgapExpiresDay(license.expiresAt);
  const active = (await listTrustedKeys(deps.db)).find((k) => k.status === 'active');
  if (!active) throw new Error('No active signing key');
  const message = airgapActivationMessage({ productCode: product.code, hardwareHash: request.hardwareHash, nonce: request.nonce, licenseKey, activationId: result.deviceId, expiresDay, features: bitmap });
  const signature = crypto.sign(null, message, loadPrivateKey(deps.dataDir, active.kid));
  // The secret only this answer delivers; the server keeps it to check deactivation codes.
  await deps.db('devices').where({ id: result.deviceId }).update({ airgap_secret: airgapSecret(signature) });
  return {
    code: encodeActivationCode({ activationId: result.deviceId, expiresDay, features: bitmap, signature }),
    deviceId: result.deviceId,
    productName: license.productName,
    licenseKey,
    expiresAt: license.expiresAt,
    seatsLeft: license.unlimitedActivations ? null : Math.max(0, license.maxActivations - license.timesActivated),
  };
}

/**
 * Deactivates from a license key and a deactivation code: the code's MAC must verify under the
 * activation's secret. Returns the confirmation code the device checks.
 */
export async function deactivateByCode(deps: ActivationDeps, actor: Actor, typedKey: string, code: string): Promise<{ confirmation: string; productName: string; repeated: boolean }> {
  const parsed = parseDeactivationInput(code);
  return audited(deps, actor, 'deactivation.refused', `activation-${parsed.activationId}`, () => deactivateParsed(deps, actor, typedKey, parsed));
}

async function deactivateParsed(deps: ActivationDeps, actor: Actor, typedKey: string, parsed: ReturnType<typeof parseDeactivationInput>) {
  const licenseKey = normaliseLicenseKey(typedKey);
  const license = await deps.db('licenses').where({ license_key: licenseKey }).first('id');
  if (!license) throw new ActivationError('license_unknown', 404);
  const device = await deps.db('devices').where({ id: parsed.activationId, license_id: license.id, channel: 'airgap' }).first('id', 'hardware_id');
  if (!device) throw new ActivationError('activation_unknown', 404);
  const result = await markRecorded(() => deactivate(deps, actor, {
    channel: 'airgap',
    licenseId: Number(license.id),
    activationId: parsed.activationId,
    hardwareId: String(device.hardware_id),
    nonce: `agd-${parsed.activationId}-${parsed.nonce}`,
    usage: [],
    proves: (d) => d.airgap_secret !== null && deactivationTagValid(d.airgap_secret, parsed.activationId, parsed.nonce, parsed.tag),
  }));
  const secret = Buffer.from((await deps.db('devices').where({ id: parsed.activationId }).first('airgap_secret')).airgap_secret as Uint8Array);
  return { confirmation: confirmationCode(secret, parsed.activationId, parsed.nonce), productName: result.license.productName, repeated: result.repeated };
}
