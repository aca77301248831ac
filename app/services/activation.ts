import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { ActivationBinding, ActivationRequestPayload } from '../../sdk/src/payloads.ts';
import { normaliseLicenseKey } from '../lib/license-keys.ts';
import { inTransaction } from '../lib/transaction.ts';
import type { RateLimiter } from '../lib/rate-limiter.ts';
import * as licenses from '../models/licenses.ts';
import * as devices from '../models/devices.ts';
import * as products from '../models/products.ts';
import * as licenseUsers from '../models/license-users.ts';
import * as requestNonces from '../models/request-nonces.ts';
import * as usage from '../models/usage.ts';
import { isUniqueViolation } from '../models/normalise.ts';
import { recordAudit } from './audit.ts';
import { deviceData, licenseData, publishEvent } from './events.ts';
import { issueLicenseFile, type ArtifactDeps } from './license-files.ts';
import { AppError } from '../lib/errors.ts';
import { ActivationError, assertUsable, recordRefusal, type RefusalCode, type RefusalRecord } from './refusals.ts';
import type { Actor } from './context.ts';
import { mailUnlockLink, type LinkMailDeps } from './auth.ts';
import { checkPassword } from './throttles.ts';

export { ActivationError, REFUSALS, type Refusal } from './refusals.ts';

/**
 * THE activation service: the offline portal, the air-gap portal and the License API all call it,
 * and differ only in how the request arrives and the answer leaves. Every rule of the activation is
 * checked here, in one transaction with the device row, the request nonce, the seat and transfer
 * counts and the audit event; seats hold across processes through the license row lock, guarded
 * updates and unique keys, never memory. Every refusal is recorded (refusals.ts).
 */

export type Channel = devices.Channel;

export interface ActivationInput {
  channel: Channel;
  productCode: string;
  licenseKey: string | null;
  /** User-based licenses: the credentials typed on the page (never inside a file). */
  user: { email: string; password: string } | null;
  hardwareId: string;
  devicePublicKey: string | null;
  nonce: string;
  requestHash: string;
  hostname: string | null;
  os: string | null;
  appVersion: string | null;
  /** Air-gap: the request code's commitment to the secret that only the device holds (stored with the device, in the same transaction). */
  airgapCommitment: string | null;
}

/** SHA-256 of a request as received: what audit events and devices keep instead of the request. */
export const requestHashOf = (text: string) => crypto.createHash('sha256').update(text.trim()).digest('hex');

/**
 * The activation input of a device-signed activation request (offline upload or API call): the
 * credentials of a user-based license come from the page or the call, never from the file; null
 * when they are needed but missing or name another user.
 */
export function requestActivationInput(
  channel: 'offline' | 'online',
  p: ActivationRequestPayload,
  requestText: string,
  credentials: { email: string; password: string } | null,
): ActivationInput | null {
  if (p.user && (!credentials || credentials.email.trim().toLowerCase() !== p.user.toLowerCase())) return null;
  return {
    channel,
    productCode: p.product,
    licenseKey: p.licenseKey ? normaliseLicenseKey(p.licenseKey) : null,
    user: p.user ? { email: p.user, password: credentials!.password } : null,
    hardwareId: p.hardwareId,
    devicePublicKey: p.devicePublicKey,
    nonce: p.nonce,
    requestHash: requestHashOf(requestText),
    hostname: p.hostname,
    os: p.os,
    appVersion: p.appVersion,
    airgapCommitment: null,
  };
}

export interface ActivationResult {
  license: licenses.License;
  device: devices.Device;
  /** True when this exact request (or this machine with this key) was already active: no seat was used. */
  repeated: boolean;
  transfer: boolean;
}

export interface ActivationDeps extends ArtifactDeps, LinkMailDeps {
  limiter: RateLimiter;
}

/**
 * A user-based license's credentials, checked before the activation's transaction (argon2 holds no
 * lock) on the one throttled path the login form takes (throttles.ts): the same budgets, a dummy
 * hash for unknown addresses, 429 while a budget is spent.
 */
async function endUserOf(
  deps: ActivationDeps,
  actor: Actor,
  user: { email: string; password: string },
): Promise<number> {
  const account = await checkPassword(deps, actor, user.email, user.password, mailUnlockLink(deps));
  if (account?.role !== 'end_user' || account.disabled) throw new ActivationError('user_credentials', 401);
  return account.id;
}

