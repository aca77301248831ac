import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { ActivationRequestPayload } from '../../sdk/src/payloads.ts';
import { normaliseLicenseKey } from '../lib/license-keys.ts';
import * as licenses from '../models/licenses.ts';
import { lockLicense } from '../models/licenses.ts';
import * as devices from '../models/devices.ts';
import * as accounts from '../models/accounts.ts';
import { affected, isUniqueViolation, toDate } from '../models/normalise.ts';
import { getSettings, settingDefaults } from '../models/settings.ts';
import { verifyPassword } from '../lib/passwords.ts';
import { signAsServer } from '../crypto/envelopes.ts';
import type { Language } from '../../config/index.ts';
import { recordAudit } from './audit.ts';
import { licensePayload } from './license-files.ts';
import type { Actor, ServiceDeps } from './context.ts';

/**
 * THE activation service: the offline portal, the air-gap portal and the License API all call it,
 * and differ only in how the request arrives and the answer leaves. Every rule of SPEC §3 is checked
 * here, in one transaction with the device row, the seat count, the transfer count and the audit
 * event; seats hold across processes through guarded updates and unique keys, never memory.
 */

export type Channel = 'online' | 'offline' | 'airgap';

export const REFUSALS = [
  'product_unknown',
  'license_unknown',
  'license_disabled',
  'not_started',
  'expired',
  'offline_not_allowed',
  'airgap_required',
  'airgap_only',
  'blacklisted',
  'no_seats',
  'no_transfers',
  'user_credentials',
  'user_not_assigned',
  'already_active_other_key',
  'nonce_reused',
  'activation_unknown',
  'already_deactivated',
  'deactivation_forged',
  'code_malformed',
  'code_expired',
  'code_used',
] as const;
export type Refusal = (typeof REFUSALS)[number];

/** A refusal with a stable code; the portals translate it (activation.refusals.<code>). */
export class ActivationError extends Error {
  constructor(
    readonly code: Refusal,
    readonly status = 409,
  ) {
    super(code);
  }
}

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
}

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
    requestHash: crypto.createHash('sha256').update(requestText.trim()).digest('hex'),
    hostname: p.hostname,
    os: p.os,
    appVersion: p.appVersion,
  };
}

export interface ActivationResult {
  license: licenses.License;
  deviceId: number;
  /** True when this exact request (or this machine with this key) was already active: no seat was used. */
  repeated: boolean;
  transfer: boolean;
}

export interface ActivationDeps extends ServiceDeps {
  dataDir: string;
  defaultLanguage: Language;
}

const now = (deps: ServiceDeps) => deps.clock.now();

async function findLicense(trx: Knex, input: ActivationInput, at: Date): Promise<{ license: licenses.License; userId: number | null }> {
  // The usual case in one statement; anything else (and every refusal) takes the long way below.
  const byKey = input.licenseKey ? await licenses.findByKey(trx, input.licenseKey, input.productCode, at) : undefined;
  if (byKey && byKey.authorizationMethod === 'key') return { license: byKey, userId: null };
  const product = await trx('products').where({ code: input.productCode }).first('id', 'authorization_method');
  if (!product) throw new ActivationError('product_unknown', 404);
  if (product.authorization_method === 'key') {
    if (!input.licenseKey) throw new ActivationError('license_unknown', 404);
    const row = await trx('licenses').where({ license_key: input.licenseKey, product_id: product.id }).first('id');
    if (!row) throw new ActivationError('license_unknown', 404);
    return { license: (await licenses.findById(trx, Number(row.id), at))!, userId: null };
  }
  if (!input.user) throw new ActivationError('user_credentials', 401);
  const account = await accounts.findByEmail(trx, input.user.email);
  if (!account || account.role !== 'end_user' || account.disabled || !(await verifyPassword(account.passwordHash, input.user.password))) throw new ActivationError('user_credentials', 401);
  // The user's license of this product with a free seat of their own (first issued first).
  const rows = await trx('license_user_assignments as a')
    .join('licenses', 'licenses.id', 'a.license_id')
    .where('a.account_id', account.id)
    .where('licenses.product_id', product.id)
    .orderByRaw('CASE WHEN a.times_activated < a.max_activations THEN 0 ELSE 1 END')
    .orderBy('licenses.id')
    .select('licenses.id');
  if (!rows.length) throw new ActivationError('user_not_assigned', 404);
  return { license: (await licenses.findById(trx, Number(rows[0].id), at))!, userId: account.id };
}

