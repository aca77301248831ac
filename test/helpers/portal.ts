import type { Knex } from 'knex';
import * as catalog from '../../app/models/catalog.ts';
import { PERMISSIONS } from '../../app/policies/permissions.ts';
import { createAccount } from './app.ts';

/**
 * Two orders (A and B), each with a key-based license with an active device; order A also has a
 * user-based license with two users, one of whom has an active device. Managers: A with every
 * permission, A with none, B with every permission; an end user; an admin.
 */
export async function portalWorld(db: Knex) {
  const now = new Date();
  const product = await catalog.insertProduct(db, { name: 'Acme CAD', code: 'cad', authorizationMethod: 'key' }, now);
  const userProduct = await catalog.insertProduct(
    db,
    { name: 'Acme Analytics', code: 'analytics', authorizationMethod: 'user' },
    now,
  );
  const floating = {
    ...catalog.DEFAULT_ENTITLEMENTS,
    maxActivations: 3,
    maxTransfers: 2,
    allowOffline: true,
    floating: true,
    floatingUsers: 3,
    floatingTimeoutMinutes: 30,
    canBorrow: true,
    maxBorrowHours: 48,
  };
  const policy = await catalog.insertPolicy(
    db,
    { productId: product, name: 'Floating', isDefault: true, entitlements: floating },
    now,
  );
  const userPolicy = await catalog.insertPolicy(
    db,
    {
      productId: userProduct,
      name: 'Team',
      isDefault: true,
      entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, maxActivations: 2 },
    },
    now,
  );
  const customer = await catalog.insertCustomer(db, { kind: 'company', name: 'Globex' }, now);
  const otherCustomer = await catalog.insertCustomer(db, { kind: 'company', name: 'Initech' }, now);
  const orderA = await catalog.insertOrder(db, { orderRef: 'A-1', customerId: customer }, now);
  const orderB = await catalog.insertOrder(db, { orderRef: 'B-1', customerId: otherCustomer }, now);
  const licenseA = await catalog.insertLicense(
    db,
    {
      orderId: orderA,
      productId: product,
      policyId: policy,
      licenseKey: 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA',
      entitlements: floating,
      startDate: now,
    },
    now,
  );
  const licenseB = await catalog.insertLicense(
    db,
    {
      orderId: orderB,
      productId: product,
      policyId: policy,
      licenseKey: 'BBBB-BBBB-BBBB-BBBB-BBBB-BBBB-BBBB',
      entitlements: floating,
      startDate: now,
    },
    now,
  );
  const userLicense = await catalog.insertLicense(
    db,
    {
      orderId: orderA,
      productId: userProduct,
      policyId: userPolicy,
      licenseKey: null,
      entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, maxActivations: 2 },
      startDate: now,
    },
    now,
  );

  const managerAll = await createAccount(db, { role: 'manager', name: 'All Perms' });
  const managerNone = await createAccount(db, { role: 'manager', name: 'No Perms' });
  const managerB = await createAccount(db, { role: 'manager', name: 'Other Order' });
  const endUser = await createAccount(db, { role: 'end_user', name: 'End User' });
  const secondUser = await createAccount(db, { role: 'end_user', name: 'Second User' });
  const admin = await createAccount(db, { role: 'admin', name: 'Admin' });
  // Roles on orders: managerAll is Manager on A (with every account permission), managerNone Viewer
  // on A, operator Operator on A, managerB Manager on B; mixed is Operator on A and Manager on B.
  const operator = await createAccount(db, { role: 'manager', name: 'Operator' });
  const mixed = await createAccount(db, { role: 'manager', name: 'Mixed Roles' });
  await catalog.assignManager(db, managerAll.id, orderA, now);
  await catalog.assignManager(db, managerNone.id, orderA, now, 'viewer');
  await catalog.assignManager(db, managerB.id, orderB, now);
  await catalog.grantPermissions(db, managerAll.id, PERMISSIONS);
  await catalog.grantPermissions(db, managerB.id, PERMISSIONS);
  await catalog.assignManager(db, operator.id, orderA, now, 'operator');
  await catalog.assignManager(db, mixed.id, orderA, now, 'operator');
  await catalog.assignManager(db, mixed.id, orderB, now, 'manager');
  for (const m of [managerAll.id, managerB.id]) {
    await db('manager_quotas').insert([
      { account_id: m, product_id: product, quota: 5, issued: 0 },
      { account_id: m, product_id: userProduct, quota: null, issued: 0 },
    ]);
  }
  await catalog.assignLicenseUser(db, userLicense, endUser.id, 2, now);
  await catalog.assignLicenseUser(db, userLicense, secondUser.id, 2, now);

  const device = async (licenseId: number, hardwareId: string, userId: number | null = null) => {
    const [id] = await db('devices').insert({
      license_id: licenseId,
      license_user_account_id: userId,
      hardware_id: hardwareId,
      active_hardware_id: hardwareId,
      hostname: `${hardwareId}.local`,
      channel: 'offline',
      activated_at: now,
    });
    await db('licenses').where({ id: licenseId }).increment('times_activated', 1);
    if (userId)
      await db('license_user_assignments')
        .where({ license_id: licenseId, account_id: userId })
        .increment('times_activated', 1);
    return Number(id);
  };
  const deviceA = await device(licenseA, 'HW-A');
  const deviceB = await device(licenseB, 'HW-B');
  const userDevice = await device(userLicense, 'HW-U', endUser.id);
  return {
    product,
    userProduct,
    policy,
    userPolicy,
    customer,
    orderA,
    orderB,
    licenseA,
    licenseB,
    userLicense,
    deviceA,
    deviceB,
    userDevice,
    managerAll,
    managerNone,
    managerB,
    operator,
    mixed,
    endUser,
    secondUser,
    admin,
  };
}