async function findLicense(
  trx: Knex,
  input: ActivationInput,
  endUserId: number | null,
  at: Date,
): Promise<{ license: licenses.License; userId: number | null }> {
  // The usual case in one statement; anything else (and every refusal) takes the long way below.
  const byKey = input.licenseKey ? await licenses.findByKey(trx, input.licenseKey, input.productCode, at) : undefined;
  if (byKey && byKey.authorizationMethod === 'key') return { license: byKey, userId: null };
  const product = await products.findByCode(trx, input.productCode);
  if (!product) throw new ActivationError('product_unknown', 404);
  if (product.authorizationMethod === 'key') {
    const id = input.licenseKey ? await licenses.idByKey(trx, input.licenseKey, product.id) : undefined;
    if (!id) throw new ActivationError('license_unknown', 404);
    return { license: (await licenses.findById(trx, id, at))!, userId: null };
  }
  if (endUserId === null) throw new ActivationError('user_credentials', 401);
  const id = await licenseUsers.licenseToActivate(trx, endUserId, product.id);
  if (!id) throw new ActivationError('user_not_assigned', 404);
  return { license: (await licenses.findById(trx, id, at))!, userId: endUserId };
}

/** A transfer is an activation on a hardware id new to the license once every seat has served some machine. */
async function countsAsTransfer(trx: Knex, l: licenses.License, hardwareId: string): Promise<boolean> {
  if (l.unlimitedActivations || l.floating) return false;
  // Under the license row lock no other transaction changes this license's devices, and under READ
  // COMMITTED (db/knexfile.ts) these reads see the latest committed rows: no locking read, no gap lock.
  const machines = await devices.machinesOf(trx, l.id, hardwareId);
  return !machines.held && machines.distinct >= l.maxActivations;
}

/** Floating licenses: the seats are concurrent users; a slot not checked in within the timeout (and not borrowed) is free again. Call under the license lock. */
export async function expireFloatingSlots(trx: Knex, l: licenses.License, at: Date): Promise<number> {
  if (!l.floating) return 0;
  let freed = 0;
  for (const device of await devices.lapsedSlots(trx, l.id, at)) {
    if (!(await devices.deactivate(trx, device.id, 'expired_slot', at))) continue;
    await devices.releaseSeat(trx, device, at);
    freed += 1;
  }
  return freed;
}

/** The number of seats: concurrent users for a floating license, activations otherwise. */
const seatLimit = (l: licenses.License) => (l.floating && l.floatingUsers ? l.floatingUsers : l.maxActivations);

/** Takes one seat with a guarded update: refused when none is free, whatever runs at the same time. */
async function takeSeat(trx: Knex, l: licenses.License, userId: number | null, at: Date) {
  const limit = !l.unlimitedActivations && l.authorizationMethod === 'key' ? seatLimit(l) : null;
  if (!(await licenses.takeSeat(trx, l.id, limit, at))) throw new ActivationError('no_seats');
  if (userId && !(await licenseUsers.takeSeat(trx, l.id, userId))) throw new ActivationError('no_seats');
}

async function takeTransfer(trx: Knex, l: licenses.License, at: Date) {
  if (
    l.maxTransfers === -1 ||
    !(await licenses.takeTransfer(trx, l.id, l.maxTransfers > 0 ? l.maxTransfers : null, at))
  )
    throw new ActivationError('no_transfers');
}

/** The same request again: its activation, or a clear refusal when that activation has ended. */
async function repeatOf(
  trx: Knex,
  seen: requestNonces.RequestNonce,
  input: ActivationInput,
  at: Date,
): Promise<ActivationResult> {
  const device = seen.deviceId ? await devices.findById(trx, seen.deviceId) : undefined;
  if (seen.kind !== 'activation' || !device || device.requestHash !== input.requestHash)
    throw new ActivationError('nonce_reused');
  if (!device.active) throw new ActivationError('activation_inactive', 410);
  return { license: (await licenses.findById(trx, device.licenseId, at))!, device, repeated: true, transfer: false };
}

