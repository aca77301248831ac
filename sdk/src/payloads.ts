import type { JsonObject, JsonValue } from './json.ts';
import { LicenseError } from './license-error.ts';

/**
 * The payloads inside the envelopes (docs/file-formats.md, "Payloads"), with strict readers. The
 * server reads requests and the SDK reads licenses and receipts with these same functions, so both
 * sides agree on every field. A reader checks that each known field is present with its exact type
 * and form, and returns only the known fields: fields a newer writer adds within version 1 are
 * ignored, a change that old readers must not ignore gets a new `v`.
 */

export const PAYLOAD_VERSION = 1;

export const PAYLOAD_LIMITS = {
  code: 64,
  hardwareId: 128,
  licenseKey: 64,
  voucher: 64,
  email: 254,
  hostname: 255,
  os: 128,
  appVersion: 64,
  features: 1000,
  usage: 100,
  /** Entries of one usage report (docs/file-formats.md, "Usage report"). */
  reportEntries: 100,
  /** One consumption (a `consumption-request`, a usage log entry). */
  amount: 1_000_000_000,
} as const;

/** Product and feature codes (≤ 64 characters): letters and digits in groups joined by single dashes. */
export const CODE_PATTERN = /^[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*$/;
export const HARDWARE_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
/** 16 bytes, base64url without padding: 22 characters, the last one carrying 2 bits and 4 zero bits. */
export const NONCE_PATTERN = /^[A-Za-z0-9_-]{21}[AQgw]$/;
/** 32 bytes, base64url without padding: 43 characters, the last one carrying 4 bits and 2 zero bits. */
export const DEVICE_PUBLIC_KEY_PATTERN = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
/** Printable ASCII without spaces at either end (what a person types, unnormalised). */
const LICENSE_KEY_PATTERN = /^[!-~](?:[ -~]*[!-~])?$/;
const EMAIL_PATTERN = /^[^\s@]+@[^\s@]+$/;
const WORD_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses.
const NO_CONTROL_CHARACTERS = /^[^\u0000-\u001f\u007f]+$/;
const ISO_UTC = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?Z$/;

// ---------------------------------------------------------------------------------------------
// Types

export interface ActivationRequestPayload {
  v: 1;
  product: string;
  licenseKey: string | null;
  user: string | null;
  hardwareId: string;
  hostname: string | null;
  os: string | null;
  appVersion: string | null;
  devicePublicKey: string;
  nonce: string;
  createdAt: string;
  /**
   * A redeemable code (optional, absent from requests without one): the server redeems it into a new
   * license and activates that license; such a request names no licenseKey. Read as absent when null.
   */
  voucher?: string;
}

export interface LicenseFeature {
  code: string;
  /** `activation` or `consumption` (other words may be added). */
  type: string;
  maxConsumption: number | null;
}

/** What a `license` and a `refresh` file say. Dates are ISO 8601 strings in UTC. */
export interface LicensePayload {
  v: 1;
  product: string;
  licenseId: number;
  licenseKey: string | null;
  user: string | null;
  activationId: number;
  hardwareId: string;
  devicePublicKey: string;
  /** The nonce of the activation request this activation answered. */
  requestNonce: string;
  issuedAt: string;
  /** 0 for the first license file, one more for every refresh file. */
  counter: number;
  /** `perpetual`, `time-limited`, `subscription` or `consumption` (other words may be added). */
  licenseType: string;
  trial: boolean;
  startsAt: string | null;
  expiresAt: string | null;
  /** The offline lease: after it the license needs a refresh file. */
  leaseEndsAt: string;
  maintenanceUntil: string | null;
  /** null = unlimited. */
  maxActivations: number | null;
  floating: { users: number; timeoutMinutes: number } | null;
  features: LicenseFeature[];
}

export interface UsageEntry {
  feature: string;
  amount: number;
}

/**
 * What every device-signed request after activation names: the activation it speaks for and the
 * device that holds it (checked against the stored device), with a fresh nonce and its time.
 */
export interface ActivationBinding {
  v: 1;
  product: string;
  licenseId: number;
  activationId: number;
  hardwareId: string;
  devicePublicKey: string;
  nonce: string;
  createdAt: string;
}

export interface DeactivationRequestPayload extends ActivationBinding {
  /** The requestNonce of the license file being given back. */
  activationNonce: string;
  usage: UsageEntry[];
}

/** An online check (License API): the device proves it still holds its activation. */
export type CheckRequestPayload = ActivationBinding;

/** A consumption (License API `consume`): `amount` units of a consumption feature, counted once by `nonce`. */
export interface ConsumptionRequestPayload extends ActivationBinding {
  feature: string;
  amount: number;
}

/** One entry of a device's usage log: chained to the previous entry by `prev` (its hash). */
export interface UsageLogEntry {
  counter: number;
  at: string;
  /** `consumption` (amount units of feature), `feature` (feature used amount times), `seats` (peak seats in use). */
  kind: 'consumption' | 'feature' | 'seats';
  feature: string | null;
  amount: number;
  prev: string;
  hash: string;
}

/** A usage report: the device-signed entries of its log since the last accepted report. */
export interface UsageReportPayload extends ActivationBinding {
  /** The requestNonce of the installed license (as a deactivation request names it). */
  activationNonce: string;
  /** The license file counter installed when the report was made. */
  licenseCounter: number;
  entries: UsageLogEntry[];
}

export interface DeactivationReceiptPayload {
  v: 1;
  licenseId: number;
  activationId: number;
  hardwareId: string;
  /** The nonce of the deactivation request this receipt answers. */
  deactivationNonce: string;
  deactivatedAt: string;
}

// ---------------------------------------------------------------------------------------------
// Checks: each takes a value and the path used in the message, and returns it typed or throws.

type Check<T> = (value: JsonValue | undefined, path: string) => T;

function refuse(path: string, expected: string): never {
  throw new LicenseError('schema', `the payload field "${path}" must be ${expected}`);
}

const text =
  (pattern: RegExp, expected: string, maxLength = Infinity): Check<string> =>
  (value, path) =>
    typeof value === 'string' && value.length <= maxLength && pattern.test(value) ? value : refuse(path, expected);

const integer =
  (min: number): Check<number> =>
  (value, path) =>
    typeof value === 'number' && Number.isSafeInteger(value) && value >= min
      ? value
      : refuse(path, `an integer ≥ ${min}`);

const boolean: Check<boolean> = (value, path) => (typeof value === 'boolean' ? value : refuse(path, 'true or false'));

const version: Check<1> = (value, path) => {
  if (typeof value !== 'number') refuse(path, `the number ${PAYLOAD_VERSION}`);
  if (value !== PAYLOAD_VERSION) {
    throw new LicenseError(
      'schema',
      `payload version ${value} is not supported (this code reads version ${PAYLOAD_VERSION})`,
    );
  }
  return 1;
};

const nullable =
  <T>(check: Check<T>): Check<T | null> =>
  (value, path) =>
    value === null ? null : check(value, path);

const arrayOf =
  <T>(check: Check<T>, maxItems: number): Check<T[]> =>
  (value, path) => {
    if (!Array.isArray(value)) refuse(path, 'an array');
    if (value.length > maxItems) refuse(path, `an array of at most ${maxItems} items`);
    return value.map((item, i) => check(item, `${path}[${i}]`));
  };

type Shape = Record<string, Check<unknown>>;
type Shaped<S extends Shape> = { [K in keyof S]: ReturnType<S[K]> };

const object =
  <S extends Shape>(shape: S): Check<Shaped<S>> =>
  (value, path) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) refuse(path, 'an object');
    const out: Record<string, unknown> = {};
    for (const [name, check] of Object.entries(shape)) {
      const fieldPath = path ? `${path}.${name}` : name;
      if (!Object.hasOwn(value, name)) throw new LicenseError('schema', `the payload has no field "${fieldPath}"`);
      out[name] = check((value as JsonObject)[name], fieldPath);
    }
    return out as Shaped<S>;
  };

