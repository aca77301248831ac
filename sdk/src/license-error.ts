import { EnvelopeError, type EnvelopeErrorCode } from './errors.ts';

/**
 * Every refusal of a license file, refresh file or deactivation receipt (and of a bad argument to
 * the request builders) is a LicenseError. Like EnvelopeError, callers translate by `code`; the
 * envelope's own codes (`signature`, `kid_unknown`, `type`, …) are passed through unchanged.
 */
export const LICENSE_ERROR_CODES = [
  'product', // made for another product
  'hardware', // bound to another hardware id
  'device_key', // bound to another device key
  'nonce', // the answer to another request
  'activation', // another license or activation than the one it should continue
  'not_yet_valid', // the license's start date has not come yet
  'expired', // the license has expired
  'lease_expired', // the offline lease ended: a refresh file (or a new activation) is needed
  'issued_in_future', // issued later than now (plus the allowed clock skew): the clock is wrong or the file forged
  'counter', // older than a file the device has installed for the same activation (a refresh must be newer), or of an activation it deactivated
  'input', // an argument handed to the SDK is not valid (not a property of any file)
] as const;

export type LicenseErrorCode = EnvelopeErrorCode | (typeof LICENSE_ERROR_CODES)[number];

export class LicenseError extends Error {
  readonly code: LicenseErrorCode;

  constructor(code: LicenseErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LicenseError';
    this.code = code;
  }
}

/** Runs `fn`, turning an EnvelopeError into a LicenseError with the same code and message. */
export function asLicenseError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof EnvelopeError) throw new LicenseError(err.code, err.message, { cause: err });
    throw err;
  }
}