/** The refusal's record: what the activation service knew when it refused. */
const refusalOf = (input: ActivationInput, known: licenses.License | null): RefusalRecord => ({
  action: 'activation.refused',
  channel: input.channel,
  requestHash: input.requestHash,
  hardwareId: input.hardwareId,
  licenseId: known?.id ?? null,
  orderId: known?.orderId ?? null,
});

/**
 * Where the license to activate comes from when the request does not name it: a redeemed code
 * (services/vouchers.ts). `keyIn` runs in the activation's own transaction, after the repeat check,
 * so the code is spent only together with the activation it pays for: a refused or failed activation
 * rolls the redemption back. A refusal thrown by `keyIn` is recorded as `refusal`, not as the activation's.
 */
export interface LicenseSource {
  keyIn(trx: Knex): Promise<string | null>;
  refusal: RefusalRecord;
}

/**
 * Activates a device. The same request again returns the same activation and uses no second seat,
 * unless that activation has ended (`activation_inactive`); a refusal throws ActivationError after
 * recording it. With `source`, the license is the one it makes in the same transaction.
 */
export async function activate(
  deps: ActivationDeps,
  actor: Actor,
  input: ActivationInput,
  source?: LicenseSource,
): Promise<ActivationResult> {
  let known: licenses.License | null = null;
  let endUserId: number | null = null;
  let refusedBySource = false;
  const keyFrom = async (trx: Knex, s: LicenseSource) => {
    refusedBySource = true;
    const key = await s.keyIn(trx);
    refusedBySource = false;
    return key;
  };
  const attempt = () =>
    inTransaction(deps.db, async (trx) => {
      const at = deps.clock.now();
      const seen = await requestNonces.find(trx, input.nonce);
      if (seen) return repeatOf(trx, seen, input, at);
      const request = source ? { ...input, licenseKey: await keyFrom(trx, source) } : input;
      const found = await findLicense(trx, request, endUserId, at);
      known = found.license;
      const license = await licenses.lockFresh(trx, found.license, at);
      await assertUsable(trx, license, input.channel, input.hardwareId, at);

      const active = await devices.findActive(trx, license.id, input.hardwareId);
      if (active) {
        // This machine is active already: the same key (or, air-gap, the same channel and no key) may
        // fetch its license again; nothing else may take it over or be signed for it.
        if (active.channel !== input.channel && (active.channel === 'airgap' || input.channel === 'airgap'))
          throw new ActivationError('already_active_other_key');
        if (active.devicePublicKey !== input.devicePublicKey) throw new ActivationError('already_active_other_key');
        if (input.channel === 'airgap') throw new ActivationError('already_active_other_key'); // a new request code is a new secret: deactivate first
        await requestNonces.insert(
          trx,
          { nonce: input.nonce, kind: 'activation', licenseId: license.id, deviceId: active.id },
          at,
        );
        await devices.touch(trx, active.id, at);
        return { license, device: active, repeated: true, transfer: false };
      }

      if (await expireFloatingSlots(trx, license, at))
        Object.assign(license, (await licenses.findById(trx, license.id, at))!);
      // The seat first: with every seat taken the answer is no_seats, whatever the transfers.
      await takeSeat(trx, license, found.userId, at);
      // A floating slot taken: the day's running maximum of slots held at once (the usage history).
      if (license.floating) await usage.raiseFloatingPeak(trx, license.id, usage.dayOf(at), license.timesActivated + 1);
      const transfer = await countsAsTransfer(trx, license, input.hardwareId);
      if (transfer) await takeTransfer(trx, license, at);
      const device = await devices.insert(
        trx,
        {
          licenseId: license.id,
          licenseUserAccountId: found.userId,
          hardwareId: input.hardwareId,
          hostname: input.hostname,
          os: input.os,
          appVersion: input.appVersion,
          channel: input.channel,
          devicePublicKey: input.devicePublicKey,
          requestHash: input.requestHash,
          airgapCommitment: input.airgapCommitment,
          floatingExpiresAt:
            license.floating && license.floatingTimeoutMinutes
              ? new Date(at.getTime() + license.floatingTimeoutMinutes * 60_000)
              : null,
        },
        at,
      );
      await requestNonces.insert(
        trx,
        { nonce: input.nonce, kind: 'activation', licenseId: license.id, deviceId: device.id },
        at,
      );
      await devices.addHistory(
        trx,
        {
          licenseId: license.id,
          deviceId: device.id,
          event: 'activated',
          channel: input.channel,
          hardwareId: input.hardwareId,
          detail: transfer ? 'transfer' : null,
        },
        at,
      );
      await recordAudit(trx, actor, at, {
        action: 'activation.granted',
        objectType: 'license',
        objectId: license.id,
        orderId: license.orderId,
        before: { timesActivated: license.timesActivated, transferCount: license.transferCount },
        after: {
          deviceId: device.id,
          channel: input.channel,
          hardwareId: input.hardwareId,
          transfer,
          requestHash: input.requestHash,
        },
      });
      await publishEvent(trx, deps.clock, {
        type: 'activation.granted',
        orderId: license.orderId,
        data: { ...licenseData(license), ...deviceData(device), transfer },
      });
      // The row as it now is (this transaction holds it): one seat more, one transfer more if it was one.
      const after = {
        ...license,
        timesActivated: license.timesActivated + 1,
        transferCount: license.transferCount + (transfer ? 1 : 0),
        updatedAt: at,
      };
      return {
        license: { ...after, status: licenses.statusOf(after, at) },
        device,
        repeated: false,
        transfer,
      };
    });
  try {
    if (input.user) endUserId = await endUserOf(deps, actor, input.user);
    let result: ActivationResult;
    try {
      result = await attempt();
    } catch (err) {
      // A racing twin of this request (same nonce or same machine) won the unique key: answer as a repeat.
      if (!isUniqueViolation(err)) throw err;
      result = await attempt();
    }
    // Committed: counted once, whichever attempt made it.
    deps.metrics?.activation(input.channel, result.repeated);
    return result;
  } catch (err) {
    if (refusedBySource && err instanceof AppError && err.kind === 'refusal')
      await recordRefusal(deps, actor, source!.refusal, err.code as RefusalCode);
    else if (err instanceof ActivationError) await recordRefusal(deps, actor, refusalOf(input, known), err.code);
    throw err;
  }
}

