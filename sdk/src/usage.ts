import crypto from 'node:crypto';
import type { DeviceKey } from './device.ts';
import { DEVICE_KID, signEnvelope } from './envelope.ts';
import { LicenseError, asLicenseError } from './license-error.ts';
import {
  CODE_PATTERN,
  PAYLOAD_LIMITS,
  checkOutgoing,
  readConsumptionRequestPayload,
  readUsageReportPayload,
  type ConsumptionRequestPayload,
  type LicensePayload,
  type UsageLogEntry,
  type UsageReportPayload,
} from './payloads.ts';
import { activationBinding, type CreatedRequest } from './requests.ts';

/**
 * Consumption and the usage log (docs/file-formats.md, "Usage report"): a consumption request for the
 * License API's `consume`, and the device's append-only usage log, each entry numbered (1, 2, 3 …)
 * and chained to the one before by its hash, reported to the portal in device-signed usage reports.
 */

/** The `prev` of entry 1. */
export const USAGE_GENESIS = '0'.repeat(64);
export const USAGE_HASH_DOMAIN = 'PORTICO-USAGE-V1';

export type UsageEntryInput = Pick<UsageLogEntry, 'kind' | 'feature' | 'amount'>;

/**
 * An entry's hash: SHA-256 (lowercase hex) of "PORTICO-USAGE-V1\n" followed by the JSON array
 * [counter, at, kind, feature, amount, prev] (JSON.stringify: no spaces, that order).
 */
export function usageEntryHash(e: Omit<UsageLogEntry, 'hash'>): string {
  const canonical = JSON.stringify([e.counter, e.at, e.kind, e.feature, e.amount, e.prev]);
  return crypto.createHash('sha256').update(`${USAGE_HASH_DOMAIN}\n${canonical}`, 'utf8').digest('hex');
}

/** The entry that follows `last` (or the first one): counter one more, chained to its hash. */
export function nextUsageEntry(last: UsageLogEntry | undefined, input: UsageEntryInput, at: Date): UsageLogEntry {
  if (!['consumption', 'feature', 'seats'].includes(input.kind))
    throw new LicenseError('input', `unknown usage kind "${input.kind}"`);
  if ((input.kind === 'seats') !== (input.feature === null))
    throw new LicenseError('input', 'a seats entry names no feature, the others name one');
  if (input.feature !== null && !CODE_PATTERN.test(input.feature))
    throw new LicenseError('input', `"${input.feature}" is not a feature code`);
  if (!Number.isSafeInteger(input.amount) || input.amount < 0 || input.amount > PAYLOAD_LIMITS.amount)
    throw new LicenseError('input', `the amount must be a whole number from 0 to ${PAYLOAD_LIMITS.amount}`);
  const entry = {
    counter: (last?.counter ?? 0) + 1,
    at: at.toISOString(),
    kind: input.kind,
    feature: input.feature,
    amount: input.amount,
    prev: last?.hash ?? USAGE_GENESIS,
  };
  return { ...entry, hash: usageEntryHash(entry) };
}

/**
 * Why `entries` do not form one unbroken piece of a chain (null when they do): counters one apart,
 * each entry's `prev` the hash of the one before, and each hash the hash of its own fields.
 */
export function usageChainFault(entries: readonly UsageLogEntry[]): string | null {
  for (const [i, e] of entries.entries()) {
    if (usageEntryHash(e) !== e.hash) return `entry ${e.counter} does not match its hash (it was changed)`;
    if (i === 0) {
      if (e.counter === 1 && e.prev !== USAGE_GENESIS) return 'entry 1 does not start the chain';
      continue;
    }
    const before = entries[i - 1]!;
    if (e.counter !== before.counter + 1) return `entry ${e.counter} does not follow entry ${before.counter}`;
    if (e.prev !== before.hash) return `entry ${e.counter} is not chained to entry ${before.counter}`;
  }
  return null;
}

/** The license fields a consumption request or usage report names. */
export type UsageLicenseReference = Pick<
  LicensePayload,
  'product' | 'licenseId' | 'activationId' | 'hardwareId' | 'devicePublicKey' | 'requestNonce' | 'counter'
>;

/** A consumption request (device-signed) for the License API's `consume`; a bad argument is LicenseError 'input'. */
export function createConsumptionRequest(input: {
  license: Omit<UsageLicenseReference, 'requestNonce' | 'counter'>;
  deviceKey: DeviceKey;
  feature: string;
  amount: number;
  now?: Date;
}): CreatedRequest<ConsumptionRequestPayload> {
  const { license, deviceKey } = input;
  const payload = checkOutgoing(readConsumptionRequestPayload, {
    ...activationBinding(license, deviceKey, input.now),
    feature: input.feature,
    amount: input.amount,
  });
  const text = asLicenseError(() => signEnvelope('consumption-request', DEVICE_KID, payload, deviceKey.privateKey));
  return { text, nonce: payload.nonce, payload };
}

/**
 * A usage report (device-signed) of `entries` (consecutive entries of the log, at most
 * PAYLOAD_LIMITS.reportEntries); a bad argument is LicenseError 'input'.
 */
export function createUsageReport(input: {
  license: UsageLicenseReference;
  deviceKey: DeviceKey;
  entries: readonly UsageLogEntry[];
  now?: Date;
}): CreatedRequest<UsageReportPayload> {
  const { license, deviceKey } = input;
  const payload = checkOutgoing(readUsageReportPayload, {
    ...activationBinding(license, deviceKey, input.now),
    activationNonce: license.requestNonce,
    licenseCounter: license.counter,
    entries: input.entries.map((e) => ({ ...e })),
  });
  const text = asLicenseError(() => signEnvelope('usage-report', DEVICE_KID, payload, deviceKey.privateKey));
  return { text, nonce: payload.nonce, payload };
}
