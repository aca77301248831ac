import type { Knex } from 'knex';
import * as catalog from '../models/catalog.ts';
import type { Entitlements } from '../models/catalog.ts';
import * as licenses from '../models/licenses.ts';
import * as policies from '../models/policies.ts';
import * as products from '../models/products.ts';
import * as devices from '../models/devices.ts';
import * as assignments from '../models/license-users.ts';
import { againAfterUniqueViolation } from '../models/normalise.ts';
import { generateLicenseKey } from '../lib/license-keys.ts';
import { HttpError, ValidationError, notFound } from '../lib/errors.ts';
import { auditedChange } from './changes.ts';
import { anyListener, deviceData, licenseData, publishEvent } from './events.ts';
import { deviceActions } from '../policies/devices.ts';
import type { Actor, ServiceDeps } from './context.ts';

/** Issuing licenses into orders and every change to a license and its devices. */

export const MAX_ISSUE_QUANTITY = 10_000;
const INSERT_CHUNK = 200;

export interface IssueRequest {
  policyId: number;
  /** Key-based products: how many licenses. */
  quantity?: number;
  /** User-based products: one license per address, assigned to that user. */
  emails?: string[];
  startDate?: Date | null;
}

export interface IssueResult {
  licenseIds: number[];
  productId: number;
  /** User accounts created for addresses that had none (they get an invitation). */
  newUserIds: number[];
}

/** Hooks the User Portal adds (quota counting) without a second copy of the issuing rules. */
export interface IssueHooks {
  beforeInsert?: (trx: Knex, productId: number, count: number, now: Date) => Promise<void>;
  assignUser?: (
    trx: Knex,
    licenseId: number,
    email: string,
    maxActivations: number,
    now: Date,
  ) => Promise<{ accountId: number; created: boolean }>;
}

async function issuablePolicy(trx: Knex, policyId: number) {
  const policy = await policies.findById(trx, policyId);
  const product = policy ? await products.findById(trx, policy.productId) : undefined;
  if (!policy || !product || policy.archived || product.archived)
    throw new ValidationError({ policy_id: 'licenses.policyNotIssuable' });
  return { policy, product };
}

async function insertKeyed(
  trx: Knex,
  base: Omit<Parameters<typeof catalog.insertLicense>[1], 'licenseKey'>,
  count: number,
  now: Date,
): Promise<number[]> {
  const ids: number[] = [];
  const { expiresAt, maintenanceUntil } = catalog.licenseDates(base.entitlements, base.startDate);
  for (let done = 0; done < count; done += INSERT_CHUNK) {
    const keys = Array.from({ length: Math.min(INSERT_CHUNK, count - done) }, generateLicenseKey);
    const rows = keys.map((license_key) => ({
      order_id: base.orderId,
      product_id: base.productId,
      policy_id: base.policyId,
      license_key,
      enabled: true,
      ...catalog.entitlementColumns(base.entitlements),
      start_date: base.startDate,
      expires_at: expiresAt,
      maintenance_until: maintenanceUntil,
      times_activated: 0,
      transfer_count: 0,
      issued_by_account_id: base.issuedBy ?? null,
      created_at: now,
      updated_at: now,
    }));
    await trx('licenses').insert(rows);
    await catalog.countLicensesOf(trx, base.orderId, rows.length);
    const inserted = await trx('licenses').whereIn('license_key', keys).orderBy('id').select('id');
    ids.push(...inserted.map((r: { id: number }) => Number(r.id)));
  }
  return ids;
}

async function copyFeatures(trx: Knex, policyId: number, licenseIds: number[]) {
  const features = await policies.listFeatures(trx, policyId);
  if (!features.length) return;
  for (let i = 0; i < licenseIds.length; i += INSERT_CHUNK) {
    const rows = licenseIds.slice(i, i + INSERT_CHUNK).flatMap((license_id) =>
      features.map((f) => ({
        license_id,
        feature_id: f.featureId,
        ...policies.consumptionColumns(f),
        total_consumption: 0,
      })),
    );
    await trx('license_features').insert(rows);
  }
}

