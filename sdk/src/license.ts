import crypto, { type KeyObject } from 'node:crypto';
import { decodeEnvelope, devicePublicKeyString, verifyEnvelope, type KeyInput } from './envelope.ts';
import { parseJsonStrict } from './json.ts';
import { LicenseError, asLicenseError } from './license-error.ts';
import { readLicensePayload, type LicensePayload } from './payloads.ts';

/** Verifying license and refresh files on the device. */

export const LICENSE_TYPES = ['license', 'refresh'] as const;
export type LicenseFileType = (typeof LICENSE_TYPES)[number];

/** A verified license or refresh file: its payload, its type and the kid of the key that signed it. */
export interface LicenseInfo extends LicensePayload {
  typ: LicenseFileType;
  kid: string;
}

export interface VerifyLicenseOptions {
  /** kid → public key of every server key the device trusts (see trustedKeysFromWellKnown). */
  trustedKeys: ReadonlyMap<string, KeyInput>;
  /** The product code the application is. */
  product: string;
  /** This machine's hardware id, as sent in the request. */
  hardwareId: string;
  /** This device's public key: the 43-character payload string, a KeyObject or an SPKI PEM. */
  devicePublicKey: KeyInput;
  /** The nonce of the activation request this file should answer (when the device has it). */
  requestNonce?: string;
  now?: Date;
  /** How far the device's clock may be behind the server's: tolerated for issuedAt and startsAt. */
  skewSeconds?: number;
  /**
   * false skips the date checks (issued at, start, expiry, lease) but keeps every other one: to
   * read an expired license back, e.g. to deactivate it or to apply a refresh file to it.
   */
  checkDates?: boolean;
}

export const DEFAULT_SKEW_SECONDS = 300;

/**
 * Verifies a license (or refresh) file: the signature by a trusted kid, the payload schema, that it
 * is for this product, hardware id and device key (and request, when `requestNonce` is given), and
 * that it is valid now. Every refusal is a LicenseError with a stable code.
 */
export function verifyLicense(text: string | Uint8Array, options: VerifyLicenseOptions): LicenseInfo {
  const envelope = asLicenseError(() =>
    verifyEnvelope(text, { expectedType: LICENSE_TYPES, trustedKeys: options.trustedKeys }),
  );
  const license: LicenseInfo = {
    ...readLicensePayload(envelope.payload),
    typ: envelope.typ as LicenseFileType,
    kid: envelope.kid,
  };

  if (license.product !== options.product) {
    throw new LicenseError('product', `the license is for product "${license.product}", not "${options.product}"`);
  }
  if (license.hardwareId !== options.hardwareId) {
    throw new LicenseError(
      'hardware',
      `the license is for another machine (hardware id "${license.hardwareId}", this one is "${options.hardwareId}")`,
    );
  }
  if (license.devicePublicKey !== devicePublicKeyText(options.devicePublicKey)) {
    throw new LicenseError(
      'device_key',
      'the license is bound to another device key: it was made for a request from another installation',
    );
  }
  if (options.requestNonce !== undefined && license.requestNonce !== options.requestNonce) {
    throw new LicenseError('nonce', 'the license answers another activation request than the last one made here');
  }
  if (options.checkDates !== false)
    checkDates(license, options.now ?? new Date(), (options.skewSeconds ?? DEFAULT_SKEW_SECONDS) * 1000);
  return license;
}

function checkDates(license: LicensePayload, now: Date, skewMs: number): void {
  const t = now.getTime();
  if (Date.parse(license.issuedAt) > t + skewMs) {
    throw new LicenseError(
      'issued_in_future',
      `the license was issued at ${license.issuedAt}, later than now: check this machine's clock`,
    );
  }
  if (license.startsAt !== null && Date.parse(license.startsAt) > t + skewMs) {
    throw new LicenseError('not_yet_valid', `the license starts at ${license.startsAt}`);
  }
  if (license.expiresAt !== null && Date.parse(license.expiresAt) <= t) {
    throw new LicenseError('expired', `the license expired at ${license.expiresAt}`);
  }
  if (Date.parse(license.leaseEndsAt) <= t) {
    throw new LicenseError(
      'lease_expired',
      `the offline lease ended at ${license.leaseEndsAt}: a refresh file from the portal renews it`,
    );
  }
}

function devicePublicKeyText(key: KeyInput): string {
  return typeof key === 'string' && !key.includes('-----BEGIN')
    ? key
    : asLicenseError(() => devicePublicKeyString(key));
}

export type ApplyRefreshOptions = Pick<VerifyLicenseOptions, 'trustedKeys' | 'now' | 'skewSeconds'>;

/**
 * The license after a refresh file: accepted only when it continues the same activation (license,
 * activation, hardware id, device key) with a greater counter, and is valid now. `current` may have
 * expired (that is what refresh files are for).
 */
export function applyRefresh(
  current: LicenseInfo,
  refreshText: string | Uint8Array,
  options: ApplyRefreshOptions,
): LicenseInfo {
  const next = verifyLicense(refreshText, {
    ...options,
    product: current.product,
    hardwareId: current.hardwareId,
    devicePublicKey: current.devicePublicKey,
  });
  if (next.licenseId !== current.licenseId || next.activationId !== current.activationId) {
    throw new LicenseError(
      'activation',
      `the refresh file is for license ${next.licenseId}, activation ${next.activationId}; the installed license is ${current.licenseId}, activation ${current.activationId}`,
    );
  }
  if (next.counter <= current.counter) {
    throw new LicenseError(
      'counter',
      `the file is not newer than the installed license (its counter is ${next.counter}, the installed one's ${current.counter})`,
    );
  }
  return next;
}