/** The license file of an active activation (deterministic: the same activation, the same file). */
export async function licenseFile(
  deps: ActivationDeps,
  deviceId: number,
): Promise<{ text: string; filename: string; license: licenses.License }> {
  const device = await devices.findById(deps.db, deviceId);
  if (!device) throw new ActivationError('activation_unknown', 404);
  return licenseFileOf(deps, (await licenses.findById(deps.db, device.licenseId, deps.clock.now()))!, device);
}

/** The same, for a license and device the caller holds already (an activation just made: no reading them again). */
export async function licenseFileOf(
  deps: ActivationDeps,
  license: licenses.License,
  device: devices.Device,
): Promise<{ text: string; filename: string; license: licenses.License }> {
  const { text } = await issueLicenseFile(deps.db, deps, license, device, { typ: 'license', at: deps.clock.now() });
  return {
    text,
    filename: `${license.productCode}-${device.hardwareId.replace(/[^\w.-]/g, '_').slice(0, 40)}.lic`,
    license,
  };
}

/**
 * The license and device a device-signed request after activation speaks for (an online check, a
 * consumption, a usage report), with the license row locked first, as in every transaction that
 * changes its devices. Undefined unless the license has that device, bound to the request's product,
 * hardware id and device key.
 */
export async function boundActivation(
  trx: Knex,
  p: ActivationBinding,
  at: Date,
): Promise<{ license: licenses.License; device: devices.Device } | undefined> {
  await licenses.lockLicense(trx, p.licenseId);
  const license = await licenses.findById(trx, p.licenseId, at);
  const device = license ? await devices.findForLicense(trx, p.licenseId, p.activationId) : undefined;
  if (
    !license ||
    !device?.devicePublicKey ||
    license.productCode !== p.product ||
    device.devicePublicKey !== p.devicePublicKey ||
    device.hardwareId !== p.hardwareId
  )
    return undefined;
  return { license, device };
}

export interface DeactivationInput {
  channel: Channel;
  licenseId: number;
  activationId: number;
  hardwareId: string;
  nonce: string;
  requestHash: string;
  usage: { feature: string; amount: number }[];
  /**
   * Whether the request proves it comes from the holder of this activation: the offline portal and
   * the API compare the signing device key and the activation's nonce, the air-gap portal checks the
   * revealed secret against the commitment. Throws an ActivationError for a refusal of its own
   * (e.g. legacy codes the vendor no longer accepts). A request that does not prove it changes nothing.
   */
  proves: (device: devices.Device, activationNonce: string | null) => boolean;
}

