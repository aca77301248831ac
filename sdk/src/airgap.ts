import crypto, { type KeyObject } from 'node:crypto';
import {
  CODE_KINDS,
  CodeError,
  codeLayout,
  decodeCode,
  decodeCodeOf,
  encodeCode,
  normaliseCodeText,
  normaliseLicenseKey,
  type CodeErrorCode,
  type CodeKind,
} from './codes.ts';
import type { KeyInput } from './envelope.ts';
import { CODE_PATTERN, HARDWARE_ID_PATTERN } from './payloads.ts';

/**
 * Air-gapped activation (docs/file-formats.md, "Air-gap codes"): four short codes a person carries
 * between the machine and the portal. The device makes the request and deactivation codes and
 * checks the activation and confirmation codes; the server does the reverse with these same
 * functions, adding only its private key and the database.
 *
 * Every code is a fixed bit layout (big-endian) written with codes.ts; the bit counts are below.
 *
 * Version 2 binds each activation to a secret S that only the device ever knew: the request code
 * carries a commitment to it (a hash), the deactivation code reveals it. Everything the portal
 * shows (activation code, its QR code and download) is derived from public values, so seeing it
 * does not let anyone make a deactivation code. Version 1 derived its secret from the activation
 * code's signature, which the portal shows; its deactivation and confirmation codes are still made
 * and read for activations made before version 2 (the `legacy…` functions).
 */

export const AIRGAP_DOMAIN = 'PORTICO-AIRGAP-V2';
export const AIRGAP_VERSION = 2;

export const AIRGAP_BITS = {
  request: 4 + 20 + 40 + 80 + 16, // 160
  activation: 2 + 16 + 8 + 512, // 538
  deactivation: 2 + 40 + 80, // 122
  confirmation: 64,
} as const satisfies Record<CodeKind, number>;

/** Version 1 layouts, told apart from version 2 by their length; a v1 confirmation code has the v2 layout. */
export const AIRGAP_LEGACY_BITS = {
  request: 4 + 20 + 40 + 48 + 16, // 128
  activation: 2 + 28 + 16 + 8 + 512, // 566
  deactivation: 2 + 28 + 24 + 80, // 134
} as const satisfies Partial<Record<CodeKind, number>>;

/** Symbols shown per version 2 code, check symbols included, hyphens not: request 40, activation 135, deactivation 32, confirmation 17. */
export const AIRGAP_CODE_LENGTHS: Readonly<Record<CodeKind, number>> = Object.fromEntries(
  CODE_KINDS.map((kind) => [kind, codeLayout(AIRGAP_BITS[kind]).symbols]),
) as Record<CodeKind, number>;

/** The request's hour counts from here (16 bits: about 7.5 years, then it wraps). */
export const AIRGAP_HOUR_EPOCH = Date.UTC(2026, 0, 1);
/** An activation code's expiry counts days from here (0 = never expires). */
export const AIRGAP_DAY_EPOCH = Date.UTC(2020, 0, 1);
/** Version 1 codes name the activation (28 bits). */
export const AIRGAP_MAX_ACTIVATION_ID = 2 ** 28 - 1;
export const AIRGAP_MAX_FEATURES = 8;

const LEGACY_DOMAIN = 'PORTICO-AIRGAP-V1';
const LEGACY_SECRET_DOMAIN = 'PORTICO-AIRGAP-SECRET';
const LEGACY_VERSION = 1;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const SIGNATURE_BYTES = 64;
const SECRET_BYTES = 10;
const HEX6 = /^[0-9a-f]{6}$/;
const HEX10 = /^[0-9a-f]{10}$/;
const HEX12 = /^[0-9a-f]{12}$/;
const HEX20 = /^[0-9a-f]{20}$/;

export type AirgapErrorCode = CodeErrorCode | 'signature' | 'expired' | 'input' | 'outdated';