/**
 * Issues licenses from a policy into an order, in one transaction with one audit event. Keys come
 * from 140 random bits; the unique key on license_key guards the (astronomically unlikely) repeat,
 * in which case the whole issue is retried once.
 */
export async function issueLicenses(
  deps: ServiceDeps,
  actor: Actor,
  orderId: number,
  request: IssueRequest,
  hooks: IssueHooks = {},
): Promise<IssueResult> {
  const run = () =>
    auditedChange(deps, actor, async (trx, now) => {
      // The order row first, for update: the inserts below add to its license count, and two issues
      // into one order must queue here rather than both hold a shared lock (the licenses' foreign
      // key) and then both wait to write it.
      if (!(await trx('orders').where({ id: orderId }).forUpdate().first('id'))) throw notFound();
      const { policy, product } = await issuablePolicy(trx, request.policyId);
      const entitlements: Entitlements = policy;
      const startDate = request.startDate ?? now;
      const base = {
        orderId,
        productId: product.id,
        policyId: policy.id,
        entitlements,
        startDate,
        issuedBy: actor.accountId,
      };
      let licenseIds: number[] = [];
      const newUserIds: number[] = [];
      if (product.authorizationMethod === 'key') {
        const quantity = request.quantity ?? 0;
        if (!Number.isInteger(quantity) || quantity < 1 || quantity > MAX_ISSUE_QUANTITY)
          throw new ValidationError({ quantity: 'validation.numberRange' });
        await hooks.beforeInsert?.(trx, product.id, quantity, now);
        licenseIds = await insertKeyed(trx, base, quantity, now);
      } else {
        const emails = [...new Set((request.emails ?? []).map((e) => e.trim().toLowerCase()).filter(Boolean))];
        if (!emails.length) throw new ValidationError({ emails: 'licenses.emailsRequired' });
        if (!hooks.assignUser) throw new Error('user-based issuing needs an assignUser hook');
        await hooks.beforeInsert?.(trx, product.id, emails.length, now);
        for (const email of emails) {
          const id = await catalog.insertLicense(trx, { ...base, licenseKey: null }, now);
          const { accountId, created } = await hooks.assignUser(
            trx,
            id,
            email,
            policy.unlimitedActivations ? 1_000_000 : policy.maxActivations,
            now,
          );
          if (created) newUserIds.push(accountId);
          licenseIds.push(id);
        }
      }
      await copyFeatures(trx, policy.id, licenseIds);
      if (await anyListener(trx, 'license.issued'))
        for (const id of licenseIds)
          await publishEvent(trx, deps.clock, {
            type: 'license.issued',
            orderId,
            data: licenseData((await licenses.findById(trx, id, now))!),
          });
      return {
        result: { licenseIds, productId: product.id, newUserIds },
        audit: {
          action: 'licenses.issued',
          objectType: 'order',
          objectId: orderId,
          orderId,
          after: {
            policyId: policy.id,
            productId: product.id,
            count: licenseIds.length,
            firstLicenseId: licenseIds[0],
            lastLicenseId: licenseIds.at(-1),
            ...(request.emails ? { emails: request.emails.slice(0, 100) } : {}),
          },
        },
      };
    });
  return againAfterUniqueViolation(run);
}

async function mustFindLicense(trx: Knex, id: number, now: Date) {
  const l = await licenses.findById(trx, id, now);
  if (!l) throw notFound();
  return l;
}

export interface LicenseEdit {
  entitlements: Entitlements;
  startDate: Date | null;
  expiresAt: Date | null;
  maintenanceUntil: Date | null;
  note: string | null;
}

/**
 * Edits a license within the rules: the license type and the air-gapped flag never change, and an
 * air-gapped license keeps all its entitlements (only its note may change).
 */
