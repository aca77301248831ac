import crypto from 'node:crypto';
import { DEVICE_KID, signEnvelope, verifyEnvelope, type KeyInput } from './envelope.ts';
import type { DeviceKey } from './device.ts';
import { LicenseError, asLicenseError } from './license-error.ts';
import {
  PAYLOAD_VERSION,
  checkOutgoing,
  checkUsage,
  readActivationRequestPayload,
  readCheckRequestPayload,
  readDeactivationReceiptPayload,
  readDeactivationRequestPayload,
  type ActivationBinding,
  type ActivationRequestPayload,
  type CheckRequestPayload,
  type DeactivationReceiptPayload,
  type DeactivationRequestPayload,
  type LicensePayload,
  type UsageEntry,
} from './payloads.ts';

/** Request files the device signs with its key, and the receipt that answers a deactivation. */

export interface CreatedRequest<P> {
  /** The armoured request file. */
  text: string;
  /** Its nonce: keep it to check the answer (license file or receipt) against. */
  nonce: string;
  payload: P;
}

export interface ActivationRequestInput {
  product: string;
  /**
   * Exactly one of licenseKey (key-based licenses) and user (user-based: the portal asks for the
   * password); with a voucher (a redeemable code) no licenseKey, and user only for a user-based product.
   */
  licenseKey?: string | null;
  user?: string | null;
  voucher?: string | null;
  hardwareId: string;
  deviceKey: DeviceKey;
  hostname?: string | null;
  os?: string | null;
  appVersion?: string | null;
  now?: Date;
}

/** A new nonce: 16 random bytes, base64url. */
export function newNonce(): string {
  return crypto.randomBytes(16).toString('base64url');
}

/** The license fields every device-signed request after activation names. */
export type BindingReference = Pick<
  LicensePayload,
  'product' | 'licenseId' | 'activationId' | 'hardwareId' | 'devicePublicKey'
>;

/**
 * The activation and device a request speaks for, with a fresh nonce and its time (the payloads'
 * ActivationBinding). The device key must be the one the license is bound to: the signature proves
 * this device holds the activation.
 */
export function activationBinding(license: BindingReference, deviceKey: DeviceKey, now?: Date): ActivationBinding {
  if (deviceKey.publicKeyString !== license.devicePublicKey)
    throw new LicenseError('device_key', 'this device key is not the one the license is bound to');
  return {
    v: PAYLOAD_VERSION,
    product: license.product,
    licenseId: license.licenseId,
    activationId: license.activationId,
    hardwareId: license.hardwareId,
    devicePublicKey: license.devicePublicKey,
    nonce: newNonce(),
    createdAt: (now ?? new Date()).toISOString(),
  };
}

/** An activation request (device-signed); a bad argument is LicenseError 'input'. */
export function createActivationRequest(input: ActivationRequestInput): CreatedRequest<ActivationRequestPayload> {
  const payload = checkOutgoing(readActivationRequestPayload, {
    v: PAYLOAD_VERSION,
    product: input.product,
    licenseKey: optionalText(input.licenseKey),
    user: optionalText(input.user),
    hardwareId: input.hardwareId,
    hostname: optionalText(input.hostname),
    os: optionalText(input.os),
    appVersion: optionalText(input.appVersion),
    devicePublicKey: input.deviceKey.publicKeyString,
    nonce: newNonce(),
    createdAt: (input.now ?? new Date()).toISOString(),
    ...(optionalText(input.voucher) ? { voucher: optionalText(input.voucher) } : {}),
  });
  return {
    text: signAsDevice('activation-request', payload, input.deviceKey.privateKey),
    nonce: payload.nonce,
    payload,
  };
}

/** The license fields a deactivation request names. */
export type LicenseReference = Pick<
  LicensePayload,
  'product' | 'licenseId' | 'activationId' | 'hardwareId' | 'devicePublicKey' | 'requestNonce' | 'features'
>;

