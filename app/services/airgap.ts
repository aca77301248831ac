import crypto from 'node:crypto';
import type { Knex } from 'knex';
import {
  airgapCommitment,
  confirmationCode,
  legacyConfirmationCode,
  legacyDeactivationTagValid,
  parseAirgapRequest,
  parseDeactivationCode,
  productHash,
  type ParsedDeactivationCode,
} from '../../sdk/src/airgap.ts';
import { CodeError, normaliseCodeText } from '../../sdk/src/codes.ts';
import { AppError } from '../lib/errors.ts';
import * as devices from '../models/devices.ts';
import * as licenses from '../models/licenses.ts';
import * as products from '../models/products.ts';
import { normaliseLicenseKey } from '../lib/license-keys.ts';
import {
  activate,
  deactivate,
  type ActivationDeps,
  type ActivationInput,
  type ActivationResult,
} from './activation.ts';
import { airgapActivationCode } from './license-files.ts';
import { ActivationError, recordRefusal } from './refusals.ts';
import { redeemAndActivate } from './vouchers.ts';
import type { Actor } from './context.ts';

/**
 * The Air-Gapped Activation Portal's work between typed codes and the one activation service.
 * Codes are made and read by the SDK (sdk/src/airgap.ts); the server adds its signer and the
 * database. docs/file-formats.md describes every bit and the threat model.
 *
 * Version 2: the request code commits to a secret S that only the device holds; the activation
 * stores that commitment with the device in the activation's own transaction; a deactivation code
 * reveals S, which nothing the portal ever showed lets anyone compute. Version 1 activations (made
 * before) have a secret derived from their activation code: their deactivation codes are accepted
 * only while the vendor allows it (Settings), and the console lists them.
 */

/**
 * A typed code that failed its check symbols or has a character too many, too few or out of the
 * alphabet: a typo, not an attempt (it never counts). A validation error of the code's field.
 */
export class TypoError extends AppError {
  constructor(field: string, group: number | null) {
    super('validation', 'typo', 422, 'validation.summary', {
      fieldErrors: { [field]: group ? 'airgap.typoGroup' : 'airgap.typo' },
      vars: { group },
    });
  }
}

function readCode<T>(field: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof CodeError) {
      if (err.code === 'typo' || (err.code === 'format' && err.group !== undefined && err.actualKind === undefined))
        throw new TypoError(field, err.group ?? null);
      if (err.code === 'outdated') throw new ActivationError('code_outdated', 422);
      throw new ActivationError('code_malformed', 422);
    }
    throw err;
  }
}

/** Checks the codes' form first, so typos are reported before anything is counted or audited. */
export function parseActivationInput(requestCode: string, now?: Date) {
  return readCode('request_code', () => parseAirgapRequest(requestCode, now));
}

export function parseDeactivationInput(code: string): ParsedDeactivationCode {
  return readCode('deactivation_code', () => parseDeactivationCode(code));
}

async function productFor(db: Knex, hash: number) {
  return (await products.listActive(db)).find((p) => productHash(p.code) === hash);
}

const codeHash = (code: string) => crypto.createHash('sha256').update(normaliseCodeText(code)).digest('hex');
const airgapHardwareId = (hardwareHash: string) => `ag-${hardwareHash}`;

/** Refusals found before the activation service runs are recorded like its own. */
async function recorded<T>(
  deps: ActivationDeps,
  actor: Actor,
  action: 'activation.refused' | 'deactivation.refused',
  requestHash: string,
  hardwareId: string,
  run: () => Promise<T>,
): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof ActivationError && !(err as { recorded?: boolean }).recorded)
      await recordRefusal(deps, actor, { action, channel: 'airgap', requestHash, hardwareId }, err.code);
    throw err;
  }
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
 * must be air-gapped), the commitment stored with the device in the same transaction, then the
 * signed activation code bound to the request. The same request code again answers with the same
 * code while the activation lasts.
 */
export async function activateByCode(
  deps: ActivationDeps,
  actor: Actor,
  typedKey: string,
  requestCode: string,
): Promise<AirgapActivation> {
  const licenseKey = normaliseLicenseKey(typedKey);
  return activateFor(deps, actor, requestCode, licenseKey, (input) => activate(deps, actor, { ...input, licenseKey }));
}

/**
 * Redeems a code and activates the license it becomes from a request code: THE redemption of every
 * device channel (vouchers.ts, redeemAndActivate) with channel `airgap`, so a non-air-gapped policy,
 * a user-based product (the portal is anonymous) and a code for another product are refused before
 * the code is spent. The same request code with the same code again answers the same activation
 * code (and license key); any other code with it is refused.
 */
export async function redeemByCode(
  deps: ActivationDeps,
  actor: Actor,
  voucherCode: string,
  requestCode: string,
): Promise<AirgapActivation> {
  return activateFor(deps, actor, requestCode, null, (input) => redeemAndActivate(deps, actor, input, voucherCode));
}

/**
 * The request code's checks, the activation (by key or by code) with its commitment, and the signed
 * answer. A request code is no secret (it is on the machine's screen): the same one typed again
 * answers only with the key (`typedKey`) or code it was answered with, never another license's key.
 */
