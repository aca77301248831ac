import type { Knex } from 'knex';
import * as roles from './roles.ts';
import { ORDER_PERMISSIONS, isOrderPermission, type BuiltInRole } from '../policies/permissions.ts';

/** Inserts for products, features, policies, customers and orders (the console builds on these). */

export interface Entitlements {
  licenseType: 'perpetual' | 'time-limited' | 'subscription' | 'consumption';
  isTrial: boolean;
  trialDays: number | null;
  validityDays: number | null;
  maxActivations: number;
  unlimitedActivations: boolean;
  maxTransfers: number;
  allowOffline: boolean;
  airgapped: boolean;
  floating: boolean;
  floatingUsers: number | null;
  floatingTimeoutMinutes: number | null;
  canBorrow: boolean;
  maxBorrowHours: number | null;
  maintenanceDays: number | null;
}

export function entitlementColumns(e: Entitlements) {
  return {
    license_type: e.licenseType,
    is_trial: e.isTrial,
    trial_days: e.trialDays,
    validity_days: e.validityDays,
    max_activations: e.maxActivations,
    unlimited_activations: e.unlimitedActivations,
    max_transfers: e.maxTransfers,
    allow_offline: e.allowOffline,
    airgapped: e.airgapped,
    floating: e.floating,
    floating_users: e.floatingUsers,
    floating_timeout_minutes: e.floatingTimeoutMinutes,
    can_borrow: e.canBorrow,
    max_borrow_hours: e.maxBorrowHours,
    maintenance_days: e.maintenanceDays,
  };
}

export const DEFAULT_ENTITLEMENTS: Entitlements = {
  licenseType: 'perpetual',
  isTrial: false,
  trialDays: null,
  validityDays: null,
  maxActivations: 1,
  unlimitedActivations: false,
  maxTransfers: -1,
  allowOffline: false,
  airgapped: false,
  floating: false,
  floatingUsers: null,
  floatingTimeoutMinutes: null,
  canBorrow: false,
  maxBorrowHours: null,
  maintenanceDays: null,
};

const idOf = ([id]: unknown[]) => Number(id);

export async function insertProduct(
  db: Knex,
  p: { name: string; code: string; authorizationMethod: 'key' | 'user'; description?: string },
  now: Date,
) {
  return idOf(
    await db('products').insert({
      name: p.name,
      code: p.code,
      authorization_method: p.authorizationMethod,
      description: p.description ?? null,
      archived: false,
      created_at: now,
      updated_at: now,
    }),
  );
}

export async function insertFeature(
  db: Knex,
  f: { productId: number; code: string; name: string; type: 'activation' | 'consumption' },
  now: Date,
) {
  return idOf(
    await db('features').insert({
      product_id: f.productId,
      code: f.code,
      name: f.name,
      type: f.type,
      created_at: now,
      updated_at: now,
    }),
  );
}

export async function insertPolicy(
  db: Knex,
  p: { productId: number; name: string; isDefault: boolean; entitlements: Entitlements; createdBy?: number | null },
  now: Date,
) {
  return idOf(
    await db('license_policies').insert({
      product_id: p.productId,
      name: p.name,
      is_default: p.isDefault,
      ...entitlementColumns(p.entitlements),
      archived: false,
      created_by_account_id: p.createdBy ?? null,
      created_at: now,
      updated_at: now,
    }),
  );
}

export async function insertCustomer(
  db: Knex,
  c: {
    kind: 'company' | 'person';
    name: string;
    contactName?: string;
    email?: string;
    phone?: string;
    address?: string;
    reference?: string;
  },
  now: Date,
) {
  return idOf(
    await db('customers').insert({
      kind: c.kind,
      name: c.name,
      contact_name: c.contactName ?? null,
      email: c.email ?? null,
      phone: c.phone ?? null,
      address: c.address ?? null,
      reference: c.reference ?? null,
      created_at: now,
      updated_at: now,
    }),
  );
}