export interface DeactivationRequestInput {
  license: LicenseReference;
  /** Must be the key the license is bound to. */
  deviceKey: DeviceKey;
  /** Consumption to report, each feature of the license at most once. */
  usage?: readonly UsageEntry[];
  now?: Date;
}

/** A deactivation request (device-signed) giving `license` back; a bad argument is LicenseError 'input'. */
export function createDeactivationRequest(input: DeactivationRequestInput): CreatedRequest<DeactivationRequestPayload> {
  const { license, deviceKey } = input;
  const usage = checkOutgoing(() => checkUsage(input.usage ?? []), {});
  const known = new Set(license.features.map((f) => f.code));
  for (const { feature } of usage) {
    if (!known.has(feature))
      throw new LicenseError('input', `the license has no feature "${feature}" to report usage for`);
  }
  const payload = checkOutgoing(readDeactivationRequestPayload, {
    ...activationBinding(license, deviceKey, input.now),
    activationNonce: license.requestNonce,
    usage: usage.map(({ feature, amount }) => ({ feature, amount })),
  });
  return { text: signAsDevice('deactivation-request', payload, deviceKey.privateKey), nonce: payload.nonce, payload };
}

/** The license fields a check request names. */
export type CheckReference = BindingReference;

export interface CheckRequestInput {
  /** The installed license (a LicenseInfo will do). */
  license: CheckReference;
  /** Must be the key the license is bound to: the signature proves this device holds the activation. */
  deviceKey: DeviceKey;
  now?: Date;
}

/**
 * A check request (device-signed) for the License API's `check`: proves this device still holds
 * the activation; the answer is a refresh file. A bad argument is LicenseError 'input'.
 */
export function createCheckRequest(input: CheckRequestInput): CreatedRequest<CheckRequestPayload> {
  const { license, deviceKey } = input;
  const payload = checkOutgoing(readCheckRequestPayload, {
    ...activationBinding(license, deviceKey, input.now),
  });
  return { text: signAsDevice('check-request', payload, deviceKey.privateKey), nonce: payload.nonce, payload };
}

export interface VerifyReceiptOptions {
  trustedKeys: ReadonlyMap<string, KeyInput>;
  /** The license that was given back. */
  license: Pick<LicensePayload, 'licenseId' | 'activationId' | 'hardwareId'>;
  /** The nonce of the deactivation request. */
  nonce: string;
}

export interface DeactivationReceipt extends DeactivationReceiptPayload {
  kid: string;
}

/**
 * Verifies the server's receipt for a deactivation request: signed by a trusted key, for that
 * license, activation and hardware id, answering that very request.
 */
export function verifyDeactivationReceipt(
  text: string | Uint8Array,
  options: VerifyReceiptOptions,
): DeactivationReceipt {
  const envelope = asLicenseError(() =>
    verifyEnvelope(text, { expectedType: 'deactivation-receipt', trustedKeys: options.trustedKeys }),
  );
  const receipt = readDeactivationReceiptPayload(envelope.payload);
  const { license } = options;
  if (receipt.licenseId !== license.licenseId || receipt.activationId !== license.activationId) {
    throw new LicenseError(
      'activation',
      `the receipt is for license ${receipt.licenseId}, activation ${receipt.activationId}, not for license ${license.licenseId}, activation ${license.activationId}`,
    );
  }
  if (receipt.hardwareId !== license.hardwareId)
    throw new LicenseError('hardware', 'the receipt is for another machine');
  if (receipt.deactivationNonce !== options.nonce)
    throw new LicenseError('nonce', 'the receipt answers another deactivation request than the last one made here');
  return { ...receipt, kid: envelope.kid };
}

function signAsDevice(
  typ: 'activation-request' | 'deactivation-request' | 'check-request',
  payload: object,
  privateKey: KeyInput,
): string {
  return asLicenseError(() => signEnvelope(typ, DEVICE_KID, payload, privateKey));
}

function optionalText(value: string | null | undefined): string | null {
  const trimmed = value?.trim();
  return trimmed ? trimmed : null;
}
