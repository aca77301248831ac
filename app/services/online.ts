import { AppError } from '../lib/errors.ts';
import * as devices from '../models/devices.ts';
import { inTransaction } from '../lib/transaction.ts';
import {
  activate,
  boundActivation,
  deactivate,
  requestActivationInput,
  deactivationReceipt,
  expireFloatingSlots,
  licenseFileOf,
  signedByRegisteredDevice,
  type ActivationDeps,
} from './activation.ts';
import { issueLicenseFile } from './license-files.ts';
import { redeemAndActivate } from './vouchers.ts';
import { ActivationError, recordRefusal } from './refusals.ts';
import { ArtifactError, readSignedRequest, type SignedRequest } from './requests.ts';
import type { Actor } from './context.ts';

/**
 * The License API's work: the same signed requests as the offline portal, sent by the application
 * itself, answered with the same signed envelopes. One activation service, one artifact path.
 */

/** A refusal of the API's own (a request that is missing, damaged or wrongly signed), with a stable code. */
export class ApiError extends AppError {
  constructor(code: string, status: number) {
    super(status === 401 ? 'refusal' : 'bad_request', code, status, `offline.refusals.${code}.why`);
  }
}

const API_CODES: Record<string, string> = {
  damaged: 'request_malformed',
  signature: 'signature_invalid',
  wrong_type: 'wrong_type',
  too_large: 'request_malformed',
};

/** A device-signed request of the License API, read and verified (a refusal recorded, then thrown as ApiError). */
export const readApiRequest = <T extends SignedRequest['typ']>(
  deps: ActivationDeps,
  actor: Actor,
  text: unknown,
  typ: T,
) => readRequest(deps, actor, text, typ);

async function readRequest<T extends SignedRequest['typ']>(
  deps: ActivationDeps,
  actor: Actor,
  text: unknown,
  typ: T,
): Promise<Extract<SignedRequest, { typ: T }>> {
  if (typeof text !== 'string' || !text.trim()) throw new ApiError('request_missing', 400);
  try {
    return (await readSignedRequest(deps, actor, 'online', text, [typ])) as Extract<SignedRequest, { typ: T }>;
  } catch (err) {
    if (err instanceof ArtifactError) throw new ApiError(API_CODES[err.code] ?? 'request_malformed', err.status);
    throw err;
  }
}

export async function activateOnline(
  deps: ActivationDeps,
  actor: Actor,
  requestText: unknown,
  credentials: { email: string; password: string } | null,
) {
  return activateRequest(deps, actor, requestText, credentials, false);
}

/** `redeem`: an activation request that carries a redeemable code; the answer is the new license's activation. */
export async function redeemOnline(
  deps: ActivationDeps,
  actor: Actor,
  requestText: unknown,
  credentials: { email: string; password: string } | null,
) {
  return activateRequest(deps, actor, requestText, credentials, true);
}

/** Activation, with the code a request carries redeemed first (services/vouchers.ts). */
async function activateRequest(
  deps: ActivationDeps,
  actor: Actor,
  requestText: unknown,
  credentials: { email: string; password: string } | null,
  needsVoucher: boolean,
) {
  const { payload } = await readRequest(deps, actor, requestText, 'activation-request');
  if (needsVoucher && !payload.voucher) throw new ApiError('voucher_missing', 400);
  const input = requestActivationInput('online', payload, String(requestText), credentials);
  if (!input) throw new ApiError('user_credentials', 401);
  const result = payload.voucher
    ? await redeemAndActivate(deps, actor, input, payload.voucher)
    : await activate(deps, actor, input);
  const file = await licenseFileOf(deps, result.license, result.device);
  return {
    activationId: result.device.id,
    repeated: result.repeated,
    licenseKey: result.license.licenseKey,
    license: file.text,
  };
}

/**
 * An online check: the device proves with its key that it holds the activation; the answer is a
 * refresh file with today's entitlements and the device's next counter, under the one validity
 * rule. A floating license's slot is held for another timeout; a borrowed device keeps its slot
 * until the borrow ends. Routine checks are not audited one by one; refused ones are.
 */
export async function checkOnline(deps: ActivationDeps, actor: Actor, requestText: unknown) {
  const { payload: p, requestHash } = await readRequest(deps, actor, requestText, 'check-request');
  try {
    return await inTransaction(deps.db, async (trx) => {
      const at = deps.clock.now();
      const bound = await boundActivation(trx, p, at);
      if (!bound) throw new ActivationError('activation_unknown', 404);
      const { license } = bound;
      let { device } = bound;
      // Only when stale floating slots were freed (this device's among them, perhaps) is anything read again.
      if (await expireFloatingSlots(trx, license, at)) device = (await devices.findById(trx, device.id))!;
      const holdsUntil =
        license.floating && license.floatingTimeoutMinutes
          ? new Date(at.getTime() + license.floatingTimeoutMinutes * 60_000)
          : null;
      // The counter and "seen now" (holding a floating slot) in one statement.
      const file = await issueLicenseFile(trx, deps, license, device, {
        typ: 'refresh',
        at,
        seen: { floatingExpiresAt: holdsUntil },
      });
      return {
        valid: true,
        license: file.text,
        leaseEndsAt: file.payload.leaseEndsAt,
        floatingExpiresAt: holdsUntil?.toISOString() ?? null,
      };
    });
  } catch (err) {
    if (err instanceof ActivationError)
      await recordRefusal(
        deps,
        actor,
        {
          action: 'check.refused',
          channel: 'online',
          requestHash,
          hardwareId: p.hardwareId,
          licenseId: err.code === 'activation_unknown' ? null : p.licenseId,
        },
        err.code,
      );
    throw err;
  }
}

/** Deactivation (and `release` of a floating slot): the same proof as offline, a signed receipt back. */
export async function deactivateOnline(deps: ActivationDeps, actor: Actor, requestText: unknown) {
  const { payload: p, requestHash } = await readRequest(deps, actor, requestText, 'deactivation-request');
  const result = await deactivate(deps, actor, {
    channel: 'online',
    licenseId: p.licenseId,
    activationId: p.activationId,
    hardwareId: p.hardwareId,
    nonce: p.nonce,
    requestHash,
    usage: p.usage,
    proves: signedByRegisteredDevice(p.devicePublicKey, p.hardwareId, p.activationNonce),
  });
  return { repeated: result.repeated, receipt: await deactivationReceipt(deps, result.device.id, p.nonce) };
}