function checkLicense(l: licenses.License, channel: Channel, at: Date) {
  if (!l.enabled) throw new ActivationError('license_disabled', 403);
  if (l.startDate && l.startDate > at) throw new ActivationError('not_started', 403);
  if (l.expiresAt && l.expiresAt <= at) throw new ActivationError('expired', 403);
  if (channel === 'offline' && !l.allowOffline) throw new ActivationError('offline_not_allowed', 403);
  if (channel === 'airgap' && !l.airgapped) throw new ActivationError('airgap_required', 403);
  if (channel === 'online' && l.airgapped) throw new ActivationError('airgap_only', 403);
}

/** A transfer is an activation on a hardware id new to the license once every seat has served some machine. */
async function countsAsTransfer(trx: Knex, l: licenses.License, hardwareId: string): Promise<boolean> {
  if (l.unlimitedActivations) return false;
  // Under lockLicense no other transaction changes this license's devices, and under READ COMMITTED
  // (db/knexfile.ts) these reads see the latest committed rows: no locking read, no gap lock.
  if (await trx('devices').where({ license_id: l.id, hardware_id: hardwareId }).first('id')) return false;
  const distinct = Number((await trx('devices').where({ license_id: l.id }).countDistinct({ n: 'hardware_id' }).first())?.n ?? 0);
  return distinct >= l.maxActivations;
}

/** Floating licenses: the seats are concurrent users; a slot not checked in within the timeout (and not borrowed) is free again. */
export async function expireFloatingSlots(trx: Knex, l: licenses.License, at: Date): Promise<number> {
  if (!l.floating) return 0;
  const stale = await trx('devices')
    .where({ license_id: l.id })
    .whereNull('deactivated_at')
    .where('floating_expires_at', '<=', at)
    .where((w) => w.whereNull('borrowed_until').orWhere('borrowed_until', '<=', at))
    .select('id');
  let freed = 0;
  for (const row of stale) {
    if (!(await devices.deactivate(trx, Number(row.id), 'expired_slot', at))) continue;
    await devices.releaseSeat(trx, (await devices.findForLicense(trx, l.id, Number(row.id)))!, at);
    freed += 1;
  }
  return freed;
}

/** The number of seats: concurrent users for a floating license, activations otherwise. */
const seatLimit = (l: licenses.License) => (l.floating && l.floatingUsers ? l.floatingUsers : l.maxActivations);

/** Takes one seat with a guarded update: refused when none is free, whatever runs at the same time. */
async function takeSeat(trx: Knex, l: licenses.License, userId: number | null, at: Date) {
  const q = trx('licenses').where({ id: l.id });
  if (!l.unlimitedActivations && l.authorizationMethod === 'key') q.where('times_activated', '<', seatLimit(l));
  if (affected(await q.update({ times_activated: trx.raw('times_activated + 1'), updated_at: at })) !== 1) throw new ActivationError('no_seats');
  if (userId) {
    const a = trx('license_user_assignments').where({ license_id: l.id, account_id: userId }).where('times_activated', '<', trx.ref('max_activations'));
    if (affected(await a.update({ times_activated: trx.raw('times_activated + 1') })) !== 1) throw new ActivationError('no_seats');
  }
}