export async function updateLicense(deps: ServiceDeps, actor: Actor, id: number, edit: LicenseEdit): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await mustFindLicense(trx, id, now);
    if (before.airgapped) {
      await licenses.update(trx, id, { note: edit.note }, now);
    } else {
      const entitlements: Entitlements = { ...edit.entitlements, licenseType: before.licenseType, airgapped: false };
      await licenses.update(
        trx,
        id,
        {
          entitlements,
          startDate: edit.startDate,
          expiresAt: edit.expiresAt,
          maintenanceUntil: edit.maintenanceUntil,
          note: edit.note,
        },
        now,
      );
    }
    const after = await mustFindLicense(trx, id, now);
    await publishEvent(trx, deps.clock, {
      type: 'license.changed',
      orderId: after.orderId,
      data: { ...licenseData(after), change: 'updated' },
    });
    return {
      result: undefined,
      audit: {
        action: 'license.updated',
        objectType: 'license',
        objectId: id,
        orderId: before.orderId,
        before: licenses.auditView(before),
        after: licenses.auditView(after),
      },
    };
  });
}

export async function setLicenseEnabled(deps: ServiceDeps, actor: Actor, id: number, enabled: boolean): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await mustFindLicense(trx, id, now);
    await licenses.update(trx, id, { enabled }, now);
    await publishEvent(trx, deps.clock, {
      type: enabled ? 'license.changed' : 'license.disabled',
      orderId: before.orderId,
      data: { ...licenseData({ ...before, enabled }), ...(enabled ? { change: 'enabled' } : {}) },
    });
    return {
      result: undefined,
      audit: {
        action: enabled ? 'license.enabled' : 'license.disabled',
        objectType: 'license',
        objectId: id,
        orderId: before.orderId,
        before: { enabled: before.enabled },
        after: { enabled },
      },
    };
  });
}

export async function setLicenseNote(deps: ServiceDeps, actor: Actor, id: number, note: string | null): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await mustFindLicense(trx, id, now);
    await licenses.update(trx, id, { note }, now);
    return {
      result: undefined,
      audit: {
        action: 'license.note_changed',
        objectType: 'license',
        objectId: id,
        orderId: before.orderId,
        before: { note: before.note },
        after: { note },
      },
    };
  });
}

/** Deactivates every device of the license: times activated goes back to 0. */
export async function resetLicense(deps: ServiceDeps, actor: Actor, id: number): Promise<number> {
  return auditedChange(deps, actor, async (trx, now) => {
    await licenses.lockLicense(trx, id);
    const before = await mustFindLicense(trx, id, now);
    let released = 0;
    for (const device of await devices.activeForLicense(trx, id)) {
      if (!(await devices.deactivate(trx, device.id, 'reset', now))) continue;
      released += 1;
      await devices.addHistory(
        trx,
        {
          licenseId: id,
          deviceId: device.id,
          event: 'reset',
          channel: device.channel,
          hardwareId: device.hardwareId,
          actorId: actor.accountId,
        },
        now,
      );
    }
    await licenses.clearSeats(trx, id, now);
    await assignments.resetCounts(trx, id);
    await publishEvent(trx, deps.clock, {
      type: 'license.changed',
      orderId: before.orderId,
      data: { ...licenseData(before), change: 'reset', devicesDeactivated: released },
    });
    return {
      result: released,
      audit: {
        action: 'license.reset',
        objectType: 'license',
        objectId: id,
        orderId: before.orderId,
        before: { timesActivated: before.timesActivated },
        after: { timesActivated: 0, devicesDeactivated: released },
      },
    };
  });
}

/** A device's history entry for an action someone took on it (reset, blacklisted, off the blacklist). */
const deviceEvent = (trx: Knex, device: devices.Device, event: devices.HistoryEvent, actor: Actor, now: Date) =>
  devices.addHistory(
    trx,
    {
      licenseId: device.licenseId,
      deviceId: device.id,
      event,
      channel: device.channel,
      hardwareId: device.hardwareId,
      actorId: actor.accountId,
    },
    now,
  );