/** The offline and online proof: signed by the device key registered at that activation, naming that activation. */
export function signedByRegisteredDevice(
  devicePublicKey: string,
  hardwareId: string,
  activationNonce: string,
): DeactivationInput['proves'] {
  return (device, registered) =>
    device.devicePublicKey === devicePublicKey &&
    device.hardwareId === hardwareId &&
    registered !== null &&
    registered === activationNonce;
}

/**
 * Deactivates a device on the strength of a request that proves it holds that activation. A replay
 * returns the first answer and changes nothing; a forgery changes nothing and is recorded.
 */
export async function deactivate(
  deps: ActivationDeps,
  actor: Actor,
  input: DeactivationInput,
): Promise<{ device: devices.Device; license: licenses.License; repeated: boolean }> {
  let orderId: number | null = null;
  try {
    return await inTransaction(deps.db, async (trx) => {
      const at = deps.clock.now();
      await licenses.lockLicense(trx, input.licenseId);
      const device = await devices.findForLicense(trx, input.licenseId, input.activationId);
      if (!device) throw new ActivationError('activation_unknown', 404);
      const license = (await licenses.findById(trx, input.licenseId, at))!;
      orderId = license.orderId;
      if (!input.proves(device, await requestNonces.activationNonceOf(trx, device.id)))
        throw new ActivationError('deactivation_forged', 403);
      const seen = await requestNonces.find(trx, input.nonce);
      if (seen) {
        if (seen.kind === 'deactivation' && seen.deviceId === device.id) return { device, license, repeated: true };
        throw new ActivationError('nonce_reused');
      }
      if (!(await devices.deactivate(trx, device.id, 'device', at))) throw new ActivationError('already_deactivated');
      await requestNonces.insert(
        trx,
        { nonce: input.nonce, kind: 'deactivation', licenseId: license.id, deviceId: device.id },
        at,
      );
      await devices.releaseSeat(trx, device, at);
      for (const u of input.usage)
        if (Number.isSafeInteger(u.amount) && u.amount > 0)
          await licenses.addConsumption(trx, license, u.feature, u.amount);
      await devices.addHistory(
        trx,
        {
          licenseId: license.id,
          deviceId: device.id,
          event: 'deactivated',
          channel: input.channel,
          hardwareId: input.hardwareId,
        },
        at,
      );
      await recordAudit(trx, actor, at, {
        action: 'deactivation.granted',
        objectType: 'device',
        objectId: device.id,
        orderId: license.orderId,
        before: { active: true },
        after: { active: false, channel: input.channel, usage: input.usage, requestHash: input.requestHash },
      });
      await publishEvent(trx, deps.clock, {
        type: 'device.deactivated',
        orderId: license.orderId,
        data: { ...licenseData(license), ...deviceData(device) },
      });
      return {
        device: (await devices.findById(trx, device.id))!,
        license: (await licenses.findById(trx, license.id, at))!,
        repeated: false,
      };
    });
  } catch (err) {
    if (err instanceof ActivationError) {
      await recordRefusal(
        deps,
        actor,
        {
          action: 'deactivation.refused',
          channel: input.channel,
          requestHash: input.requestHash,
          hardwareId: input.hardwareId,
          licenseId: orderId ? input.licenseId : null,
          orderId,
        },
        err.code,
      );
    }
    throw err;
  }
}

/** The signed receipt of a deactivation (deterministic from the device row). */
export async function deactivationReceipt(
  deps: ActivationDeps,
  deviceId: number,
  deactivationNonce: string,
): Promise<string> {
  const device = await devices.findById(deps.db, deviceId);
  if (!device?.deactivatedAt) throw new ActivationError('activation_unknown', 404);
  return deps.signer.receipt(deps.db, {
    v: 1,
    licenseId: device.licenseId,
    activationId: deviceId,
    hardwareId: device.hardwareId,
    deactivationNonce,
    deactivatedAt: device.deactivatedAt.toISOString(),
  });
}