/**
 * Every refusal by the air-gap functions. A CodeError, so `typo` (with `group`) and `format` are
 * caught alike from decodeCode and from here; `signature`: not signed by a trusted key for this
 * request, license key and machine; `expired`: the license in the code has expired; `input`: an
 * argument handed to the SDK is not valid; `outdated`: a well-formed code of version 1 where only
 * version 2 is made (a request code of an old application, an activation code answering one).
 */
export class AirgapError extends CodeError<AirgapErrorCode> {
  constructor(
    code: AirgapErrorCode,
    message: string,
    details: { group?: number; actualKind?: CodeKind; cause?: unknown } = {},
  ) {
    super(code, message, details);
    this.name = 'AirgapError';
  }
}

// ---------------------------------------------------------------------------------------------
// Hashes, hours, days

/** The first 20 bits of SHA-256("portico-product:" + product code), as a number. */
export function productHash(code: string): number {
  return sha256(`portico-product:${code}`).readUIntBE(0, 3) >>> 4;
}

/** The first 40 bits of SHA-256("portico-hardware:" + hardware id): 10 lowercase hex digits. */
export function hardwareHash(hardwareId: string): string {
  return sha256(`portico-hardware:${hardwareId}`).subarray(0, 5).toString('hex');
}

/** Hours since 2026-01-01T00:00Z, modulo 65536. */
export function airgapHour(at: Date): number {
  const hours = Math.floor((at.getTime() - AIRGAP_HOUR_EPOCH) / HOUR);
  return ((hours % 65536) + 65536) % 65536;
}

/** The start of the hour `hour` names that is closest to `now` (the hour wraps every 65536 hours). */
export function airgapHourDate(hour: number, now: Date = new Date()): Date {
  const current = Math.floor((now.getTime() - AIRGAP_HOUR_EPOCH) / HOUR);
  const base = current - (((current % 65536) + 65536) % 65536);
  const candidates = [base - 65536 + hour, base + hour, base + 65536 + hour];
  const best = candidates.reduce((a, b) => (Math.abs(b - current) < Math.abs(a - current) ? b : a));
  return new Date(AIRGAP_HOUR_EPOCH + best * HOUR);
}

/**
 * The expiry day an activation code carries for a license expiry: whole days since 2020-01-01 UTC,
 * rounded up (a license ending at midnight UTC is exact; otherwise the device keeps it until the
 * next midnight), 0 for a license that never expires.
 */
export function airgapExpiresDay(expiresAt: Date | null): number {
  if (expiresAt === null) return 0;
  const day = Math.max(1, Math.ceil((expiresAt.getTime() - AIRGAP_DAY_EPOCH) / DAY));
  if (day > 0xffff)
    throw new AirgapError('input', `${expiresAt.toISOString()} is too far ahead for an activation code`);
  return day;
}

/** The instant an expiry day stands for (its 00:00 UTC), null for 0 (never). */
export function airgapExpiryDate(expiresDay: number): Date | null {
  return expiresDay === 0 ? null : new Date(AIRGAP_DAY_EPOCH + expiresDay * DAY);
}

// ---------------------------------------------------------------------------------------------
// 1. Request code (device → portal)

export interface AirgapRequest {
  product: string;
  productHash: number;
  /** 10 hex digits (40 bits). */
  hardwareHash: string;
  /** 20 hex digits (80 bits): airgapCommitment of the request's secret; also the request's nonce. */
  commitment: string;
  hour: number;
}

export interface ParsedAirgapRequest {
  productHash: number;
  hardwareHash: string;
  commitment: string;
  hour: number;
  /** The start of the hour the request was made (the one closest to `now`). */
  issuedAt: Date;
}

/**
 * A new request code with a new secret S (80 random bits). The device keeps `secret` until it makes
 * the deactivation code, and shows it to no one: whoever holds it can give the activation back.
 */
