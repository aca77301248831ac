/** @portico/sdk — the public API. */
export { EnvelopeError, ENVELOPE_ERROR_CODES, type EnvelopeErrorCode } from './errors.ts';
export type { JsonObject, JsonValue } from './json.ts';
export {
  ENVELOPE_VERSION,
  ENVELOPE_ALG,
  ENVELOPE_TYPES,
  ENVELOPE_LIMITS,
  DEVICE_KID,
  SIGNING_DOMAIN,
  isEnvelopeType,
  armorLabel,
  signingInput,
  encodeEnvelope,
  decodeEnvelope,
  signEnvelope,
  verifyEnvelope,
  verifyDeviceSigned,
  devicePublicKeyString,
  devicePublicKeyFromString,
  type EnvelopeType,
  type KeyInput,
  type DecodedEnvelope,
  type VerifiedEnvelope,
  type VerifyOptions,
} from './envelope.ts';