/**
 * What a device remembers of the newest license or refresh file it installed for one activation,
 * so that no older file is installed again even after the installed one was deleted or given back.
 */
export interface LicenseMark {
  licenseId: number;
  activationId: number;
  /** The highest counter installed for this activation. */
  counter: number;
  /** SHA-256 (hex) of that file's signed payload bytes: another file with the same counter is not the same file. */
  payloadSha256: string;
  /** Deactivated on this device: no file of this activation is installed again. */
  closed: boolean;
}

/** The mark of a verified license or refresh file (`license` is what verifyLicense made of `text`). */
export function licenseMark(license: LicenseInfo, text: string | Uint8Array, closed = false): LicenseMark {
  const payloadBytes = asLicenseError(() => decodeEnvelope(text)).payloadBytes;
  return {
    licenseId: license.licenseId,
    activationId: license.activationId,
    counter: license.counter,
    payloadSha256: crypto.createHash('sha256').update(payloadBytes).digest('hex'),
    closed,
  };
}

const sameActivation = (
  a: Pick<LicenseMark, 'licenseId' | 'activationId'>,
  b: Pick<LicenseMark, 'licenseId' | 'activationId'>,
) => a.licenseId === b.licenseId && a.activationId === b.activationId;

/**
 * The one rule every way of installing a license or refresh file goes through: the device never
 * installs a file older than one it has had. Against `history` (the marks of what it installed),
 * a file of the same activation (license and activation id) is refused (`counter`) when its
 * counter is lower than the highest installed, when it has that counter but another payload, or
 * when the device has deactivated that activation. The same file again is accepted (installing it
 * changes nothing); a file of another activation (a new activation after a deactivation) is
 * accepted. Returns the history to store with `next` installed.
 */
export function checkNotOlder(
  history: readonly LicenseMark[],
  next: LicenseInfo,
  nextText: string | Uint8Array,
): LicenseMark[] {
  const mark = licenseMark(next, nextText);
  const seen = history.find((m) => sameActivation(m, mark));
  const which = `license ${next.licenseId}, activation ${next.activationId}`;
  if (seen?.closed) {
    throw new LicenseError(
      'counter',
      `${which} was deactivated on this device: none of its files is installed again (a new activation gives a new file)`,
    );
  }
  if (seen !== undefined && mark.counter < seen.counter) {
    throw new LicenseError(
      'counter',
      `the file is older than one this device has installed for ${which} (its counter is ${mark.counter}, the device has had ${seen.counter}): an older file is never installed again`,
    );
  }
  if (seen !== undefined && mark.counter === seen.counter && mark.payloadSha256 !== seen.payloadSha256) {
    throw new LicenseError(
      'counter',
      `the file has counter ${mark.counter} of ${which}, as the one installed, but says something else: only one file per counter is installed`,
    );
  }
  return [...history.filter((m) => m !== seen), mark];
}

/** The history after the device gave `license` back (deactivated it): that activation is closed for good. */
export function closeActivation(
  history: readonly LicenseMark[],
  license: LicenseInfo,
  text: string | Uint8Array,
): LicenseMark[] {
  const seen = history.find((m) => sameActivation(m, license));
  const closed =
    seen !== undefined && seen.counter > license.counter ? { ...seen, closed: true } : licenseMark(license, text, true);
  return [...history.filter((m) => m !== seen), closed];
}

const KID = /^[A-Za-z0-9_-]{1,64}$/;
const TRUSTED_STATUSES = new Set(['active', 'trusted']);

/**
 * kid → public key from the server's `/.well-known/portico-keys.json` (the text or the parsed
 * JSON). Keys whose `status` is not `active` or `trusted` (a retired key) are left out; a key whose
 * JWK `x` contradicts its PEM is refused. Refuses a document without any usable key.
 */
export function trustedKeysFromWellKnown(json: unknown): Map<string, KeyObject> {
  const doc = typeof json === 'string' ? asLicenseError(() => parseJsonStrict(json, 'the key document', 8)) : json;
  const keys =
    typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? (doc as Record<string, unknown>).keys : undefined;
  if (!Array.isArray(keys)) throw new LicenseError('schema', 'the key document has no "keys" array');
  const trusted = new Map<string, KeyObject>();
  for (const [i, entry] of keys.entries()) {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry))
      throw new LicenseError('schema', `keys[${i}] is not an object`);
    const { kid, pem, status, x } = entry as Record<string, unknown>;
    if (typeof kid !== 'string' || !KID.test(kid)) throw new LicenseError('schema', `keys[${i}] has no valid "kid"`);
    if (status !== undefined && !TRUSTED_STATUSES.has(String(status))) continue;
    if (typeof pem !== 'string') throw new LicenseError('schema', `key "${kid}" has no "pem"`);
    let key: KeyObject;
    try {
      key = crypto.createPublicKey(pem);
    } catch {
      throw new LicenseError('key', `key "${kid}" is not a readable public key`);
    }
    if (key.asymmetricKeyType !== 'ed25519') throw new LicenseError('key', `key "${kid}" is not an Ed25519 key`);
    if (x !== undefined && x !== devicePublicKeyString(key))
      throw new LicenseError('key', `key "${kid}": its "x" and its "pem" are different keys`);
    if (trusted.has(kid)) throw new LicenseError('schema', `key "${kid}" is listed twice`);
    trusted.set(kid, key);
  }
  if (trusted.size === 0) throw new LicenseError('schema', 'the key document lists no active or trusted key');
  return trusted;
}