/** An ISO 8601 date-time in UTC (`Z`) that names a real instant (no 31 February). */
export function isIsoUtc(value: string): boolean {
  const m = ISO_UTC.exec(value);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  return (
    date.getUTCFullYear() === year &&
    date.getUTCMonth() === month - 1 &&
    date.getUTCDate() === day &&
    date.getUTCHours() === hour &&
    date.getUTCMinutes() === minute &&
    date.getUTCSeconds() === second
  );
}

const code = text(CODE_PATTERN, 'a code (letters and digits, groups joined by "-")', PAYLOAD_LIMITS.code);
const hardwareId = text(HARDWARE_ID_PATTERN, 'a hardware id (1–128 characters of A–Z a–z 0–9 . _ : -)');
const nonce = text(NONCE_PATTERN, 'a nonce (16 bytes, base64url)');
const devicePublicKey = text(DEVICE_PUBLIC_KEY_PATTERN, 'a device public key (32 bytes, base64url)');
const licenseKey = text(LICENSE_KEY_PATTERN, 'a license key (printable characters)', PAYLOAD_LIMITS.licenseKey);
const voucher = text(LICENSE_KEY_PATTERN, 'a redeemable code (printable characters)', PAYLOAD_LIMITS.voucher);
const email = text(EMAIL_PATTERN, 'an e-mail address', PAYLOAD_LIMITS.email);
const word = text(WORD_PATTERN, 'a lowercase word');
const date: Check<string> = (value, path) =>
  typeof value === 'string' && isIsoUtc(value) ? value : refuse(path, 'an ISO 8601 date-time in UTC');
