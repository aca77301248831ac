import crypto from 'node:crypto';

/** Crockford's base32: no I, L, O or U, so a key read aloud or typed is hard to get wrong. */
export const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

const KEY_SYMBOLS = 28; // 28 × 5 bits = 140 bits of randomness (SPEC: ≥ 128)

/** A new license key such as 7KQ2-MX4P-…: 7 groups of 4 symbols. */
export function generateLicenseKey(): string {
  const bytes = crypto.randomBytes(KEY_SYMBOLS);
  let symbols = '';
  for (const b of bytes) symbols += CROCKFORD[b & 31]; // 256 is a multiple of 32: every symbol equally likely
  return symbols.match(/.{4}/g)!.join('-');
}

/** Normalises what a person typed: case, spaces and dashes do not matter; I/L read as 1 and O as 0. */
export function normaliseLicenseKey(input: string): string {
  const symbols = input.toUpperCase().replace(/[\s-]/g, '').replace(/[IL]/g, '1').replace(/O/g, '0');
  return symbols.match(/.{1,4}/g)?.join('-') ?? '';
}