export function createAirgapRequest(input: {
  product: string;
  hardwareId: string;
  now?: Date /** Tests only: S instead of random bytes. */;
  secret?: Uint8Array;
}): {
  code: string;
  request: AirgapRequest;
  /** S, 20 lowercase hex digits. */
  secret: string;
} {
  if (typeof input.product !== 'string' || !CODE_PATTERN.test(input.product) || input.product.length > 64) {
    throw new AirgapError('input', 'the product must be a product code (letters and digits, groups joined by "-")');
  }
  if (typeof input.hardwareId !== 'string' || !HARDWARE_ID_PATTERN.test(input.hardwareId)) {
    throw new AirgapError('input', 'the hardware id must be 1–128 characters of A–Z a–z 0–9 . _ : -');
  }
  const secret = secretHex(input.secret ?? crypto.randomBytes(SECRET_BYTES));
  const hashes = { productHash: productHash(input.product), hardwareHash: hardwareHash(input.hardwareId) };
  const request: AirgapRequest = {
    product: input.product,
    ...hashes,
    commitment: airgapCommitment({ ...hashes, secret }),
    hour: airgapHour(input.now ?? new Date()),
  };
  const bits = new BitWriter()
    .write(AIRGAP_VERSION, 4)
    .write(request.productHash, 20)
    .writeHex(request.hardwareHash, 40)
    .writeHex(request.commitment, 80)
    .write(request.hour, 16);
  return { code: encodeCode('request', bits.bytes(), AIRGAP_BITS.request), request, secret };
}

/**
 * The commitment to S a request carries: the first 10 bytes of SHA-256 of the text
 * "PORTICO-AIRGAP-V2\ncommitment\n<product hash, decimal>\n<hardware hash>\n<S, 20 hex>", as 20 hex
 * digits. The portal stores it; a deactivation code is accepted only with an S that hashes to it.
 */
export function airgapCommitment(input: {
  productHash: number;
  hardwareHash: string;
  secret: string | Uint8Array;
}): string {
  checkProductHash(input.productHash);
  checkHex(input.hardwareHash, HEX10, 'hardwareHash', 10);
  const text = `${AIRGAP_DOMAIN}\ncommitment\n${input.productHash}\n${input.hardwareHash}\n${secretHex(input.secret)}`;
  return sha256(text).subarray(0, 10).toString('hex');
}

/** Reads a request code. A version 1 request code (an application not yet updated) is refused with `outdated`. */
export function parseAirgapRequest(code: string, now: Date = new Date()): ParsedAirgapRequest {
  const bits = readCurrent('request', code, 4);
  const parsed = {
    productHash: bits.read(20),
    hardwareHash: bits.readHex(40),
    commitment: bits.readHex(80),
    hour: bits.read(16),
  };
  return { ...parsed, issuedAt: airgapHourDate(parsed.hour, now) };
}

// ---------------------------------------------------------------------------------------------
// 2. Activation code (portal → device)

export interface AirgapActivationFields {
  /** Days since 2020-01-01 UTC of the license expiry (airgapExpiresDay); 0 = never. */
  expiresDay: number;
  /** Bit i: the product's i-th feature, in the order the server sends them (at most 8). */
  features: number;
}

export interface AirgapActivationMessageInput extends AirgapActivationFields {
  productCode: string;
  hardwareHash: string;
  /** The request's commitment, 20 hex digits. */
  commitment: string;
  /** As typed on the portal: normalised here (normaliseLicenseKey), as the server stores it. */
  licenseKey: string;
}

export interface VerifiedAirgapActivation extends AirgapActivationFields {
  expiresAt: Date | null;
  /** The trusted key that signed it. */
  kid: string;
}

/** The exact bytes the server signs (Ed25519) for an activation code. */
export function airgapActivationMessage(input: AirgapActivationMessageInput): Buffer {
  checkActivationFields(input);
  checkHex(input.commitment, HEX20, 'commitment', 20);
  return signedText([
    AIRGAP_DOMAIN,
    'activation',
    ...requestLines(input),
    input.commitment,
    licenseKeyLine(input.licenseKey),
    input.expiresDay,
    input.features,
  ]);
}

export function encodeActivationCode(input: AirgapActivationFields & { signature: Uint8Array }): string {
  checkActivationFields(input);
  const bits = new BitWriter()
    .write(AIRGAP_VERSION, 2)
    .write(input.expiresDay, 16)
    .write(input.features, 8)
    .writeBytes(signatureBytes(input.signature));
  return encodeCode('activation', bits.bytes(), AIRGAP_BITS.activation);
}

