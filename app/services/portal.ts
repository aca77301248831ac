import type { Knex } from 'knex';
import * as managers from '../models/managers.ts';
import * as roles from '../models/roles.ts';
import * as devices from '../models/devices.ts';
import * as licenses from '../models/licenses.ts';
import { HttpError, ValidationError, notFound } from '../lib/errors.ts';
import type { Account } from '../models/accounts.ts';
import { issuableFor } from '../policies/portal.ts';
import { deviceActions } from '../policies/devices.ts';
import { deviceData, licenseData, publishEvent } from './events.ts';
import { auditedChange } from './changes.ts';
import { issueLicenses, type IssueRequest, type IssueResult } from './licenses.ts';
import { mailPlacements, placeUser, type Placement } from './license-users.ts';
import type { LinkMailDeps } from './auth.ts';
import { createCustomer, createOrder, type OrderFields } from './customers.ts';
import * as customers from '../models/customers.ts';
import type { CustomerFields } from '../models/customers.ts';
import { scopeOrders } from '../policies/orders.ts';
import type { Actor, ServiceDeps } from './context.ts';
import { createPolicy, type PolicyInput } from './policies.ts';
import { inTransaction } from '../lib/transaction.ts';

/** What the User Portal adds on top of the console's services: quotas, scope-bound actions, dispatch. */

/**
 * Counts `count` licenses against the manager's quota for the product with one guarded update, so
 * two racing requests can never both pass the last free unit (on SQLite and MySQL alike). `field`:
 * the form field the refusal is shown at.
 */
export async function consumeQuota(
  trx: Knex,
  accountId: number,
  productId: number,
  count: number,
  field = 'quantity',
): Promise<void> {
  if (!(await managers.reserveQuota(trx, accountId, productId, count)))
    throw new ValidationError({ [field]: 'portal.quotaExceeded' });
}

/**
 * Issues licenses as a manager: only from allowed policies, within quota, users created as needed; an
 * existing account the manager does not own is invited instead (services/license-users.ts placeUser).
 * `placements` collects what to mail once the transaction committed (mailPlacements).
 */
export async function issueAsManager(
  deps: ServiceDeps,
  actor: Actor,
  account: Account,
  orderId: number,
  request: IssueRequest,
  placements: Placement[],
): Promise<IssueResult> {
  if (account.role !== 'admin') {
    const allowed = await issuableFor(deps.db, account);
    if (!allowed.some((p) => p.id === request.policyId))
      throw new ValidationError({ policy_id: 'portal.policyNotAllowed' });
  }
  return issueLicenses(deps, actor, orderId, request, {
    beforeInsert:
      account.role === 'admin' ? undefined : (trx, productId, count) => consumeQuota(trx, account.id, productId, count),
    assignUser: async (trx, licenseId, email, maxActivations, now) => {
      const placed = await placeUser(
        trx,
        account,
        licenseId,
        { email, name: null, language: account.language, maxActivations },
        now,
      );
      placements.push(placed);
      return { accountId: placed.account.id, created: placed.kind === 'assigned' && placed.created };
    },
  });
}

/**
 * Issues licenses into an order and, once they are committed, mails whom they concern: a new account
 * its set-password link, an invited one its invitation. The console and the User Portal both issue
 * through it (an admin's account owns every end user, so its placements are direct assignments).
 */
export async function issueAndInvite(
  deps: LinkMailDeps,
  actor: Actor,
  account: Account,
  orderId: number,
  request: IssueRequest,
): Promise<IssueResult> {
  const placements: Placement[] = [];
  const issued = await issueAsManager(deps, actor, account, orderId, request, placements);
  await mailPlacements(deps, placements);
  return issued;
}

export interface NewOrder {
  customerId: number | null;
  customer: CustomerFields | null;
  order: OrderFields;
  lines: IssueRequest[];
}

/**
 * Creates an order (and its customer when new) with the manager assigned to it, and issues the
 * bundle's lines, all in one transaction: a refused line (quota, policy) leaves nothing behind.
 */
export async function createOrderAsManager(
  deps: ServiceDeps,
  actor: Actor,
  account: Account,
  input: NewOrder,
  placements: Placement[],
): Promise<number> {
  return inTransaction(deps.db, async (trx) => {
    const inner = { ...deps, db: trx };
    // Checked again here, where the order is made: the customer's every order is in the scope, so a
    // taken number (the field error of createOrder) is one the manager can see.
    if (
      input.customerId !== null &&
      !(await customers.isWhollyIn(trx, input.customerId, scopeOrders(trx, account).select('orders.id')))
    )
      throw new ValidationError({ customer_id: 'validation.choice' });
    const customerId = input.customerId ?? (await createCustomer(inner, actor, input.customer!));
    const orderId = await createOrder(inner, actor, customerId, input.order, async (t, id, now) => {
      if (account.role === 'manager') {
        const roleId = (await managers.ownOrderRoleOf(t, account.id)) ?? (await roles.findDefault(t)).id;
        await managers.assignOrder(t, account.id, id, roleId, null, now);
      }
    });
    for (const line of input.lines) await issueAsManager(inner, actor, account, orderId, line, placements);
    return orderId;
  });
}

