import crypto, { type KeyObject } from 'node:crypto';
import { CODE_KINDS, CodeError, codeLayout, decodeCode, encodeCode, normaliseCodeText, normaliseLicenseKey, type CodeErrorCode, type CodeKind } from './codes.ts';
import type { KeyInput } from './envelope.ts';
import { CODE_PATTERN, HARDWARE_ID_PATTERN } from './payloads.ts';

/**
 * Air-gapped activation (docs/file-formats.md, "Air-gap codes"): four short codes a person carries
 * between the machine and the portal. The device makes the request and deactivation codes and
 * checks the activation and confirmation codes; the server does the reverse with these same
 * functions, adding only its private key and the database.
 *
 * Every code is a fixed bit layout (big-endian) written with codes.ts; the bit counts are below.
 */

export const AIRGAP_DOMAIN = 'PORTICO-AIRGAP-V1';
export const AIRGAP_VERSION = 1;

export const AIRGAP_BITS = {
  request: 4 + 20 + 40 + 48 + 16, // 128
  activation: 2 + 28 + 16 + 8 + 512, // 566
  deactivation: 2 + 28 + 24 + 80, // 134
  confirmation: 64,
} as const satisfies Record<CodeKind, number>;

/** Symbols shown per code, check symbols included, hyphens not: request 33, activation 143, deactivation 34, confirmation 17. */
export const AIRGAP_CODE_LENGTHS: Readonly<Record<CodeKind, number>> = Object.fromEntries(
  CODE_KINDS.map((kind) => [kind, codeLayout(AIRGAP_BITS[kind]).symbols]),
) as Record<CodeKind, number>;

/** The request's hour counts from here (16 bits: about 7.5 years, then it wraps). */
export const AIRGAP_HOUR_EPOCH = Date.UTC(2026, 0, 1);
/** An activation code's expiry counts days from here (0 = never expires). */
export const AIRGAP_DAY_EPOCH = Date.UTC(2020, 0, 1);
export const AIRGAP_MAX_ACTIVATION_ID = 2 ** 28 - 1;
export const AIRGAP_MAX_FEATURES = 8;

const HOUR = 3_600_000;
const DAY = 86_400_000;
const SECRET_DOMAIN = 'PORTICO-AIRGAP-SECRET';
const SIGNATURE_BYTES = 64;
const HEX10 = /^[0-9a-f]{10}$/;
const HEX12 = /^[0-9a-f]{12}$/;
const HEX6 = /^[0-9a-f]{6}$/;

export type AirgapErrorCode = CodeErrorCode | 'signature' | 'expired' | 'input';

/**
 * Every refusal by the air-gap functions. A CodeError, so `typo` (with `group`) and `format` are
 * caught alike from decodeCode and from here; `signature`: not signed by a trusted key for this
 * request, license key and machine; `expired`: the license in the code has expired; `input`: an
 * argument handed to the SDK is not valid.
 */