const label = (maxLength: number) =>
  text(NO_CONTROL_CHARACTERS, `1–${maxLength} characters without control characters`, maxLength);
const id = integer(1);

const activationRequestShape = object({
  v: version,
  product: code,
  licenseKey: nullable(licenseKey),
  user: nullable(email),
  hardwareId,
  hostname: nullable(label(PAYLOAD_LIMITS.hostname)),
  os: nullable(label(PAYLOAD_LIMITS.os)),
  appVersion: nullable(label(PAYLOAD_LIMITS.appVersion)),
  devicePublicKey,
  nonce,
  createdAt: date,
});

const licenseShape = object({
  v: version,
  product: code,
  licenseId: id,
  licenseKey: nullable(licenseKey),
  user: nullable(email),
  activationId: id,
  hardwareId,
  devicePublicKey,
  requestNonce: nonce,
  issuedAt: date,
  counter: integer(0),
  licenseType: word,
  trial: boolean,
  startsAt: nullable(date),
  expiresAt: nullable(date),
  leaseEndsAt: date,
  maintenanceUntil: nullable(date),
  maxActivations: nullable(integer(0)),
  floating: nullable(object({ users: integer(1), timeoutMinutes: integer(1) })),
  features: arrayOf(object({ code, type: word, maxConsumption: nullable(integer(0)) }), PAYLOAD_LIMITS.features),
});

const usageShape = arrayOf(object({ feature: code, amount: integer(0) }), PAYLOAD_LIMITS.usage);

/** The fields of an ActivationBinding, in their order in the signed payloads: the device part… */
const bindingDevice = { v: version, product: code, licenseId: id, activationId: id, hardwareId, devicePublicKey };
/** …and the fresh part (some payloads put the activation's nonce between the two). */
const bindingFresh = { nonce, createdAt: date };

const deactivationRequestShape = object({
  ...bindingDevice,
  activationNonce: nonce,
  ...bindingFresh,
  usage: usageShape,
});

const checkRequestShape = object({
  ...bindingDevice,
  ...bindingFresh,
});

const consumptionRequestShape = object({
  ...bindingDevice,
  ...bindingFresh,
  feature: code,
  amount: integer(1),
});

const HASH = /^[0-9a-f]{64}$/;
const hash = text(HASH, '64 lowercase hex digits (SHA-256)');
const entryKind: Check<UsageLogEntry['kind']> = (value, path) =>
  value === 'consumption' || value === 'feature' || value === 'seats'
    ? value
    : refuse(path, '"consumption", "feature" or "seats"');

