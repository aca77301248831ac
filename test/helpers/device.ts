import crypto from 'node:crypto';
import { signEnvelope, devicePublicKeyString } from '../../sdk/src/envelope.ts';

/** The activation a request is about: what the device read from its license file. */
type Activation = { product: string; licenseId: number; activationId: number };

const newNonce = () => crypto.randomBytes(16).toString('base64url');

/** A device for tests that speaks the request formats directly (the SDK's own tests cover the SDK). */
export function makeDevice(hardwareId = `HW-${crypto.randomBytes(4).toString('hex')}`) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  const devicePublicKey = devicePublicKeyString(publicKey);
  /** The fields of every request about an activation: the license, this device, a nonce and the time. */
  const bound = (license: Activation, nonce: string) => ({
    v: 1,
    product: license.product,
    licenseId: license.licenseId,
    activationId: license.activationId,
    hardwareId,
    devicePublicKey,
    nonce,
    createdAt: new Date().toISOString(),
  });
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
      const nonce = fields.nonce ?? newNonce();
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
    checkRequest(license: Activation) {
      return signEnvelope('check-request', 'device', bound(license, newNonce()), privateKey);
    },
    consumptionRequest(license: Activation, feature: string, amount: number, nonce = newNonce()) {
      const payload = { ...bound(license, nonce), feature, amount };
      return { text: signEnvelope('consumption-request', 'device', payload, privateKey), nonce };
    },
    /** A usage report of `entries` as given (the tests make good and bad chains with the SDK's usage.ts). */
    usageReport(
      license: Activation & { requestNonce: string },
      entries: object[],
      licenseCounter = 0,
      nonce = newNonce(),
    ) {
      const payload = { ...bound(license, nonce), activationNonce: license.requestNonce, licenseCounter, entries };
      return signEnvelope('usage-report', 'device', payload, privateKey);
    },
    deactivationRequest(
      license: Activation & { requestNonce: string },
      usage: { feature: string; amount: number }[] = [],
      nonce = newNonce(),
    ) {
      const payload = { ...bound(license, nonce), activationNonce: license.requestNonce, usage };
      return { text: signEnvelope('deactivation-request', 'device', payload, privateKey), nonce };
    },
  };
}
