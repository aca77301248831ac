import crypto, { type KeyObject } from 'node:crypto';
import type { AirgapRequest, LegacyAirgapRequest } from './airgap.ts';
import fs from 'node:fs';
import path from 'node:path';
import { DEVICE_KEY_FILE, loadOrCreateDeviceKey, type DeviceKey } from './device.ts';
import { trustedKeysFromWellKnown, type LicenseMark } from './license.ts';
import { CODE_PATTERN, HARDWARE_ID_PATTERN, NONCE_PATTERN, type UsageLogEntry } from './payloads.ts';

/**
 * The state folder the CLI (or an application) keeps on the device. Every file is written whole
 * (temporary file + rename) with mode 0600 in a folder made with mode 0700.
 */

export const STATE_FILES = {
  deviceKey: DEVICE_KEY_FILE,
  trustedKeys: 'trusted-keys.json',
  config: 'config.json',
  license: 'license.lic',
  deactivatedLicense: 'license.lic.deactivated',
  pending: 'pending-request.json',
  airgap: 'airgap.json',
  counters: 'counters.json',
  usageLog: 'usage-log.json',
} as const;

export type StateFile = (typeof STATE_FILES)[keyof typeof STATE_FILES];

export interface DeviceConfig {
  product: string;
  licenseKey: string | null;
  user: string | null;
  hardwareId: string;
  /** `auto`: hardwareId() made the id, and is asked again each time (a copied folder does not move the license). */
  hardwareIdSource: 'auto' | 'given';
  hostname: string | null;
}

export interface PendingActivation {
  nonce: string;
  createdAt: string;
}

export interface PendingDeactivation {
  nonce: string;
  createdAt: string;
  licenseId: number;
  activationId: number;
  hardwareId: string;
}

/** The nonces of the last requests made, to check their answers against. */
export interface PendingRequests {
  activation?: PendingActivation;
  deactivation?: PendingDeactivation;
}

/** The last request code made, until answered: with its secret S (20 hex), which leaves the device only in the deactivation code. */
export interface AirgapPendingRequest extends AirgapRequest {
  code: string;
  secret: string;
  createdAt: string;
}

interface AirgapActivationCommon {
  /** The activation code, kept so `status` can check it again. */
  code: string;
  /** The license key given to `init`, as the activation code was verified with it. */
  licenseKey: string;
  expiresAt: string | null;
  features: number;
  kid: string;
  activatedAt: string;
}

/** A version 2 air-gap activation: the request (with its commitment) and its secret S (20 hex) make the deactivation code. */
export interface AirgapActivationState extends AirgapActivationCommon {
  request: AirgapRequest;
  secret: string;
}

/** A version 1 air-gap activation, installed before version 2: its id and its secret (16 bytes, hex) make a version 1 deactivation code. */
export interface LegacyAirgapActivationState extends AirgapActivationCommon {
  request: LegacyAirgapRequest;
  activationId: number;
  secret: string;
}

export type InstalledAirgapActivation = AirgapActivationState | LegacyAirgapActivationState;

/** Version 1 activations are the ones with an activation id (version 2 codes name none). */
export function isLegacyAirgapActivation(
  activation: InstalledAirgapActivation,
): activation is LegacyAirgapActivationState {
  return typeof (activation as Partial<LegacyAirgapActivationState>).activationId === 'number';
}

/** An activation given back: the deactivation code shown (and, for version 1, its nonce), until the confirmation code is checked. */
export type AirgapDeactivationState =
  | (AirgapActivationState & { code: string; requestedAt: string })
  | (LegacyAirgapActivationState & { code: string; nonce: string; requestedAt: string });

/** The air-gap codes in flight: the last request code, the installed activation, a deactivation awaiting its confirmation. */
export interface AirgapState {
  /** A request stored by a version 1 CLI has a `nonce` and no `secret`: it cannot be answered any more. */
  request?: AirgapPendingRequest | (LegacyAirgapRequest & { code: string; createdAt: string });
  activation?: InstalledAirgapActivation;
  deactivation?: AirgapDeactivationState;
}

/**
 * The device's usage log (usage-log.json): entries are only ever added (each chained to the one
 * before, usage.ts), and `reportedThrough` is the counter of the last entry put in a usage report.
 */
export interface UsageLogState {
  entries: UsageLogEntry[];
  reportedThrough: number;
}

/** A state file that is missing where it is needed, or damaged. */
export class StateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateError';
  }
}

export class DeviceState {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  path(file: StateFile): string {
    return path.join(this.dir, file);
  }

  exists(file: StateFile): boolean {
    return fs.existsSync(this.path(file));
  }

  deviceKey(): DeviceKey {
    return loadOrCreateDeviceKey(this.dir);
  }