export const usageEntryShape = object({
  counter: integer(1),
  at: date,
  kind: entryKind,
  feature: nullable(code),
  amount: integer(0),
  prev: hash,
  hash,
});

const usageReportShape = object({
  ...bindingDevice,
  activationNonce: nonce,
  ...bindingFresh,
  licenseCounter: integer(0),
  entries: arrayOf(usageEntryShape, PAYLOAD_LIMITS.reportEntries),
});

const deactivationReceiptShape = object({
  v: version,
  licenseId: id,
  activationId: id,
  hardwareId,
  deactivationNonce: nonce,
  deactivatedAt: date,
});

// ---------------------------------------------------------------------------------------------
// Readers (every refusal is LicenseError 'schema')

export function readActivationRequestPayload(payload: JsonObject): ActivationRequestPayload {
  const p = activationRequestShape(payload, '');
  // Optional: requests made before codes existed have no such field.
  const code = Object.hasOwn(payload, 'voucher') ? nullable(voucher)(payload.voucher, 'voucher') : null;
  if (code !== null) {
    if (p.licenseKey !== null)
      throw new LicenseError('schema', 'an activation request with a "voucher" names no "licenseKey"');
  } else if ((p.licenseKey === null) === (p.user === null)) {
    throw new LicenseError('schema', 'an activation request names exactly one of "licenseKey" and "user"');
  }
  return code === null ? p : { ...p, voucher: code };
}

export function readLicensePayload(payload: JsonObject): LicensePayload {
  return licenseShape(payload, '');
}

export function readDeactivationRequestPayload(payload: JsonObject): DeactivationRequestPayload {
  const p = deactivationRequestShape(payload, '');
  checkUsage(p.usage);
  return p;
}

export function readCheckRequestPayload(payload: JsonObject): CheckRequestPayload {
  return checkRequestShape(payload, '');
}

export function readConsumptionRequestPayload(payload: JsonObject): ConsumptionRequestPayload {
  const p = consumptionRequestShape(payload, '');
  if (p.amount > PAYLOAD_LIMITS.amount) refuse('amount', `at most ${PAYLOAD_LIMITS.amount}`);
  return p;
}

/** A usage report's shape; whether its entries chain is for checkUsageChain (usage.ts) to say. */
export function readUsageReportPayload(payload: JsonObject): UsageReportPayload {
  const p = usageReportShape(payload, '');
  if (!p.entries.length) refuse('entries', 'an array of at least one entry');
  p.entries.forEach((e, i) => {
    if (e.amount > PAYLOAD_LIMITS.amount) refuse(`entries[${i}].amount`, `at most ${PAYLOAD_LIMITS.amount}`);
    if ((e.kind === 'seats') !== (e.feature === null))
      refuse(`entries[${i}].feature`, 'null for "seats" and a feature code otherwise');
  });
  return p;
}

export function readDeactivationReceiptPayload(payload: JsonObject): DeactivationReceiptPayload {
  return deactivationReceiptShape(payload, '');
}

/** Usage entries as the request builder takes them: each feature at most once. */
export function checkUsage(usage: readonly UsageEntry[]): UsageEntry[] {
  const entries = usageShape(usage as unknown as JsonValue, 'usage');
  const seen = new Set<string>();
  for (const entry of entries) {
    if (seen.has(entry.feature))
      throw new LicenseError('schema', `the usage of feature "${entry.feature}" is given twice`);
    seen.add(entry.feature);
  }
  return entries;
}

/** Reads a payload the SDK is about to sign: what no reader would accept is a bad argument (LicenseError 'input'). */
export function checkOutgoing<T>(read: (payload: JsonObject) => T, payload: object): T {
  try {
    return read(payload as JsonObject);
  } catch (err) {
    if (err instanceof LicenseError && err.code === 'schema')
      throw new LicenseError('input', `invalid argument: ${err.message}`, { cause: err });
    throw err;
  }
}