async function takeTransfer(trx: Knex, l: licenses.License, at: Date) {
  if (l.maxTransfers === -1) throw new ActivationError('no_transfers');
  const q = trx('licenses').where({ id: l.id });
  if (l.maxTransfers > 0) q.where('transfer_count', '<', l.maxTransfers);
  if (affected(await q.update({ transfer_count: trx.raw('transfer_count + 1'), updated_at: at })) !== 1) throw new ActivationError('no_transfers');
}

/** Records a refusal: an audit event, and a history row when the license is known. */
export async function recordRefusal(deps: ServiceDeps, actor: Actor, input: { channel: Channel; hardwareId: string; licenseId?: number | null; orderId?: number | null }, code: Refusal, action = 'activation.refused') {
  const at = now(deps);
  await deps.db.transaction(async (trx) => {
    if (input.licenseId) await devices.addHistory(trx, { licenseId: input.licenseId, deviceId: null, event: 'refused', channel: input.channel, hardwareId: input.hardwareId, detail: code }, at);
    await recordAudit(trx, actor, at, { action, objectType: input.licenseId ? 'license' : undefined, objectId: input.licenseId ?? undefined, orderId: input.orderId ?? null, after: { code, channel: input.channel, hardwareId: input.hardwareId } });
  });
}

/**
 * Activates a device. The same request again returns the same activation and uses no second seat;
 * a refusal throws ActivationError after recording it (audit event + history row).
 */
export async function activate(deps: ActivationDeps, actor: Actor, input: ActivationInput, retried = false): Promise<ActivationResult> {
  let known: { licenseId: number; orderId: number } | null = null;
  try {
    return await deps.db.transaction(async (trx) => {
      const at = now(deps);
      const seen = await trx('request_nonces').where({ nonce: input.nonce }).first();
      if (seen) {
        const device = seen.device_id ? await trx('devices').where({ id: seen.device_id }).first() : null;
        if (seen.kind !== 'activation' || !device || device.request_hash !== input.requestHash) throw new ActivationError('nonce_reused');
        const license = (await licenses.findById(trx, Number(device.license_id), at))!;
        return { license, deviceId: Number(device.id), repeated: true, transfer: false };
      }
      const { license, userId } = await findLicense(trx, input, at);
      known = { licenseId: license.id, orderId: license.orderId };
      checkLicense(license, input.channel, at);
      if (await trx('license_blacklist').where({ license_id: license.id, hardware_id: input.hardwareId }).first()) throw new ActivationError('blacklisted', 403);

      const active = await trx('devices').where({ license_id: license.id, active_hardware_id: input.hardwareId }).first();
      if (active) {
        // This machine is active already: the same key may fetch its license again; another key may not take it over.
        if (active.device_public_key && input.devicePublicKey && active.device_public_key !== input.devicePublicKey) throw new ActivationError('already_active_other_key');
        await trx('request_nonces').insert({ nonce: input.nonce, kind: 'activation', license_id: license.id, device_id: active.id, created_at: at });
        await trx('devices').where({ id: active.id }).update({ last_seen_at: at });
        return { license, deviceId: Number(active.id), repeated: true, transfer: false };
      }

      await lockLicense(trx, license.id);
      if (await expireFloatingSlots(trx, license, at)) Object.assign(license, (await licenses.findById(trx, license.id, at))!);
      const transfer = license.floating ? false : await countsAsTransfer(trx, license, input.hardwareId);
      if (transfer) await takeTransfer(trx, license, at);
      await takeSeat(trx, license, userId, at);
      const [deviceId] = await trx('devices').insert({
        license_id: license.id,
        license_user_account_id: userId,
        hardware_id: input.hardwareId,
        active_hardware_id: input.hardwareId,
        hostname: input.hostname,
        os: input.os,
        app_version: input.appVersion,
        channel: input.channel,
        device_public_key: input.devicePublicKey,
        request_hash: input.requestHash,
        activated_at: at,
        last_seen_at: at,
        floating_expires_at: license.floating && license.floatingTimeoutMinutes ? new Date(at.getTime() + license.floatingTimeoutMinutes * 60_000) : null,
      });
      await trx('request_nonces').insert({ nonce: input.nonce, kind: 'activation', license_id: license.id, device_id: deviceId, created_at: at });
      await devices.addHistory(trx, { licenseId: license.id, deviceId: Number(deviceId), event: 'activated', channel: input.channel, hardwareId: input.hardwareId, detail: transfer ? 'transfer' : null }, at);
      await recordAudit(trx, actor, at, {
        action: 'activation.granted',
        objectType: 'license',
        objectId: license.id,
        orderId: license.orderId,
        before: { timesActivated: license.timesActivated, transferCount: license.transferCount },
        after: { deviceId: Number(deviceId), channel: input.channel, hardwareId: input.hardwareId, transfer },
      });
      // The row as it now is (this transaction holds it): one seat more, one transfer more if it was one.
      const after = { ...license, timesActivated: license.timesActivated + 1, transferCount: license.transferCount + (transfer ? 1 : 0), updatedAt: at };
      return { license: { ...after, status: licenses.statusOf(after, at) }, deviceId: Number(deviceId), repeated: false, transfer };
    });
  } catch (err) {
    // A racing twin of this request (same nonce or same machine) won the unique key: answer as a repeat.
    if (isUniqueViolation(err) && !retried) return activate(deps, actor, input, true);
    if (err instanceof ActivationError) {
      const k = known as { licenseId: number; orderId: number } | null;
      await recordRefusal(deps, actor, { channel: input.channel, hardwareId: input.hardwareId, licenseId: k?.licenseId, orderId: k?.orderId }, err.code);
    }
    throw err;
  }
}