  readText(file: StateFile): string | undefined {
    try {
      return fs.readFileSync(this.path(file), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  writeText(file: StateFile, text: string): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const target = this.path(file);
    const temp = `${target}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`;
    fs.writeFileSync(temp, text, { mode: 0o600, flag: 'wx' });
    try {
      fs.renameSync(temp, target);
    } catch (err) {
      fs.rmSync(temp, { force: true });
      throw err;
    }
  }

  remove(file: StateFile): void {
    fs.rmSync(this.path(file), { force: true });
  }

  move(from: StateFile, to: StateFile): void {
    fs.renameSync(this.path(from), this.path(to));
  }

  /** The configuration written by `init`; a StateError when there is none. */
  config(): DeviceConfig {
    const doc = this.readJson(STATE_FILES.config);
    if (doc === undefined) throw new StateError(`${this.dir} is not set up yet: run "init" first`);
    const c = doc as Partial<DeviceConfig>;
    const ok =
      typeof c.product === 'string' &&
      CODE_PATTERN.test(c.product) &&
      // Neither: a folder set up to redeem a code (the license key is written once the code is redeemed).
      !(typeof c.licenseKey === 'string' && typeof c.user === 'string') &&
      (c.licenseKey === null || typeof c.licenseKey === 'string') &&
      (c.user === null || typeof c.user === 'string') &&
      typeof c.hardwareId === 'string' &&
      HARDWARE_ID_PATTERN.test(c.hardwareId) &&
      (c.hardwareIdSource === 'auto' || c.hardwareIdSource === 'given') &&
      (c.hostname === null || typeof c.hostname === 'string');
    if (!ok) throw new StateError(`${this.path(STATE_FILES.config)} is damaged: run "init" again`);
    return c as DeviceConfig;
  }

  writeConfig(config: DeviceConfig): void {
    this.writeJson(STATE_FILES.config, config);
  }

  /** The server keys trusted (from the stored well-known document); a StateError when there are none. */
  trustedKeys(): Map<string, KeyObject> {
    const text = this.readText(STATE_FILES.trustedKeys);
    if (text === undefined) throw new StateError(`${this.dir} has no trusted keys: run "init" first`);
    try {
      return trustedKeysFromWellKnown(text);
    } catch (err) {
      throw new StateError(
        `${this.path(STATE_FILES.trustedKeys)} is damaged (${(err as Error).message}): run "init" again`,
      );
    }
  }

  /** Stores the server's key document after checking it lists at least one usable key; returns the keys. */
  writeTrustedKeys(wellKnownJson: string): Map<string, KeyObject> {
    const keys = trustedKeysFromWellKnown(wellKnownJson);
    this.writeText(STATE_FILES.trustedKeys, wellKnownJson);
    return keys;
  }

  pending(): PendingRequests {
    const doc = (this.readJson(STATE_FILES.pending) ?? {}) as PendingRequests;
    const nonceOk = (p?: { nonce?: unknown }) =>
      p === undefined || (typeof p.nonce === 'string' && NONCE_PATTERN.test(p.nonce));
    if (typeof doc !== 'object' || doc === null || !nonceOk(doc.activation) || !nonceOk(doc.deactivation)) {
      throw new StateError(`${this.path(STATE_FILES.pending)} is damaged: make a new request`);
    }
    return doc;
  }

  writePending(pending: PendingRequests): void {
    this.writeJson(STATE_FILES.pending, pending);
  }

  airgap(): AirgapState {
    const doc = this.readJson(STATE_FILES.airgap) ?? {};
    const entryOk = (e: unknown) => e === undefined || (typeof e === 'object' && e !== null && !Array.isArray(e));
    const a = doc as AirgapState;
    if (
      typeof doc !== 'object' ||
      doc === null ||
      Array.isArray(doc) ||
      !entryOk(a.request) ||
      !entryOk(a.activation) ||
      !entryOk(a.deactivation)
    ) {
      throw new StateError(`${this.path(STATE_FILES.airgap)} is damaged`);
    }
    return a;
  }

  writeAirgap(airgap: AirgapState): void {
    this.writeJson(STATE_FILES.airgap, airgap);
  }

  /**
   * What the device has installed per activation (counters.json), or undefined before that file
   * was first written (by a CLI that did not keep it yet).
   */
  licenseHistory(): LicenseMark[] | undefined {
    const doc = this.readJson(STATE_FILES.counters);
    if (doc === undefined) return undefined;
    const marks = (doc as { activations?: unknown }).activations;
    const markOk = (m: Partial<LicenseMark>) =>
      Number.isInteger(m.licenseId) &&
      Number.isInteger(m.activationId) &&
      Number.isInteger(m.counter) &&
      typeof m.payloadSha256 === 'string' &&
      /^[0-9a-f]{64}$/.test(m.payloadSha256) &&
      typeof m.closed === 'boolean';
    if (!Array.isArray(marks) || !marks.every((m) => typeof m === 'object' && m !== null && markOk(m))) {
      throw new StateError(`${this.path(STATE_FILES.counters)} is damaged`);
    }
    return marks as LicenseMark[];
  }

  writeLicenseHistory(marks: readonly LicenseMark[]): void {
    this.writeJson(STATE_FILES.counters, { activations: marks });
  }

  /** The usage log (empty before the first entry); its entries are read as stored, unchecked: the portal checks the chain. */
  usageLog(): UsageLogState {
    const doc = this.readJson(STATE_FILES.usageLog) as Partial<UsageLogState> | undefined;
    if (doc === undefined) return { entries: [], reportedThrough: 0 };
    if (
      typeof doc !== 'object' ||
      doc === null ||
      !Array.isArray(doc.entries) ||
      !doc.entries.every((e) => typeof e === 'object' && e !== null && Number.isInteger(e.counter)) ||
      !Number.isInteger(doc.reportedThrough)
    )
      throw new StateError(`${this.path(STATE_FILES.usageLog)} is damaged`);
    return doc as UsageLogState;
  }

  writeUsageLog(log: UsageLogState): void {
    this.writeJson(STATE_FILES.usageLog, log);
  }

  private readJson(file: StateFile): unknown {
    const text = this.readText(file);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new StateError(`${this.path(file)} is damaged (not JSON)`);
    }
  }

  private writeJson(file: StateFile, value: unknown): void {
    this.writeText(file, `${JSON.stringify(value, null, 2)}\n`);
  }
}