export class AirgapError extends CodeError<AirgapErrorCode> {
  constructor(code: AirgapErrorCode, message: string, details: { group?: number; actualKind?: CodeKind; cause?: unknown } = {}) {
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
  if (day > 0xffff) throw new AirgapError('input', `${expiresAt.toISOString()} is too far ahead for an activation code`);
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
  /** 12 hex digits (48 bits). */
  nonce: string;
  hour: number;
}

export interface ParsedAirgapRequest {
  productHash: number;
  hardwareHash: string;
  nonce: string;
  hour: number;
  /** The start of the hour the request was made (the one closest to `now`). */
  issuedAt: Date;
}

export function createAirgapRequest(input: { product: string; hardwareId: string; now?: Date }): { code: string; request: AirgapRequest } {
  if (typeof input.product !== 'string' || !CODE_PATTERN.test(input.product) || input.product.length > 64) {
    throw new AirgapError('input', 'the product must be a product code (letters and digits, groups joined by "-")');
  }
  if (typeof input.hardwareId !== 'string' || !HARDWARE_ID_PATTERN.test(input.hardwareId)) {
    throw new AirgapError('input', 'the hardware id must be 1–128 characters of A–Z a–z 0–9 . _ : -');
  }
  const request: AirgapRequest = {
    product: input.product,
    productHash: productHash(input.product),
    hardwareHash: hardwareHash(input.hardwareId),
    nonce: crypto.randomBytes(6).toString('hex'),
    hour: airgapHour(input.now ?? new Date()),
  };
  const bits = new BitWriter()
    .write(AIRGAP_VERSION, 4)
    .write(request.productHash, 20)
    .writeHex(request.hardwareHash, 40)
    .writeHex(request.nonce, 48)
    .write(request.hour, 16);
  return { code: encodeCode('request', bits.bytes(), AIRGAP_BITS.request), request };
}

export function parseAirgapRequest(code: string, now: Date = new Date()): ParsedAirgapRequest {
  const bits = readCode('request', code);
  checkVersion(bits.read(4), 'request');
  const parsed = { productHash: bits.read(20), hardwareHash: bits.readHex(40), nonce: bits.readHex(48), hour: bits.read(16) };
  return { ...parsed, issuedAt: airgapHourDate(parsed.hour, now) };
}

// ---------------------------------------------------------------------------------------------
// 2. Activation code (portal → device)

export interface AirgapActivationFields {
  activationId: number;
  /** Days since 2020-01-01 UTC of the license expiry (airgapExpiresDay); 0 = never. */
  expiresDay: number;
  /** Bit i: the product's i-th feature, in the order the server sends them (at most 8). */
  features: number;
}

export interface AirgapActivationMessageInput extends AirgapActivationFields {
  productCode: string;
  hardwareHash: string;
  nonce: string;
  /** As typed on the portal: normalised here (normaliseLicenseKey), as the server stores it. */
  licenseKey: string;
}

export interface VerifiedAirgapActivation {
  activationId: number;
  expiresDay: number;
  expiresAt: Date | null;
  features: number;
  /** The per-activation secret (16 bytes) that makes deactivation codes. */
  secret: Buffer;
  /** The trusted key that signed it. */
  kid: string;
}

/** The exact bytes the server signs (Ed25519) for an activation code. */
export function airgapActivationMessage(input: AirgapActivationMessageInput): Buffer {
  checkActivationFields(input);
  if (typeof input.productCode !== 'string' || !CODE_PATTERN.test(input.productCode)) throw new AirgapError('input', 'productCode must be a product code');
  if (typeof input.hardwareHash !== 'string' || !HEX10.test(input.hardwareHash)) throw new AirgapError('input', 'hardwareHash must be 10 lowercase hex digits');
  if (typeof input.nonce !== 'string' || !HEX12.test(input.nonce)) throw new AirgapError('input', 'nonce must be 12 lowercase hex digits');
  if (typeof input.licenseKey !== 'string') throw new AirgapError('input', 'licenseKey must be a string');
  const licenseKey = normaliseLicenseKey(input.licenseKey);
  if (!/^[!-~]+$/.test(licenseKey)) throw new AirgapError('input', 'the license key must be printable ASCII');
  const lines = [AIRGAP_DOMAIN, 'activation', input.productCode, input.hardwareHash, input.nonce, licenseKey, input.activationId, input.expiresDay, input.features];
  return Buffer.from(lines.join('\n'), 'ascii');
}

export function encodeActivationCode(input: AirgapActivationFields & { signature: Uint8Array }): string {
  checkActivationFields(input);
  if (!(input.signature instanceof Uint8Array) || input.signature.length !== SIGNATURE_BYTES) {
    throw new AirgapError('input', `the signature must be ${SIGNATURE_BYTES} bytes`);
  }
  const bits = new BitWriter()
    .write(AIRGAP_VERSION, 2)
    .write(input.activationId, 28)
    .write(input.expiresDay, 16)
    .write(input.features, 8)
    .writeBytes(input.signature);
  return encodeCode('activation', bits.bytes(), AIRGAP_BITS.activation);
}

export function parseActivationCode(code: string): AirgapActivationFields & { signature: Buffer } {
  const bits = readCode('activation', code);
  checkVersion(bits.read(2), 'activation');
  const activationId = readActivationId(bits, 'activation');
  return { activationId, expiresDay: bits.read(16), features: bits.read(8), signature: bits.readBytes(SIGNATURE_BYTES) };
}

/**
 * Checks an activation code on the device: signed by one of `trustedKeys` (there is no key id in
 * a code: each is tried) over this request (product, hardware hash, nonce) and license key, and
 * not expired at `now`. Returns what it grants and the per-activation secret.
 */
export function verifyActivationCode(
  code: string,
  options: { trustedKeys: ReadonlyMap<string, KeyInput>; request: AirgapRequest; licenseKey: string; now?: Date },
): VerifiedAirgapActivation {
  const parsed = parseActivationCode(code);
  const { request } = options;
  if (request === null || typeof request !== 'object' || productHash(request.product) !== request.productHash) {
    throw new AirgapError('input', 'the request does not read as an air-gap request');
  }
  const message = airgapActivationMessage({
    productCode: request.product,
    hardwareHash: request.hardwareHash,
    nonce: request.nonce,
    licenseKey: options.licenseKey,
    activationId: parsed.activationId,
    expiresDay: parsed.expiresDay,
    features: parsed.features,
  });
  let kid: string | undefined;
  for (const [name, key] of options.trustedKeys) {
    if (crypto.verify(null, message, publicKey(key, name), parsed.signature)) {
      kid = name;
      break;
    }
  }
  if (kid === undefined) {
    throw new AirgapError('signature', 'the activation code is not signed by a trusted key for this request and license key: it answers another request or machine, or was altered');
  }
  const expiresAt = airgapExpiryDate(parsed.expiresDay);
  if (expiresAt !== null && expiresAt.getTime() <= (options.now ?? new Date()).getTime()) {
    throw new AirgapError('expired', `the license expired at ${expiresAt.toISOString()}`);
  }
  return { activationId: parsed.activationId, expiresDay: parsed.expiresDay, expiresAt, features: parsed.features, secret: airgapSecret(parsed.signature), kid };
}

/** The first 16 bytes of SHA-256("PORTICO-AIRGAP-SECRET" + signature): known only to whoever holds the signed answer. */
export function airgapSecret(signature: Uint8Array): Buffer {
  return crypto.createHash('sha256').update(SECRET_DOMAIN, 'ascii').update(signature).digest().subarray(0, 16);
}

// ---------------------------------------------------------------------------------------------
// 3. Deactivation code (device → portal) and 4. confirmation code (portal → device)

export function createDeactivationCode(input: { activationId: number; secret: Uint8Array; nonce?: string }): { code: string; nonce: string } {
  checkActivationId(input.activationId);
  const nonce = input.nonce ?? crypto.randomBytes(3).toString('hex');
  if (typeof nonce !== 'string' || !HEX6.test(nonce)) throw new AirgapError('input', 'the nonce must be 6 lowercase hex digits');
  const tag = mac(input.secret, 'deactivation', input.activationId, nonce).subarray(0, 10);
  const bits = new BitWriter().write(AIRGAP_VERSION, 2).write(input.activationId, 28).writeHex(nonce, 24).writeBytes(tag);
  return { code: encodeCode('deactivation', bits.bytes(), AIRGAP_BITS.deactivation), nonce };
}

export function parseDeactivationCode(code: string): { activationId: number; nonce: string; tag: Buffer } {
  const bits = readCode('deactivation', code);
  checkVersion(bits.read(2), 'deactivation');
  return { activationId: readActivationId(bits, 'deactivation'), nonce: bits.readHex(24), tag: bits.readBytes(10) };
}

/** Whether `tag` (from parseDeactivationCode) was made with `secret` for this activation and nonce. Constant time. */
export function deactivationTagValid(secret: Uint8Array, activationId: number, nonce: string, tag: Uint8Array): boolean {
  if (!(tag instanceof Uint8Array) || !validMacInput(secret, activationId, nonce)) return false;
  const expected = mac(secret, 'deactivation', activationId, nonce).subarray(0, 10);
  return tag.length === expected.length && crypto.timingSafeEqual(expected, tag);
}

/** The confirmation code the portal shows once a deactivation code freed the seat. */
export function confirmationCode(secret: Uint8Array, activationId: number, nonce: string): string {
  return encodeCode('confirmation', mac(secret, 'confirmation', activationId, nonce).subarray(0, 8), AIRGAP_BITS.confirmation);
}

/**
 * Whether a typed confirmation code answers this device's deactivation code. A code that does not
 * read (a typo, a wrong length) throws AirgapError, so the person can be asked to type it again;
 * a readable code made for another activation, nonce or secret returns false.
 */
export function verifyConfirmationCode(code: string, expected: { secret: Uint8Array; activationId: number; nonce: string }): boolean {
  const tag = readCode('confirmation', code).readBytes(8);
  const want = mac(expected.secret, 'confirmation', expected.activationId, expected.nonce).subarray(0, 8);
  return crypto.timingSafeEqual(want, tag);
}

// ---------------------------------------------------------------------------------------------
// Telling codes apart

/** The kind of air-gap code `text` is (its length and check symbols both fit), or null. */
export function identifyAirgapCode(text: string): CodeKind | null {
  const length = normaliseCodeText(text).length;
  for (const kind of CODE_KINDS) {
    if (AIRGAP_CODE_LENGTHS[kind] !== length) continue;
    try {
      decodeCode(kind, text, AIRGAP_BITS[kind]);
      return kind;
    } catch {
      // not this kind
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Helpers

function readCode(kind: CodeKind, text: string): BitReader {
  try {
    return new BitReader(decodeCode(kind, text, AIRGAP_BITS[kind]));
  } catch (err) {
    if (!(err instanceof CodeError)) throw err;
    const other = typeof text === 'string' && err.code === 'format' ? identifyAirgapCode(text) : null;
    if (other !== null && other !== kind) {
      throw new AirgapError('format', `this is ${article(other)} ${other} code, not ${article(kind)} ${kind} code`, { actualKind: other, cause: err });
    }
    throw new AirgapError(err.code as CodeErrorCode, err.message, { group: err.group, cause: err });
  }
}

function article(kind: CodeKind): string {
  return kind === 'activation' ? 'an' : 'a';
}

function checkVersion(version: number, kind: CodeKind): void {
  if (version !== AIRGAP_VERSION) throw new AirgapError('format', `${kind} code version ${version} is not supported (this software reads version ${AIRGAP_VERSION})`);
}

function readActivationId(bits: BitReader, kind: CodeKind): number {
  const id = bits.read(28);
  if (id === 0) throw new AirgapError('format', `the ${kind} code names no activation`);
  return id;
}

function checkActivationId(id: number): void {
  if (!Number.isInteger(id) || id < 1 || id > AIRGAP_MAX_ACTIVATION_ID) {
    throw new AirgapError('input', `the activation id must be an integer from 1 to ${AIRGAP_MAX_ACTIVATION_ID}`);
  }
}

function checkActivationFields(input: AirgapActivationFields): void {
  checkActivationId(input.activationId);
  if (!Number.isInteger(input.expiresDay) || input.expiresDay < 0 || input.expiresDay > 0xffff) {
    throw new AirgapError('input', 'expiresDay must be an integer from 0 to 65535');
  }
  if (!Number.isInteger(input.features) || input.features < 0 || input.features > 0xff) {
    throw new AirgapError('input', 'features must be an 8-bit integer (one bit per feature)');
  }
}

function validMacInput(secret: Uint8Array, activationId: number, nonce: string): boolean {
  return secret instanceof Uint8Array && secret.length > 0 && Number.isInteger(activationId) && activationId >= 1 && activationId <= AIRGAP_MAX_ACTIVATION_ID && typeof nonce === 'string' && HEX6.test(nonce);
}

function mac(secret: Uint8Array, purpose: 'deactivation' | 'confirmation', activationId: number, nonce: string): Buffer {
  if (!validMacInput(secret, activationId, nonce)) {
    throw new AirgapError('input', 'a MAC needs the secret (bytes), an activation id from 1 to 2^28 − 1 and a nonce of 6 lowercase hex digits');
  }
  return crypto.createHmac('sha256', secret).update(`${AIRGAP_DOMAIN}\n${purpose}\n${activationId}\n${nonce}`, 'ascii').digest();
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
    this.bits.forEach((bit, i) => (out[i >> 3] |= bit << (7 - (i & 7))));
    return out;
  }

  private writeBig(value: bigint, width: number): this {
    if (value < 0n || value >> BigInt(width) !== 0n) throw new AirgapError('input', `${value} does not fit in ${width} bits`);
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
    return this.readBig(width).toString(16).padStart(width / 4, '0');
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
