import crypto from 'node:crypto';
import { generateSecret, generateURI, verify } from 'otplib';
import { CROCKFORD, normaliseLicenseKey } from './license-keys.ts';

/** The authenticator-app defaults (SHA-1, 6 digits, 30 s): what every app understands. */
export const TOTP_PERIOD_SECONDS = 30;

/** A new shared secret: 20 random bytes (160 bits, RFC 4226's recommendation) in base32. */
export function newTotpSecret(): string {
  return generateSecret({ length: 20 });
}

/** The secret in groups of four for typing it into an app by hand. */
export function groupSecret(secret: string): string {
  return secret.match(/.{1,4}/g)?.join(' ') ?? secret;
}

/** The otpauth:// URI an authenticator app scans. A colon would end the issuer inside the label. */
export function totpUri(issuer: string, label: string, secret: string): string {
  return generateURI({ issuer: issuer.replace(/:/g, ' ').trim() || 'Portico', label, secret });
}

/** The URI as a QR code image (SVG in a data: URL: the CSP allows data: images, not inline SVG styles). */
export async function qrCodeDataUrl(text: string): Promise<string> {
  const { default: QRCode } = await import('qrcode'); // loaded when first used, not at start-up
  const svg = await QRCode.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  return `data:image/svg+xml;base64,${Buffer.from(svg, 'utf8').toString('base64')}`;
}

/**
 * The time step at which `code` is valid for `secret` at `now`, also accepting the previous and the
 * next step for clock skew; null when it is not valid. The caller refuses steps already used.
 */
export async function matchTotp(secret: string, code: string, now: Date): Promise<number | null> {
  const token = code.replace(/\s/g, '');
  if (!/^\d{6}$/.test(token)) return null;
  const result = await verify({
    secret,
    token,
    epoch: Math.floor(now.getTime() / 1000),
    epochTolerance: TOTP_PERIOD_SECONDS,
  });
  return result.valid && 'timeStep' in result ? result.timeStep : null;
}

export const RECOVERY_CODE_COUNT = 10;
const RECOVERY_CODE_SYMBOLS = 16; // 16 × 5 bits = 80 bits: a stored SHA-256 cannot be searched back

/** Fresh one-time recovery codes such as 7KQ2-MX4P-0A9C-ZT3H (Crockford base32, as license keys). */
export function newRecoveryCodes(count = RECOVERY_CODE_COUNT): string[] {
  return Array.from({ length: count }, () => {
    let symbols = '';
    for (const b of crypto.randomBytes(RECOVERY_CODE_SYMBOLS)) symbols += CROCKFORD[b & 31];
    return normaliseRecoveryCode(symbols);
  });
}

/** What a person typed, in the stored form: case, spaces and dashes do not matter; I/L read as 1, O as 0. */
export function normaliseRecoveryCode(input: string): string {
  return normaliseLicenseKey(input);
}

export function looksLikeRecoveryCode(input: string): boolean {
  return normaliseRecoveryCode(input).replace(/-/g, '').length === RECOVERY_CODE_SYMBOLS;
}
