import crypto, { type KeyObject } from 'node:crypto';
import { decodeBase64, decodeBase64url, encodeBase64, encodeBase64url } from './base64.ts';
import { EnvelopeError } from './errors.ts';
import { decodeUtf8, isJsonObject, parseJsonStrict, type JsonObject } from './json.ts';

/**
 * The Portico artifact envelope, version 1 (docs/file-formats.md describes every byte).
 *
 *   -----BEGIN PORTICO LICENSE-----
 *   base64 of {"v":1,"typ":"license","alg":"Ed25519","kid":"…","payload":"…","sig":"…"}
 *   -----END PORTICO LICENSE-----
 *
 * The signature covers "PORTICO-ENVELOPE-V1\n" + typ + "\n" + kid + "\n" + payload bytes, so an
 * artifact of one type never verifies as another and the signer's key id cannot be swapped.
 */

export const ENVELOPE_VERSION = 1;
export const ENVELOPE_ALG = 'Ed25519';
/** The kid of envelopes signed by a device key, which travels in the payload as `devicePublicKey`. */
export const DEVICE_KID = 'device';
export const SIGNING_DOMAIN = 'PORTICO-ENVELOPE-V1';

/** Every artifact type. Add new ones at the end; the armour label is derived from the name. */
export const ENVELOPE_TYPES = [
  'activation-request',
  'license',
  'deactivation-request',
  'deactivation-receipt',
  'refresh',
  'check-request',
  'consumption-request',
  'usage-report',
] as const;
export type EnvelopeType = (typeof ENVELOPE_TYPES)[number];

export const ENVELOPE_LIMITS = {
  /** Characters (or bytes) of armoured input read at all. */
  armoredChars: 64 * 1024,
  /** Bytes of the decoded envelope JSON. */
  envelopeBytes: 48 * 1024,
  /** Bytes of the payload JSON. */
  payloadBytes: 32 * 1024,
  /** Nesting of objects and arrays in the payload JSON. */
  payloadDepth: 16,
} as const;

/** A kid is short, printable and cannot contain the newline that separates the signing input. */
const KID = /^[A-Za-z0-9_-]{1,64}$/;
const ENVELOPE_FIELDS = ['v', 'typ', 'alg', 'kid', 'payload', 'sig'] as const;
const SIGNATURE_BYTES = 64;
const ED25519_PUBLIC_KEY_BYTES = 32;

export type KeyInput = KeyObject | string;

/** An envelope taken apart but not verified: nothing in it can be trusted yet. */
export interface DecodedEnvelope {
  typ: EnvelopeType;
  kid: string;
  payloadBytes: Buffer;
  signature: Buffer;
}

export interface VerifiedEnvelope {
  typ: EnvelopeType;
  kid: string;
  payload: JsonObject;
}

export interface VerifyOptions {
  /** The type (or types) the caller is prepared to handle; anything else is refused with `type`. */
  expectedType: EnvelopeType | readonly EnvelopeType[];
  /** kid → public key (KeyObject or SPKI PEM) of every key the caller trusts. */
  trustedKeys: ReadonlyMap<string, KeyInput>;
}

export function isEnvelopeType(value: unknown): value is EnvelopeType {
  return typeof value === 'string' && (ENVELOPE_TYPES as readonly string[]).includes(value);
}

/** `activation-request` → `ACTIVATION REQUEST`. */
export function armorLabel(typ: EnvelopeType): string {
  return typ.toUpperCase().replaceAll('-', ' ');
}