/** Reads an activation code. A version 1 one (it answers an old request code) is refused with `outdated`. */
export function parseActivationCode(code: string): AirgapActivationFields & { signature: Buffer } {
  const bits = readCurrent('activation', code, 2);
  return { expiresDay: bits.read(16), features: bits.read(8), signature: bits.readBytes(SIGNATURE_BYTES) };
}

/**
 * Checks an activation code on the device: signed by one of `trustedKeys` (there is no key id in
 * a code: each is tried) over this request (product, hardware hash, commitment) and license key,
 * and not expired at `now`. Returns what it grants.
 */
export function verifyActivationCode(
  code: string,
  options: { trustedKeys: ReadonlyMap<string, KeyInput>; request: AirgapRequest; licenseKey: string; now?: Date },
): VerifiedAirgapActivation {
  const parsed = parseActivationCode(code);
  const { request } = options;
  checkRequest(request);
  const message = airgapActivationMessage({
    productCode: request.product,
    hardwareHash: request.hardwareHash,
    commitment: request.commitment,
    licenseKey: options.licenseKey,
    expiresDay: parsed.expiresDay,
    features: parsed.features,
  });
  return verifiedGrant(parsed, message, options);
}

// ---------------------------------------------------------------------------------------------
// 3. Deactivation code (device → portal) and 4. confirmation code (portal → device)

/** Reveals S: proof that this is the machine that made the request whose commitment the portal stored. */
export function createDeactivationCode(input: { hardwareHash: string; secret: string | Uint8Array }): { code: string } {
  checkHex(input.hardwareHash, HEX10, 'hardwareHash', 10);
  const bits = new BitWriter()
    .write(AIRGAP_VERSION, 2)
    .writeHex(input.hardwareHash, 40)
    .writeHex(secretHex(input.secret), 80);
  return { code: encodeCode('deactivation', bits.bytes(), AIRGAP_BITS.deactivation) };
}

export type ParsedDeactivationCode =
  | {
      version: 2;
      hardwareHash: string /** S, 20 hex digits: check it against the stored commitment (airgapCommitment). */;
      secret: string;
    }
  | { version: 1; activationId: number; nonce: string; tag: Buffer };

/** Reads a deactivation code of either version (the portal still accepts version 1 for activations made before version 2). */
export function parseDeactivationCode(code: string): ParsedDeactivationCode {
  const { version, bits } = readVersioned('deactivation', code, 2);
  if (version === AIRGAP_VERSION) return { version, hardwareHash: bits.readHex(40), secret: bits.readHex(80) };
  return {
    version: LEGACY_VERSION,
    activationId: readActivationId(bits, 'deactivation'),
    nonce: bits.readHex(24),
    tag: bits.readBytes(10),
  };
}

/**
 * The confirmation code the portal shows once a deactivation code freed the seat: the first 8 bytes
 * of HMAC-SHA256(S, "PORTICO-AIRGAP-V2\nconfirmation\n" + hardware hash). S was in the
 * deactivation code, so it proves nothing to anyone else: it only lets the device close its own
 * state knowing the portal took the code.
 */
export function confirmationCode(input: { secret: string | Uint8Array; hardwareHash: string }): string {
  return encodeCode('confirmation', confirmationTag(input), AIRGAP_BITS.confirmation);
}

/**
 * Whether a typed confirmation code answers this device's deactivation code. A code that does not
 * read (a typo, a wrong length) throws AirgapError, so the person can be asked to type it again;
 * a readable code made for another secret or machine returns false.
 */
export function verifyConfirmationCode(
  code: string,
  expected: { secret: string | Uint8Array; hardwareHash: string },
): boolean {
  return tagMatches(readConfirmation(code), confirmationTag(expected));
}

// ---------------------------------------------------------------------------------------------
// Version 1, for activations made before version 2

