/**
 * Every refusal of an artifact is an EnvelopeError. Callers translate by `code` (stable); the
 * English `message` is for logs and for people reading a stack trace.
 */
export const ENVELOPE_ERROR_CODES = [
  'too_large', // input, envelope or payload exceeds its size limit
  'armor', // no (or more than one) -----BEGIN PORTICO …----- block, or its label contradicts the content
  'base64', // bad base64 / base64url, non-canonical encoding or wrong decoded length
  'json', // not UTF-8, not strict JSON, duplicate or forbidden keys, nested too deep
  'schema', // valid JSON but not the shape of an envelope (unknown, missing or mistyped field)
  'version', // an envelope version this code does not read
  'type', // unknown artifact type, or not the type the caller expected
  'kid_unknown', // signed by a key the verifier does not trust (unknown, retired, or the wrong kind)
  'signature', // the signature does not verify
  'key', // a key handed to sign or verify is not a usable Ed25519 key
] as const;

export type EnvelopeErrorCode = (typeof ENVELOPE_ERROR_CODES)[number];

export class EnvelopeError extends Error {
  readonly code: EnvelopeErrorCode;

  constructor(code: EnvelopeErrorCode, message: string) {
    super(message);
    this.name = 'EnvelopeError';
    this.code = code;
  }
}