/** The license file of an activation: deterministic, so the same activation always yields the same file. */
export async function licenseFile(deps: ActivationDeps, deviceId: number): Promise<{ text: string; filename: string; license: licenses.License }> {
  const at = now(deps);
  const settings = await getSettings(deps.db, settingDefaults(deps.defaultLanguage));
  const device = await deps.db('devices').where({ id: deviceId }).first();
  const license = (await licenses.findById(deps.db, Number(device.license_id), at))!;
  const nonce = await deps.db('request_nonces').where({ device_id: deviceId, kind: 'activation' }).orderBy('created_at').first('nonce');
  const user = device.license_user_account_id ? await deps.db('accounts').where({ id: device.license_user_account_id }).first('email') : null;
  const issuedAt = toDate(device.activated_at)!;
  const payload = await licensePayload(deps.db, {
    license,
    deviceId,
    hardwareId: String(device.hardware_id),
    devicePublicKey: String(device.device_public_key ?? ''),
    requestNonce: nonce ? String(nonce.nonce) : '',
    counter: 0,
    userEmail: user ? String(user.email) : null,
    now: issuedAt,
    leaseDays: settings.offlineLeaseDays,
  });
  const text = await signAsServer(deps.db, deps.dataDir, 'license', payload);
  return { text, filename: `${license.productCode}-${String(device.hardware_id).replace(/[^\w.-]/g, '_').slice(0, 40)}.lic`, license };
}

export interface DeactivationInput {
  channel: Channel;
  licenseId: number;
  activationId: number;
  hardwareId: string;
  nonce: string;
  usage: { feature: string; amount: number }[];
  /**
   * Whether the request proves it comes from the holder of this activation: the offline portal
   * compares the signing device key and the activation's nonce, the air-gap portal checks a MAC
   * under the per-activation secret. A request that does not prove it changes nothing.
   */
  proves: (device: { hardware_id: string; device_public_key: string | null; airgap_secret: Buffer | null }, activationNonce: string | null) => boolean;
}

/** The offline proof: signed by the device key registered at that activation, naming that activation. */
export function signedByRegisteredDevice(devicePublicKey: string, hardwareId: string, activationNonce: string): DeactivationInput['proves'] {
  return (device, registered) => device.device_public_key === devicePublicKey && device.hardware_id === hardwareId && registered !== null && registered === activationNonce;
}