/**
 * Customers a manager may pick for a new order: those of the orders they manage whose every order they
 * manage. A customer shared with orders outside the scope is left out: order numbers are unique per
 * customer, and a number refused for it could belong to an order the manager must not learn of.
 */
export async function customersInScope(db: Knex, orderIds: Knex.QueryBuilder) {
  return customers.listWhollyIn(db, orderIds, 500);
}

/** Marks a device of a floating license as borrowed until `until` (capped by the policy's maximum). */
export async function borrowDevice(
  deps: ServiceDeps,
  actor: Actor,
  license: licenses.License,
  deviceId: number,
  hours: number,
): Promise<Date> {
  return auditedChange(deps, actor, async (trx, now) => {
    const device = await devices.findForLicense(trx, license.id, deviceId);
    if (!device) throw notFound();
    if (!deviceActions(license, device).borrow)
      throw new HttpError(409, device.active ? 'portal.borrowNotAllowed' : 'licenses.deviceAlreadyInactive');
    if (hours > (license.maxBorrowHours ?? 0)) throw new ValidationError({ hours: 'portal.borrowTooLong' });
    const until = new Date(now.getTime() + hours * 3600_000);
    await devices.setBorrowedUntil(trx, deviceId, until);
    await devices.addHistory(
      trx,
      {
        licenseId: license.id,
        deviceId,
        event: 'borrowed',
        channel: device.channel,
        hardwareId: device.hardwareId,
        detail: until.toISOString(),
        actorId: actor.accountId,
      },
      now,
    );
    return {
      result: until,
      audit: {
        action: 'device.borrowed',
        objectType: 'device',
        objectId: deviceId,
        orderId: license.orderId,
        before: { borrowedUntil: device.borrowedUntil },
        after: { borrowedUntil: until },
      },
    };
  });
}

/** An end user releases one of their own active devices (self-service). */
export async function releaseOwnDevice(
  deps: ServiceDeps,
  actor: Actor,
  accountId: number,
  deviceId: number,
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const licenseId = await devices.licenseOfUserDevice(trx, deviceId, accountId);
    if (!licenseId) throw notFound();
    await licenses.lockLicense(trx, licenseId);
    const device = (await devices.findForLicense(trx, licenseId, deviceId))!;
    if (!(await devices.deactivate(trx, deviceId, 'device', now)))
      throw new HttpError(409, 'licenses.deviceAlreadyInactive');
    await devices.releaseSeat(trx, device, now);
    await devices.addHistory(
      trx,
      {
        licenseId: device.licenseId,
        deviceId,
        event: 'deactivated',
        channel: device.channel,
        hardwareId: device.hardwareId,
        detail: 'self-service',
        actorId: accountId,
      },
      now,
    );
    const orderId = Number((await trx('licenses').where({ id: device.licenseId }).first('order_id')).order_id);
    await publishEvent(trx, deps.clock, {
      type: 'device.deactivated',
      orderId,
      data: { ...licenseData((await licenses.findById(trx, device.licenseId, now))!), ...deviceData(device) },
    });
    return {
      result: undefined,
      audit: {
        action: 'device.released_by_user',
        objectType: 'device',
        objectId: deviceId,
        orderId,
        before: { active: true },
        after: { active: false, hardwareId: device.hardwareId },
      },
    };
  });
}

/**
 * A manager with create_license_policy creates a policy for a product they may issue; when the vendor
 * restricted their policies to a list, the new policy joins that list so they can issue from it.
 */
export async function createPolicyAsManager(
  deps: ServiceDeps,
  actor: Actor,
  account: Account,
  productId: number,
  input: PolicyInput,
): Promise<number> {
  return inTransaction(deps.db, async (trx) => {
    if (
      account.role !== 'admin' &&
      !(await trx('manager_quotas').where({ account_id: account.id, product_id: productId }).first())
    )
      throw new ValidationError({ product_id: 'portal.productNotAllowed' });
    const id = await createPolicy({ ...deps, db: trx }, actor, productId, {
      ...input,
      isDefault: account.role === 'admin' ? input.isDefault : false,
    });
    if (account.role === 'manager' && (await managers.allowedPoliciesOf(trx, account.id)).length)
      await trx('manager_policies').insert({ account_id: account.id, policy_id: id });
    return id;
  });
}