async function activateFor(
  deps: ActivationDeps,
  actor: Actor,
  requestCode: string,
  typedKey: string | null,
  run: (input: ActivationInput) => Promise<ActivationResult>,
): Promise<AirgapActivation> {
  const at = deps.clock.now();
  const request = parseActivationInput(requestCode, at);
  const requestHash = codeHash(requestCode);
  const hardwareId = airgapHardwareId(request.hardwareHash);
  return recorded(deps, actor, 'activation.refused', requestHash, hardwareId, async () => {
    const settings = await deps.settings();
    // The code carries the hour it was made in: allow that hour on top of the lifetime.
    const age = at.getTime() - request.issuedAt.getTime();
    if (age > settings.airgapCodeMinutes * 60_000 + 3600_000 || age < -3600_000)
      throw new ActivationError('code_expired', 422);
    const product = await productFor(deps.db, request.productHash);
    if (!product) throw new ActivationError('product_unknown', 404);
    const result = await markRecorded(() =>
      run({
        channel: 'airgap',
        productCode: product.code,
        licenseKey: null,
        user: null,
        hardwareId,
        devicePublicKey: null,
        nonce: `aga-${request.hardwareHash}-${request.commitment}`,
        requestHash,
        hostname: null,
        os: null,
        appVersion: null,
        airgapCommitment: request.commitment,
      }),
    );
    const { license, device } = result;
    // A repeat of another key's activation changed nothing: refused without showing that key.
    if (typedKey !== null && license.licenseKey !== typedKey) throw new ActivationError('nonce_reused');
    return {
      code: await airgapActivationCode(deps.db, deps, license, device, request, at),
      deviceId: device.id,
      productName: license.productName,
      licenseKey: license.licenseKey!,
      expiresAt: license.expiresAt,
      seatsLeft: license.unlimitedActivations ? null : Math.max(0, license.maxActivations - license.timesActivated),
    };
  });
}

/** Constant-time comparison of two hex strings of the same length. */
function sameHex(a: string, b: string): boolean {
  return a.length === b.length && crypto.timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
}

/**
 * Deactivates from a license key and a deactivation code. Version 2: the code reveals the secret
 * whose commitment the activation stored; version 1: a MAC under the activation's old secret,
 * accepted only while the vendor allows it. Returns the confirmation code the device checks.
 */
export async function deactivateByCode(
  deps: ActivationDeps,
  actor: Actor,
  typedKey: string,
  code: string,
): Promise<{ confirmation: string; productName: string; repeated: boolean }> {
  const parsed = parseDeactivationInput(code);
  const requestHash = codeHash(code);
  return recorded(
    deps,
    actor,
    'deactivation.refused',
    requestHash,
    parsed.version === 2 ? airgapHardwareId(parsed.hardwareHash) : `activation-${parsed.activationId}`,
    async () => {
      const licenseId = await licenses.idByKey(deps.db, normaliseLicenseKey(typedKey));
      const license = licenseId ? await licenses.findById(deps.db, licenseId, deps.clock.now()) : undefined;
      if (!licenseId || !license) throw new ActivationError('license_unknown', 404);
      // Found here to name it; the activation service reads it again under the license lock.
      const device =
        parsed.version === 2
          ? await devices.findLatest(deps.db, licenseId, airgapHardwareId(parsed.hardwareHash))
          : await devices.findForLicense(deps.db, licenseId, parsed.activationId);
      if (device?.channel !== 'airgap') throw new ActivationError('activation_unknown', 404);
      if (parsed.version === 1 && !(await deps.settings()).acceptLegacyAirgapDeactivation)
        throw new ActivationError('legacy_deactivation_refused', 403);
      const proves =
        parsed.version === 2
          ? (d: devices.Device) =>
              d.airgapCommitment !== null &&
              sameHex(
                d.airgapCommitment,
                airgapCommitment({
                  productHash: productHash(license.productCode),
                  hardwareHash: parsed.hardwareHash,
                  secret: parsed.secret,
                }),
              )
          : (d: devices.Device) =>
              d.airgapCommitment === null &&
              d.airgapSecret !== null &&
              legacyDeactivationTagValid(d.airgapSecret, parsed.activationId, parsed.nonce, parsed.tag);
      const result = await markRecorded(() =>
        deactivate(deps, actor, {
          channel: 'airgap',
          licenseId,
          activationId: device.id,
          hardwareId: device.hardwareId,
          nonce: parsed.version === 2 ? `agd-${device.id}` : `agd-${parsed.activationId}-${parsed.nonce}`,
          requestHash,
          usage: [],
          proves,
        }),
      );
      const confirmation =
        parsed.version === 2
          ? confirmationCode({ secret: parsed.secret, hardwareHash: parsed.hardwareHash })
          : legacyConfirmationCode(device.airgapSecret!, parsed.activationId, parsed.nonce);
      return { confirmation, productName: result.license.productName, repeated: result.repeated };
    },
  );
}