export async function insertOrder(
  db: Knex,
  o: {
    orderRef: string;
    reference?: string;
    customerId: number;
    isTest?: boolean;
    isTrial?: boolean;
    createdBy?: number | null;
    brandingId?: number | null;
  },
  now: Date,
) {
  return idOf(
    await db('orders').insert({
      branding_id: o.brandingId ?? null,
      order_ref: o.orderRef,
      reference: o.reference ?? null,
      customer_id: o.customerId,
      is_test: o.isTest ?? false,
      is_trial: o.isTrial ?? false,
      created_by_account_id: o.createdBy ?? null,
      created_at: now,
      updated_at: now,
    }),
  );
}

/** Expiry and maintenance end follow from the entitlements and the start date. */
export function licenseDates(e: Entitlements, start: Date) {
  const days = (n: number) => new Date(start.getTime() + n * 86_400_000);
  const expiresAt =
    e.isTrial && e.trialDays
      ? days(e.trialDays)
      : e.validityDays && e.licenseType !== 'perpetual'
        ? days(e.validityDays)
        : null;
  return { expiresAt, maintenanceUntil: e.maintenanceDays ? days(e.maintenanceDays) : null };
}

export async function insertLicense(
  db: Knex,
  l: {
    orderId: number;
    productId: number;
    policyId: number | null;
    licenseKey: string | null;
    entitlements: Entitlements;
    startDate: Date;
    issuedBy?: number | null;
    note?: string;
  },
  now: Date,
) {
  const { expiresAt, maintenanceUntil } = licenseDates(l.entitlements, l.startDate);
  const id = idOf(
    await db('licenses').insert({
      order_id: l.orderId,
      product_id: l.productId,
      policy_id: l.policyId,
      license_key: l.licenseKey,
      enabled: true,
      ...entitlementColumns(l.entitlements),
      start_date: l.startDate,
      expires_at: expiresAt,
      maintenance_until: maintenanceUntil,
      times_activated: 0,
      transfer_count: 0,
      note: l.note ?? null,
      issued_by_account_id: l.issuedBy ?? null,
      created_at: now,
      updated_at: now,
    }),
  );
  await countLicensesOf(db, l.orderId, 1);
  return id;
}

/** Adds to an order's license count (orders.license_count): every insert of licenses calls it, in its transaction. */
export async function countLicensesOf(db: Knex, orderId: number, added: number): Promise<void> {
  await db('orders').where({ id: orderId }).increment('license_count', added);
}

/** Assigns a manager to an order with a role (a role id, or a built-in role; Viewer unless named). */
export async function assignManager(
  db: Knex,
  accountId: number,
  orderId: number,
  now: Date,
  role: number | BuiltInRole = 'viewer',
) {
  const roleId = typeof role === 'number' ? role : (await roles.findBuiltIn(db, role)).id;
  await db('manager_orders').insert({ account_id: accountId, order_id: orderId, role_id: roleId, created_at: now });
}

/**
 * Gives a manager exactly these permissions, the seeds' and tests' shorthand: the account permissions
 * to the manager, the order permissions as the role (found or made with exactly them) of every order
 * the manager is assigned to and of the orders they create.
 */
export async function grantPermissions(db: Knex, accountId: number, permissions: readonly string[]) {
  const own = permissions.filter((p) => !isOrderPermission(p));
  if (own.length)
    await db('manager_permissions').insert(own.map((permission) => ({ account_id: accountId, permission })));
  const onOrders = permissions.filter(isOrderPermission);
  const wanted = [...ORDER_PERMISSIONS].filter((p) => onOrders.includes(p));
  const match = (await roles.list(db)).find((r) => r.permissions.join() === wanted.join());
  const roleId = match?.id ?? (await roles.insert(db, `Role of account ${accountId}`, wanted, new Date()));
  await db('manager_orders').where({ account_id: accountId }).update({ role_id: roleId });
  await db('accounts').where({ id: accountId }).update({ own_order_role_id: roleId });
}

export async function assignLicenseUser(
  db: Knex,
  licenseId: number,
  accountId: number,
  maxActivations: number,
  now: Date,
) {
  await db('license_user_assignments').insert({
    license_id: licenseId,
    account_id: accountId,
    max_activations: maxActivations,
    times_activated: 0,
    created_at: now,
  });
}