export interface LegacyAirgapRequest {
  product: string;
  productHash: number;
  hardwareHash: string;
  /** 12 hex digits (48 bits). */
  nonce: string;
  hour: number;
}

export interface VerifiedLegacyAirgapActivation extends VerifiedAirgapActivation {
  activationId: number;
  /** The per-activation secret (16 bytes) that makes version 1 deactivation codes. */
  secret: Buffer;
}

/**
 * Checks a stored version 1 activation code again (the device's `status`), as it was checked when
 * installed: signed over "PORTICO-AIRGAP-V1", the request's nonce and the activation id.
 */
export function verifyLegacyActivationCode(
  code: string,
  options: { trustedKeys: ReadonlyMap<string, KeyInput>; request: LegacyAirgapRequest; licenseKey: string; now?: Date },
): VerifiedLegacyAirgapActivation {
  const bits = readLegacy('activation', code, 2);
  const parsed = {
    activationId: readActivationId(bits, 'activation'),
    expiresDay: bits.read(16),
    features: bits.read(8),
    signature: bits.readBytes(SIGNATURE_BYTES),
  };
  const { request } = options;
  checkRequest(request);
  checkHex(request.nonce, HEX12, 'nonce', 12);
  const message = signedText([
    LEGACY_DOMAIN,
    'activation',
    ...requestLines({ productCode: request.product, hardwareHash: request.hardwareHash }),
    request.nonce,
    licenseKeyLine(options.licenseKey),
    parsed.activationId,
    parsed.expiresDay,
    parsed.features,
  ]);
  return {
    ...verifiedGrant(parsed, message, options),
    activationId: parsed.activationId,
    secret: legacyAirgapSecret(parsed.signature),
  };
}

/** The first 16 bytes of SHA-256("PORTICO-AIRGAP-SECRET" + signature): version 1's per-activation secret. Anyone who saw the activation code can compute it. */
export function legacyAirgapSecret(signature: Uint8Array): Buffer {
  return crypto
    .createHash('sha256')
    .update(LEGACY_SECRET_DOMAIN, 'ascii')
    .update(signatureBytes(signature))
    .digest()
    .subarray(0, 16);
}

export function createLegacyDeactivationCode(input: { activationId: number; secret: Uint8Array; nonce?: string }): {
  code: string;
  nonce: string;
} {
  const nonce = input.nonce ?? crypto.randomBytes(3).toString('hex');
  const tag = legacyMac(input.secret, 'deactivation', input.activationId, nonce).subarray(0, 10);
  const bits = new BitWriter()
    .write(LEGACY_VERSION, 2)
    .write(input.activationId, 28)
    .writeHex(nonce, 24)
    .writeBytes(tag);
  return { code: encodeCode('deactivation', bits.bytes(), AIRGAP_LEGACY_BITS.deactivation), nonce };
}

/** Whether `tag` (from a version 1 parseDeactivationCode) was made with `secret` for this activation and nonce. Constant time. */
export function legacyDeactivationTagValid(
  secret: Uint8Array,
  activationId: number,
  nonce: string,
  tag: Uint8Array,
): boolean {
  if (!validLegacyMacInput(secret, activationId, nonce)) return false;
  return tagMatches(tag, legacyMac(secret, 'deactivation', activationId, nonce).subarray(0, 10));
}

export function legacyConfirmationCode(secret: Uint8Array, activationId: number, nonce: string): string {
  return encodeCode(
    'confirmation',
    legacyMac(secret, 'confirmation', activationId, nonce).subarray(0, 8),
    AIRGAP_BITS.confirmation,
  );
}

export function verifyLegacyConfirmationCode(
  code: string,
  expected: { secret: Uint8Array; activationId: number; nonce: string },
): boolean {
  return tagMatches(
    readConfirmation(code),
    legacyMac(expected.secret, 'confirmation', expected.activationId, expected.nonce).subarray(0, 8),
  );
}

// ---------------------------------------------------------------------------------------------
// Telling codes apart