/** The exact bytes that are signed. */
export function signingInput(typ: EnvelopeType, kid: string, payloadBytes: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${SIGNING_DOMAIN}\n${typ}\n${kid}\n`, 'ascii'), payloadBytes]);
}

// ---------------------------------------------------------------------------------------------
// Encoding and decoding (no keys involved)

/** The armoured text of an envelope: LF line endings, base64 wrapped at 64 columns, final newline. */
export function encodeEnvelope(envelope: DecodedEnvelope): string {
  const json = JSON.stringify({
    v: ENVELOPE_VERSION,
    typ: envelope.typ,
    alg: ENVELOPE_ALG,
    kid: envelope.kid,
    payload: encodeBase64url(envelope.payloadBytes),
    sig: encodeBase64url(envelope.signature),
  });
  const body = encodeBase64(Buffer.from(json, 'utf8')).match(/.{1,64}/g) ?? [];
  const label = armorLabel(envelope.typ);
  return [`-----BEGIN PORTICO ${label}-----`, ...body, `-----END PORTICO ${label}-----`, ''].join('\n');
}

/**
 * Takes an armoured envelope apart and checks its form (size, armour, encodings, exact schema,
 * label = typ). It does not verify the signature: use verifyEnvelope or verifyDeviceSigned for that.
 * Text around the armour, CRLF line endings and any whitespace inside the base64 are tolerated.
 */
export function decodeEnvelope(input: string | Uint8Array): DecodedEnvelope {
  const size = typeof input === 'string' ? input.length : input.byteLength;
  if (size > ENVELOPE_LIMITS.armoredChars) {
    throw new EnvelopeError('too_large', `the artifact is larger than ${ENVELOPE_LIMITS.armoredChars} bytes`);
  }
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('utf8');
  const { label, body } = unarmor(text);

  const envelopeBytes = decodeBase64(body.replace(/[ \t\r\n]/g, ''), 'the armoured body');
  if (envelopeBytes.length === 0) throw new EnvelopeError('armor', 'the armour is empty');
  if (envelopeBytes.length > ENVELOPE_LIMITS.envelopeBytes) {
    throw new EnvelopeError('too_large', `the envelope is larger than ${ENVELOPE_LIMITS.envelopeBytes} bytes`);
  }
  // The envelope is flat: depth 1 is enough and refuses nesting before the schema check does.
  const parsed = parseJsonStrict(decodeUtf8(envelopeBytes, 'the envelope'), 'the envelope', 1);
  if (!isJsonObject(parsed)) throw new EnvelopeError('schema', 'the envelope is not a JSON object');

  if (typeof parsed.v !== 'number') throw new EnvelopeError('schema', 'the envelope has no version number "v"');
  if (parsed.v !== ENVELOPE_VERSION) {
    throw new EnvelopeError(
      'version',
      `envelope version ${parsed.v} is not supported (this code reads version ${ENVELOPE_VERSION})`,
    );
  }
  for (const key of Object.keys(parsed)) {
    if (!(ENVELOPE_FIELDS as readonly string[]).includes(key))
      throw new EnvelopeError('schema', `unknown envelope field "${key}"`);
  }
  const { typ, alg, kid, payload, sig } = parsed;
  if (typeof typ !== 'string') throw new EnvelopeError('schema', 'envelope field "typ" must be a string');
  if (typeof alg !== 'string') throw new EnvelopeError('schema', 'envelope field "alg" must be a string');
  if (typeof kid !== 'string') throw new EnvelopeError('schema', 'envelope field "kid" must be a string');
  if (typeof payload !== 'string') throw new EnvelopeError('schema', 'envelope field "payload" must be a string');
  if (typeof sig !== 'string') throw new EnvelopeError('schema', 'envelope field "sig" must be a string');
  if (alg !== ENVELOPE_ALG)
    throw new EnvelopeError('schema', `unsupported algorithm "${alg}" (expected ${ENVELOPE_ALG})`);
  if (!KID.test(kid)) throw new EnvelopeError('schema', 'envelope field "kid" is not a valid key id');
  if (!isEnvelopeType(typ)) throw new EnvelopeError('type', `unknown artifact type "${typ}"`);
  if (armorLabel(typ) !== label) {
    throw new EnvelopeError('armor', `the armour says ${label} but the envelope contains a ${typ}`);
  }

  const payloadBytes = decodeBase64url(payload, 'envelope field "payload"');
  if (payloadBytes.length > ENVELOPE_LIMITS.payloadBytes) {
    throw new EnvelopeError('too_large', `the payload is larger than ${ENVELOPE_LIMITS.payloadBytes} bytes`);
  }
  const signature = decodeBase64url(sig, 'envelope field "sig"', SIGNATURE_BYTES);
  return { typ, kid, payloadBytes, signature };
}

const BEGIN = /-----BEGIN PORTICO ([^\r\n]*?)-----/g;

function unarmor(text: string): { label: string; body: string } {
  const begins = [...text.matchAll(BEGIN)];
  if (begins.length === 0) throw new EnvelopeError('armor', 'no "-----BEGIN PORTICO …-----" line found');
  if (begins.length > 1) throw new EnvelopeError('armor', 'more than one Portico artifact in one text');
  const [begin] = begins;
  const label = begin[1];
  if (!ENVELOPE_TYPES.some((t) => armorLabel(t) === label)) {
    throw new EnvelopeError('type', `unknown artifact type "${label.slice(0, 40)}"`);
  }
  const bodyStart = begin.index + begin[0].length;
  const end = text.indexOf(`-----END PORTICO ${label}-----`, bodyStart);
  if (end < 0) throw new EnvelopeError('armor', `no "-----END PORTICO ${label}-----" line found`);
  return { label, body: text.slice(bodyStart, end) };
}

// ---------------------------------------------------------------------------------------------
// Signing and verifying

/** Signs `payload` (a plain object, serialised with JSON.stringify) and returns the armoured text. */
export function signEnvelope(typ: EnvelopeType, kid: string, payload: object, privateKey: KeyInput): string {
  if (!isEnvelopeType(typ)) throw new EnvelopeError('type', `unknown artifact type "${String(typ)}"`);
  if (!KID.test(kid)) throw new EnvelopeError('schema', `"${kid}" is not a valid key id`);
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
    throw new EnvelopeError('schema', 'the payload must be a JSON object');
  }
  const key = ed25519Key(privateKey, 'private');
  const payloadText = JSON.stringify(payload);
  const payloadBytes = Buffer.from(payloadText, 'utf8');
  if (payloadBytes.length > ENVELOPE_LIMITS.payloadBytes) {
    throw new EnvelopeError('too_large', `the payload is larger than ${ENVELOPE_LIMITS.payloadBytes} bytes`);
  }
  // Never produce what no verifier would read back (forbidden keys, nesting too deep).
  const readBack = readPayload(payloadBytes);
  if (kid === DEVICE_KID && readBack.devicePublicKey !== devicePublicKeyString(key)) {
    throw new EnvelopeError('key', 'a device-signed payload must carry the signing key as "devicePublicKey"');
  }
  const signature = crypto.sign(null, signingInput(typ, kid, payloadBytes), key);
  return encodeEnvelope({ typ, kid, payloadBytes, signature });
}

/**
 * Verifies an envelope signed by one of `trustedKeys` and returns its parsed payload. The payload
 * is read only after the signature verified.
 */
export function verifyEnvelope(input: string | Uint8Array, options: VerifyOptions): VerifiedEnvelope {
  const envelope = decodeEnvelope(input);
  expectType(envelope.typ, options.expectedType);
  if (envelope.kid === DEVICE_KID) {
    throw new EnvelopeError('kid_unknown', 'the artifact is signed by a device key, not by a key this verifier trusts');
  }
  const key = options.trustedKeys.get(envelope.kid);
  if (key === undefined)
    throw new EnvelopeError('kid_unknown', `the artifact is signed by key "${envelope.kid}", which is not trusted`);
  checkSignature(envelope, ed25519Key(key, 'public'));
  return { typ: envelope.typ, kid: envelope.kid, payload: readPayload(envelope.payloadBytes) };
}

/**
 * Verifies an envelope a device signed (kid `device`) with the key in its own payload field
 * `devicePublicKey`. This proves the payload is intact and that the sender holds that key; whether
 * the key is the right one (the one registered at activation) is for the caller to check, e.g. by
 * comparing `payload.devicePublicKey` with the stored string (the encoding is canonical).
 */
export function verifyDeviceSigned(
  input: string | Uint8Array,
  expectedType: EnvelopeType | readonly EnvelopeType[],
): VerifiedEnvelope {
  const envelope = decodeEnvelope(input);
  expectType(envelope.typ, expectedType);
  if (envelope.kid !== DEVICE_KID) {
    throw new EnvelopeError('kid_unknown', `the artifact is signed by key "${envelope.kid}", not by a device key`);
  }
  const payload = readPayload(envelope.payloadBytes);
  if (typeof payload.devicePublicKey !== 'string') {
    throw new EnvelopeError('schema', 'a device-signed payload must carry "devicePublicKey" as a string');
  }
  checkSignature(envelope, devicePublicKeyFromString(payload.devicePublicKey));
  return { typ: envelope.typ, kid: envelope.kid, payload };
}

/** The fixed start of an Ed25519 public key's SPKI DER encoding; the raw 32-byte key follows it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * The raw 32 bytes of an Ed25519 public key, from its SPKI DER encoding. Not through a JWK export:
 * on Node 20.20 exporting an Ed25519 key object as JWK can deadlock the process for good when a
 * garbage collection in the middle of it finalises another key object sharing the same native key
 * (docs/performance.md).
 */
export function rawEd25519PublicKey(publicKey: KeyObject): Buffer {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  if (
    der.length !== ED25519_SPKI_PREFIX.length + ED25519_PUBLIC_KEY_BYTES ||
    !der.subarray(0, ED25519_SPKI_PREFIX.length).equals(ED25519_SPKI_PREFIX)
  )
    throw new EnvelopeError('key', 'not an Ed25519 key');
  return der.subarray(ED25519_SPKI_PREFIX.length);
}

/** A device public key as it travels in payloads: its raw 32 bytes, base64url without padding (43 characters). */
export function devicePublicKeyString(key: KeyInput): string {
  return rawEd25519PublicKey(ed25519Key(key, 'public')).toString('base64url');
}

export function devicePublicKeyFromString(text: string): KeyObject {
  const raw = decodeBase64url(text, '"devicePublicKey"', ED25519_PUBLIC_KEY_BYTES);
  try {
    return crypto.createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
  } catch {
    throw new EnvelopeError('key', '"devicePublicKey" is not an Ed25519 public key');
  }
}

function expectType(typ: EnvelopeType, expected: EnvelopeType | readonly EnvelopeType[]): void {
  const allowed: readonly EnvelopeType[] = typeof expected === 'string' ? [expected] : expected;
  if (!allowed.includes(typ)) {
    throw new EnvelopeError('type', `expected ${allowed.map((t) => `a ${t}`).join(' or ')}, got a ${typ}`);
  }
}

function checkSignature(envelope: DecodedEnvelope, publicKey: KeyObject): void {
  const ok = crypto.verify(
    null,
    signingInput(envelope.typ, envelope.kid, envelope.payloadBytes),
    publicKey,
    envelope.signature,
  );
  if (!ok)
    throw new EnvelopeError(
      'signature',
      'the signature does not verify: the artifact was altered or not signed by this key',
    );
}

function readPayload(bytes: Uint8Array): JsonObject {
  const payload = parseJsonStrict(decodeUtf8(bytes, 'the payload'), 'the payload', ENVELOPE_LIMITS.payloadDepth);
  if (!isJsonObject(payload)) throw new EnvelopeError('schema', 'the payload is not a JSON object');
  return payload;
}

/** A KeyObject of the wanted kind from a KeyObject or PEM; a private key also yields its public half. */
function ed25519Key(input: KeyInput, kind: 'public' | 'private'): KeyObject {
  let key: KeyObject;
  try {
    if (typeof input === 'string')
      key = kind === 'public' ? crypto.createPublicKey(input) : crypto.createPrivateKey(input);
    else key = kind === 'public' && input.type === 'private' ? crypto.createPublicKey(input) : input;
  } catch {
    throw new EnvelopeError('key', `not a readable ${kind} key`);
  }
  if (key.asymmetricKeyType !== 'ed25519' || key.type !== kind)
    throw new EnvelopeError('key', `not an Ed25519 ${kind} key`);
  return key;
}