/**
 * Deactivates a device on the strength of a request signed by the key registered at that activation,
 * naming that activation. A replay returns the first answer and changes nothing; a forgery changes
 * nothing and is audited.
 */
export async function deactivate(deps: ActivationDeps, actor: Actor, input: DeactivationInput): Promise<{ deviceId: number; license: licenses.License; repeated: boolean }> {
  let orderId: number | null = null;
  try {
    return await deps.db.transaction(async (trx) => {
      const at = now(deps);
      await lockLicense(trx, input.licenseId);
      const device = await trx('devices').where({ id: input.activationId, license_id: input.licenseId }).first();
      if (!device) throw new ActivationError('activation_unknown', 404);
      const license = (await licenses.findById(trx, input.licenseId, at))!;
      orderId = license.orderId;
      const registeredNonce = await trx('request_nonces').where({ device_id: device.id, kind: 'activation' }).orderBy('created_at').first('nonce');
      const secret = device.airgap_secret === null || device.airgap_secret === undefined ? null : Buffer.from(device.airgap_secret as Uint8Array);
      if (!input.proves({ hardware_id: String(device.hardware_id), device_public_key: (device.device_public_key as string | null) ?? null, airgap_secret: secret }, registeredNonce ? String(registeredNonce.nonce) : null)) {
        throw new ActivationError('deactivation_forged', 403);
      }
      const seen = await trx('request_nonces').where({ nonce: input.nonce }).first();
      if (seen) {
        if (seen.kind === 'deactivation' && Number(seen.device_id) === Number(device.id)) return { deviceId: Number(device.id), license, repeated: true };
        throw new ActivationError('nonce_reused');
      }
      if (!(await devices.deactivate(trx, Number(device.id), 'device', at))) throw new ActivationError('already_deactivated');
      await trx('request_nonces').insert({ nonce: input.nonce, kind: 'deactivation', license_id: license.id, device_id: device.id, created_at: at });
      const model = (await devices.findForLicense(trx, license.id, Number(device.id)))!;
      await devices.releaseSeat(trx, model, at);
      for (const u of input.usage) {
        if (!Number.isSafeInteger(u.amount) || u.amount <= 0) continue;
        const feature = await trx('features').where({ product_id: license.productId, code: u.feature, type: 'consumption' }).first('id');
        if (feature) await trx('license_features').where({ license_id: license.id, feature_id: feature.id }).update({ total_consumption: trx.raw('total_consumption + ?', [u.amount]) });
      }
      await devices.addHistory(trx, { licenseId: license.id, deviceId: Number(device.id), event: 'deactivated', channel: input.channel, hardwareId: input.hardwareId }, at);
      await recordAudit(trx, actor, at, { action: 'deactivation.granted', objectType: 'device', objectId: Number(device.id), orderId: license.orderId, before: { active: true }, after: { active: false, channel: input.channel, usage: input.usage } });
      return { deviceId: Number(device.id), license: (await licenses.findById(trx, license.id, at))!, repeated: false };
    });
  } catch (err) {
    if (err instanceof ActivationError) await recordRefusal(deps, actor, { channel: input.channel, hardwareId: input.hardwareId, licenseId: input.licenseId > 0 && orderId ? input.licenseId : null, orderId }, err.code, 'deactivation.refused');
    throw err;
  }
}

/** The signed receipt of a deactivation (deterministic from the device row). */
export async function deactivationReceipt(deps: ActivationDeps, deviceId: number, deactivationNonce: string): Promise<string> {
  const device = await deps.db('devices').where({ id: deviceId }).first();
  return signAsServer(deps.db, deps.dataDir, 'deactivation-receipt', {
    v: 1,
    licenseId: Number(device.license_id),
    activationId: deviceId,
    hardwareId: String(device.hardware_id),
    deactivationNonce,
    deactivatedAt: toDate(device.deactivated_at)!.toISOString(),
  });
}