/** The bit lengths a code of `kind` may have, current version first (its length tells the version). */
function bitLengthsOf(kind: CodeKind): number[] {
  return kind === 'confirmation' ? [AIRGAP_BITS[kind]] : [AIRGAP_BITS[kind], AIRGAP_LEGACY_BITS[kind]];
}

/** The kind of air-gap code `text` is, of either version (its length and check symbols both fit), or null. */
export function identifyAirgapCode(text: string): CodeKind | null {
  const length = normaliseCodeText(text).length;
  for (const kind of CODE_KINDS) {
    for (const bits of bitLengthsOf(kind)) {
      if (codeLayout(bits).symbols !== length) continue;
      try {
        decodeCode(kind, text, bits);
        return kind;
      } catch {
        // not this kind
      }
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** A code of `kind` in whichever version its length says, its version field read and checked against that. */
function readVersioned(
  kind: CodeKind,
  text: string,
  versionBits: number,
): { version: typeof AIRGAP_VERSION | typeof LEGACY_VERSION; bits: BitReader } {
  let decoded: { bitLength: number; data: Uint8Array };
  try {
    decoded = decodeCodeOf(kind, text, bitLengthsOf(kind));
  } catch (err) {
    if (!(err instanceof CodeError)) throw err;
    const other = typeof text === 'string' && err.code === 'format' ? identifyAirgapCode(text) : null;
    if (other !== null && other !== kind) {
      throw new AirgapError('format', `this is ${article(other)} ${other} code, not ${article(kind)} ${kind} code`, {
        actualKind: other,
        cause: err,
      });
    }
    throw new AirgapError(err.code as CodeErrorCode, err.message, { group: err.group, cause: err });
  }
  const version = decoded.bitLength === AIRGAP_BITS[kind] ? AIRGAP_VERSION : LEGACY_VERSION;
  const bits = new BitReader(decoded.data);
  const field = kind === 'confirmation' ? version : bits.read(versionBits);
  if (field !== version)
    throw new AirgapError(
      'format',
      `${kind} code version ${field} is not supported (this software reads versions ${LEGACY_VERSION} and ${AIRGAP_VERSION})`,
    );
  return { version, bits };
}

const OUTDATED: Partial<Record<CodeKind, string>> = {
  request:
    'this request code was made by an older version of the application (air-gap codes version 1); update the application and make a new request code',
  activation:
    'this activation code answers a request code of an older version (air-gap codes version 1); make a new request code and enter that one in the portal',
};

/** A version 2 code of `kind`; a version 1 one is `outdated`. */
function readCurrent(kind: 'request' | 'activation', text: string, versionBits: number): BitReader {
  const { version, bits } = readVersioned(kind, text, versionBits);
  if (version !== AIRGAP_VERSION) throw new AirgapError('outdated', OUTDATED[kind]!);
  return bits;
}

/** A version 1 code of `kind` (stored by the device before version 2). */
function readLegacy(kind: CodeKind, text: string, versionBits: number): BitReader {
  const { version, bits } = readVersioned(kind, text, versionBits);
  if (version !== LEGACY_VERSION)
    throw new AirgapError('format', `this is a version ${version} ${kind} code, not a version ${LEGACY_VERSION} one`);
  return bits;
}

function readConfirmation(code: string): Buffer {
  return readVersioned('confirmation', code, 0).bits.readBytes(8);
}

function article(kind: CodeKind): string {
  return kind === 'activation' ? 'an' : 'a';
}

/** The signer among `trustedKeys` and the expiry, or the refusal: what both versions of activation code check. */
function verifiedGrant(
  parsed: AirgapActivationFields & { signature: Buffer },
  message: Buffer,
  options: { trustedKeys: ReadonlyMap<string, KeyInput>; now?: Date },
): VerifiedAirgapActivation {
  let kid: string | undefined;
  for (const [name, key] of options.trustedKeys) {
    if (crypto.verify(null, message, publicKey(key, name), parsed.signature)) {
      kid = name;
      break;
    }
  }
  if (kid === undefined) {
    throw new AirgapError(
      'signature',
      'the activation code is not signed by a trusted key for this request and license key: it answers another request or machine, or was altered',
    );
  }
  const expiresAt = airgapExpiryDate(parsed.expiresDay);
  if (expiresAt !== null && expiresAt.getTime() <= (options.now ?? new Date()).getTime()) {
    throw new AirgapError('expired', `the license expired at ${expiresAt.toISOString()}`);
  }
  return { expiresDay: parsed.expiresDay, expiresAt, features: parsed.features, kid };
}

function checkRequest(request: { product: string; productHash: number; hardwareHash: string }): void {
  if (
    request === null ||
    typeof request !== 'object' ||
    typeof request.product !== 'string' ||
    productHash(request.product) !== request.productHash
  ) {
    throw new AirgapError('input', 'the request does not read as an air-gap request');
  }
}

/** The product and hardware lines of a signed message, checked. */
function requestLines(input: { productCode: string; hardwareHash: string }): string[] {
  if (typeof input.productCode !== 'string' || !CODE_PATTERN.test(input.productCode))
    throw new AirgapError('input', 'productCode must be a product code');
  checkHex(input.hardwareHash, HEX10, 'hardwareHash', 10);
  return [input.productCode, input.hardwareHash];
}

/** The license key as the portal stores it (normaliseLicenseKey), which is what is signed. */
function licenseKeyLine(licenseKey: string): string {
  if (typeof licenseKey !== 'string') throw new AirgapError('input', 'licenseKey must be a string');
  const normalised = normaliseLicenseKey(licenseKey);
  if (!/^[!-~]+$/.test(normalised)) throw new AirgapError('input', 'the license key must be printable ASCII');
  return normalised;
}

/** ASCII lines joined by a line feed, no final one. */
function signedText(lines: ReadonlyArray<string | number>): Buffer {
  return Buffer.from(lines.join('\n'), 'ascii');
}

function checkHex(value: unknown, pattern: RegExp, name: string, digits: number): void {
  if (typeof value !== 'string' || !pattern.test(value))
    throw new AirgapError('input', `${name} must be ${digits} lowercase hex digits`);
}

function checkProductHash(hash: number): void {
  if (!Number.isInteger(hash) || hash < 0 || hash > 0xfffff)
    throw new AirgapError('input', 'productHash must be a 20-bit integer');
}

/** S as 20 lowercase hex digits, from its 10 bytes or its hex. */
function secretHex(secret: string | Uint8Array): string {
  if (secret instanceof Uint8Array && secret.length === SECRET_BYTES) return Buffer.from(secret).toString('hex');
  if (typeof secret === 'string' && HEX20.test(secret)) return secret;
  throw new AirgapError('input', `the secret must be ${SECRET_BYTES} bytes or 20 lowercase hex digits`);
}

function signatureBytes(signature: Uint8Array): Uint8Array {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES)
    throw new AirgapError('input', `the signature must be ${SIGNATURE_BYTES} bytes`);
  return signature;
}

function confirmationTag(input: { secret: string | Uint8Array; hardwareHash: string }): Buffer {
  checkHex(input.hardwareHash, HEX10, 'hardwareHash', 10);
  const key = Buffer.from(secretHex(input.secret), 'hex');
  return crypto
    .createHmac('sha256', key)
    .update(`${AIRGAP_DOMAIN}\nconfirmation\n${input.hardwareHash}`, 'ascii')
    .digest()
    .subarray(0, 8);
}

/** Constant-time comparison of a received tag with the expected one. */
function tagMatches(received: Uint8Array, expected: Buffer): boolean {
  return (
    received instanceof Uint8Array && received.length === expected.length && crypto.timingSafeEqual(expected, received)
  );
}

function readActivationId(bits: BitReader, kind: CodeKind): number {
  const id = bits.read(28);
  if (id === 0) throw new AirgapError('format', `the ${kind} code names no activation`);
  return id;
}

function checkActivationFields(input: AirgapActivationFields): void {
  if (!Number.isInteger(input.expiresDay) || input.expiresDay < 0 || input.expiresDay > 0xffff) {
    throw new AirgapError('input', 'expiresDay must be an integer from 0 to 65535');
  }
  if (!Number.isInteger(input.features) || input.features < 0 || input.features > 0xff) {
    throw new AirgapError('input', 'features must be an 8-bit integer (one bit per feature)');
  }
}

function validLegacyMacInput(secret: Uint8Array, activationId: number, nonce: string): boolean {
  return (
    secret instanceof Uint8Array &&
    secret.length > 0 &&
    Number.isInteger(activationId) &&
    activationId >= 1 &&
    activationId <= AIRGAP_MAX_ACTIVATION_ID &&
    typeof nonce === 'string' &&
    HEX6.test(nonce)
  );
}

function legacyMac(
  secret: Uint8Array,
  purpose: 'deactivation' | 'confirmation',
  activationId: number,
  nonce: string,
): Buffer {
  if (!validLegacyMacInput(secret, activationId, nonce)) {
    throw new AirgapError(
      'input',
      'a MAC needs the secret (bytes), an activation id from 1 to 2^28 − 1 and a nonce of 6 lowercase hex digits',
    );
  }
  return crypto
    .createHmac('sha256', secret)
    .update(`${LEGACY_DOMAIN}\n${purpose}\n${activationId}\n${nonce}`, 'ascii')
    .digest();
}

function sha256(text: string): Buffer {
  return crypto.createHash('sha256').update(text, 'utf8').digest();
}

/** Keys already read (a verifier sees the same handful again and again): KeyObjects weakly, PEM strings up to a bound. */
const keyObjects = new WeakMap<KeyObject, KeyObject>();
const pemKeys = new Map<string, KeyObject>();

function publicKey(input: KeyInput, kid: string): KeyObject {
  const cached = typeof input === 'string' ? pemKeys.get(input) : keyObjects.get(input);
  if (cached !== undefined) return cached;
  let key: KeyObject;
  try {
    key = typeof input === 'string' || input.type === 'private' ? crypto.createPublicKey(input) : input;
  } catch {
    throw new AirgapError('input', `trusted key "${kid}" is not a readable public key`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new AirgapError('input', `trusted key "${kid}" is not an Ed25519 key`);
  if (typeof input !== 'string') keyObjects.set(input, key);
  else {
    if (pemKeys.size >= 64) pemKeys.clear();
    pemKeys.set(input, key);
  }
  return key;
}

/** Big-endian bit fields into bytes. */
class BitWriter {
  private readonly bits: number[] = [];

  write(value: number, width: number): this {
    return this.writeBig(BigInt(value), width);
  }

  writeHex(hex: string, width: number): this {
    return this.writeBig(BigInt(`0x${hex}`), width);
  }

  writeBytes(bytes: Uint8Array): this {
    for (const b of bytes) this.write(b, 8);
    return this;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(Math.ceil(this.bits.length / 8));
    this.bits.forEach((bit, i) => {
      out[i >> 3] |= bit << (7 - (i & 7));
    });
    return out;
  }

  private writeBig(value: bigint, width: number): this {
    if (value < 0n || value >> BigInt(width) !== 0n)
      throw new AirgapError('input', `${value} does not fit in ${width} bits`);
    for (let i = width - 1; i >= 0; i--) this.bits.push(Number((value >> BigInt(i)) & 1n));
    return this;
  }
}

/** Big-endian bit fields out of bytes. */
class BitReader {
  private readonly data: Uint8Array;
  private position = 0;

  constructor(data: Uint8Array) {
    this.data = data;
  }

  read(width: number): number {
    return Number(this.readBig(width));
  }

  readHex(width: number): string {
    return this.readBig(width)
      .toString(16)
      .padStart(width / 4, '0');
  }

  readBytes(count: number): Buffer {
    return Buffer.from(Array.from({ length: count }, () => this.read(8)));
  }

  private readBig(width: number): bigint {
    let value = 0n;
    for (let i = 0; i < width; i++, this.position++) {
      value = (value << 1n) | BigInt((this.data[this.position >> 3] >> (7 - (this.position & 7))) & 1);
    }
    return value;
  }
}
