import crypto from 'node:crypto';
import { CODE_ALPHABET, normaliseLicenseKey } from '../../sdk/src/codes.ts';

/**
 * License keys use Crockford's base32 (no I, L, O or U) so a key read aloud or typed is hard to get
 * wrong. The reading rules (case, spaces, dashes, I/L → 1, O → 0) are the SDK's: one implementation.
 */
export const CROCKFORD = CODE_ALPHABET;
export { normaliseLicenseKey };

const KEY_SYMBOLS = 28; // 28 × 5 bits = 140 bits of randomness (at least 128 wanted)

/** The shape of a whole generated key (a lookup by a whole key is an equality, not a prefix search). */
export const WHOLE_LICENSE_KEY = /^[0-9A-Z]{4}(-[0-9A-Z]{4}){6}$/;

/** A new license key such as 7KQ2-MX4P-…: 7 groups of 4 symbols. */
export function generateLicenseKey(): string {
  const bytes = crypto.randomBytes(KEY_SYMBOLS);
  let symbols = '';
  for (const b of bytes) symbols += CROCKFORD[b & 31]; // 256 is a multiple of 32: every symbol equally likely
  return symbols.match(/.{4}/g)!.join('-');
}
