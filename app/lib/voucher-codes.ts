import crypto from 'node:crypto';
import { CODE_ALPHABET, normaliseCodeText } from '../../sdk/src/codes.ts';

/**
 * Redeemable codes: 20 Crockford base32 symbols (100 random bits) shown as XXXXX-XXXXX-XXXXX-XXXXX.
 * Input is read with the license keys' rules (case, spaces and dashes ignored, I/L → 1, O → 0). A
 * code is stored only as the SHA-256 of its canonical form: with 100 bits of entropy nobody can
 * search the space, so a slow password hash would add nothing but cost (docs/decisions.md).
 */

export const VOUCHER_SYMBOLS = 20;
const CANONICAL = new RegExp(`^[${CODE_ALPHABET}]{${VOUCHER_SYMBOLS}}$`);

export function generateVoucherCode(): string {
  const bytes = crypto.randomBytes(VOUCHER_SYMBOLS);
  let symbols = '';
  for (const b of bytes) symbols += CODE_ALPHABET[b & 31]; // 256 is a multiple of 32: every symbol equally likely
  return symbols.match(/.{5}/g)!.join('-');
}

/** The canonical form of what someone typed (20 symbols, no dashes), or null when it cannot be a code. */
export function canonicalVoucherCode(input: string): string | null {
  if (typeof input !== 'string' || input.length > 64) return null;
  const canonical = normaliseCodeText(input);
  return CANONICAL.test(canonical) ? canonical : null;
}

export const voucherHash = (canonical: string) => crypto.createHash('sha256').update(canonical).digest('hex');

/** The last four symbols: enough for a person to match a row of the list to a code on paper. */
export const voucherHint = (canonical: string) => canonical.slice(-4);
