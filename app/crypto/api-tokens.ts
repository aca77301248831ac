import crypto from 'node:crypto';

/**
 * The Management API's bearer tokens (docs/decisions.md, "Management API"): a recognisable prefix
 * (so secret scanners find leaked ones), 30 random base62 characters (≈ 178 bits) and a 6-character
 * checksum of both, so a mistyped or truncated token is refused before any database lookup.
 */
export const TOKEN_PREFIXES = { client: 'portico_ak_', personal: 'portico_pat_' } as const;
export type TokenKind = keyof typeof TOKEN_PREFIXES;

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const RANDOM_LENGTH = 30;
const CHECKSUM_LENGTH = 6;
const SHAPE = /^(portico_ak_|portico_pat_)([0-9A-Za-z]{30})([0-9A-Za-z]{6})$/;

function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    // Rejection sampling: bytes of 248 and above would bias the first characters.
    for (const byte of crypto.randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += ALPHABET[byte % 62];
    }
  }
  return out;
}

function checksum(body: string): string {
  const digest = crypto.createHash('sha256').update(body, 'utf8').digest();
  let n = digest.readUIntBE(0, 6);
  let out = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out += ALPHABET[n % 62];
    n = Math.floor(n / 62);
  }
  return out;
}

export function generateApiToken(kind: TokenKind): string {
  const body = TOKEN_PREFIXES[kind] + randomBase62(RANDOM_LENGTH);
  return body + checksum(body);
}

/** The token's kind when it has the right shape and checksum; null otherwise (no lookup needed). */
export function parseApiToken(token: string): TokenKind | null {
  const m = SHAPE.exec(token);
  if (!m || checksum(m[1]! + m[2]!) !== m[3]) return null;
  return m[1] === TOKEN_PREFIXES.client ? 'client' : 'personal';
}

/** Stored and looked up by its SHA-256 only. */
export function hashApiToken(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('hex');
}

/** What lists and audit rows show of a token: its prefix and the first four random characters. */
export function displayPrefix(token: string): string {
  const kind = token.startsWith(TOKEN_PREFIXES.client) ? TOKEN_PREFIXES.client : TOKEN_PREFIXES.personal;
  return token.slice(0, kind.length + 4);
}