/** Locks the license and reads it with one of its devices (404 when the device is not the license's). */
async function lockedDevice(trx: Knex, licenseId: number, deviceId: number, now: Date) {
  await licenses.lockLicense(trx, licenseId);
  const license = await mustFindLicense(trx, licenseId, now);
  const device = await devices.findForLicense(trx, licenseId, deviceId);
  if (!device) throw notFound();
  return { license, device };
}
/** Deactivates one device and frees its seat: how a license moves to another machine. */
export async function resetDevice(deps: ServiceDeps, actor: Actor, licenseId: number, deviceId: number): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const { license, device } = await lockedDevice(trx, licenseId, deviceId, now);
    if (!(await devices.deactivate(trx, deviceId, 'reset', now)))
      throw new HttpError(409, 'licenses.deviceAlreadyInactive');
    await devices.releaseSeat(trx, device, now);
    await deviceEvent(trx, device, 'reset', actor, now);
    await publishEvent(trx, deps.clock, {
      type: 'device.reset',
      orderId: license.orderId,
      data: { ...licenseData(license), ...deviceData(device) },
    });
    return {
      result: undefined,
      audit: {
        action: 'device.reset',
        objectType: 'device',
        objectId: deviceId,
        orderId: license.orderId,
        before: { active: true, licenseTimesActivated: license.timesActivated },
        after: { active: false, licenseId, hardwareId: device.hardwareId },
      },
    };
  });
}

/** Blacklists a device's hardware id for this license (it can never activate it again) and deactivates it. */
export async function blacklistDevice(
  deps: ServiceDeps,
  actor: Actor,
  licenseId: number,
  deviceId: number,
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const { license, device } = await lockedDevice(trx, licenseId, deviceId, now);
    if (!deviceActions(license, device).blacklist) throw new HttpError(409, 'licenses.deviceAlreadyBlacklisted');
    await devices.addToBlacklist(trx, licenseId, device.hardwareId, actor.accountId, now);
    await devices.markBlacklisted(trx, deviceId);
    const wasActive = await devices.deactivate(trx, deviceId, 'revoked', now);
    if (wasActive) await devices.releaseSeat(trx, device, now);
    await deviceEvent(trx, device, 'revoked', actor, now);
    await publishEvent(trx, deps.clock, {
      type: 'device.blacklisted',
      orderId: license.orderId,
      data: { ...licenseData(license), ...deviceData(device) },
    });
    return {
      result: undefined,
      audit: {
        action: 'device.blacklisted',
        objectType: 'device',
        objectId: deviceId,
        orderId: license.orderId,
        before: { active: device.active, blacklisted: false },
        after: { active: false, blacklisted: true, hardwareId: device.hardwareId },
      },
    };
  });
}

/** The undo of blacklistDevice: the machine's hardware id leaves the license's blacklist and may activate it again. */
export async function unblacklistDevice(
  deps: ServiceDeps,
  actor: Actor,
  licenseId: number,
  deviceId: number,
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const { license, device } = await lockedDevice(trx, licenseId, deviceId, now);
    if (
      !deviceActions(license, device).unblacklist ||
      !(await devices.removeFromBlacklist(trx, licenseId, device.hardwareId))
    )
      throw new HttpError(409, 'confirm.unblacklist.notBlacklisted');
    await deviceEvent(trx, device, 'unblacklisted', actor, now);
    return {
      result: undefined,
      audit: {
        action: 'device.unblacklisted',
        objectType: 'device',
        objectId: deviceId,
        orderId: license.orderId,
        before: { blacklisted: true, hardwareId: device.hardwareId },
        after: { blacklisted: false, hardwareId: device.hardwareId },
      },
    };
  });
}
