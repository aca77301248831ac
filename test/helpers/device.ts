import crypto from 'node:crypto';
import { signEnvelope, devicePublicKeyString } from '../../sdk/src/envelope.ts';

/** A device for tests that speaks the request formats directly (the SDK's own tests cover the SDK). */
export function makeDevice(hardwareId = `HW-${crypto.randomBytes(4).toString('hex')}`) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  const devicePublicKey = devicePublicKeyString(publicKey);
  return {
    hardwareId,
    privateKey,
    devicePublicKey,
    activationRequest(fields: {
      product: string;
      licenseKey?: string | null;
      user?: string | null;
      nonce?: string;
      devicePublicKey?: string;
      /** A redeemable code (only set in the payload when given, as the SDK does). */
      voucher?: string;
    }) {
      const nonce = fields.nonce ?? crypto.randomBytes(16).toString('base64url');
      const payload = {
        v: 1,
        product: fields.product,
        licenseKey: fields.licenseKey ?? null,
        user: fields.user ?? null,
        hardwareId,
        hostname: `${hardwareId.toLowerCase()}.example`,
        os: 'TestOS 1',
        appVersion: '1.0.0',
        devicePublicKey: fields.devicePublicKey ?? devicePublicKey,
        nonce,
        createdAt: new Date().toISOString(),
        ...(fields.voucher ? { voucher: fields.voucher } : {}),
      };
      return { text: signEnvelope('activation-request', 'device', payload, privateKey), nonce };
    },
    checkRequest(license: { product: string; licenseId: number; activationId: number }) {
      const payload = {
        v: 1,
        product: license.product,
        licenseId: license.licenseId,
        activationId: license.activationId,
        hardwareId,
        devicePublicKey,
        nonce: crypto.randomBytes(16).toString('base64url'),
        createdAt: new Date().toISOString(),
      };
      return signEnvelope('check-request', 'device', payload, privateKey);
    },
    consumptionRequest(
      license: { product: string; licenseId: number; activationId: number },
      feature: string,
      amount: number,
      nonce = crypto.randomBytes(16).toString('base64url'),
    ) {
      const payload = {
        v: 1,
        product: license.product,
        licenseId: license.licenseId,
        activationId: license.activationId,
        hardwareId,
        devicePublicKey,
        nonce,
        createdAt: new Date().toISOString(),
        feature,
        amount,
      };
      return { text: signEnvelope('consumption-request', 'device', payload, privateKey), nonce };
    },
    /** A usage report of `entries` as given (the tests make good and bad chains with the SDK's usage.ts). */
    usageReport(
      license: { product: string; licenseId: number; activationId: number; requestNonce: string },
      entries: object[],
      licenseCounter = 0,
      nonce = crypto.randomBytes(16).toString('base64url'),
    ) {
      const payload = {
        v: 1,
        product: license.product,
        licenseId: license.licenseId,
        activationId: license.activationId,
        hardwareId,
        devicePublicKey,
        activationNonce: license.requestNonce,
        nonce,
        createdAt: new Date().toISOString(),
        licenseCounter,
        entries,
      };
      return signEnvelope('usage-report', 'device', payload, privateKey);
    },
    deactivationRequest(
      license: { product: string; licenseId: number; activationId: number; requestNonce: string },
      usage: { feature: string; amount: number }[] = [],
      nonce = crypto.randomBytes(16).toString('base64url'),
    ) {
      const payload = {
        v: 1,
        product: license.product,
        licenseId: license.licenseId,
        activationId: license.activationId,
        hardwareId,
        devicePublicKey,
        activationNonce: license.requestNonce,
        nonce,
        createdAt: new Date().toISOString(),
        usage,
      };
      return { text: signEnvelope('deactivation-request', 'device', payload, privateKey), nonce };
    },
  };
}
