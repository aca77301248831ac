/**
 * `npm run demo`: fills the configured database with a demo vendor and prints the demo logins.
 * Passwords are generated on every run (there are no default credentials anywhere); running it
 * again keeps the data and issues fresh passwords for the demo accounts.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Knex } from 'knex';
import { loadConfig, ConfigError } from '../../config/index.ts';
import { openDatabase, migrateLatest } from '../index.ts';
import { ensureSigningKey } from '../../app/services/signing-keys.ts';
import { hashPassword } from '../../app/lib/passwords.ts';
import { generateLicenseKey } from '../../app/lib/license-keys.ts';
import * as accounts from '../../app/models/accounts.ts';
import * as catalog from '../../app/models/catalog.ts';
import { ORDER_PERMISSIONS, type BuiltInRole } from '../../app/policies/permissions.ts';
import { recordAudit } from '../../app/services/audit.ts';
import { systemActor } from '../../app/services/context.ts';
import { generateVouchers } from '../../app/services/vouchers.ts';
import { saveSettings } from '../../app/models/settings.ts';
import { inTransaction } from '../../app/lib/transaction.ts';
import * as devices from '../../app/models/devices.ts';

const DEMO_ACCOUNTS = [
  { email: 'admin@demo.portico.test', name: 'Dana Admin', role: 'admin' as const },
  { email: 'distributor@demo.portico.test', name: 'Dora Distributor', role: 'manager' as const },
  { email: 'reseller@demo.portico.test', name: 'Rita Reseller', role: 'manager' as const },
  { email: 'it-admin@demo.portico.test', name: 'Ivan IT', role: 'manager' as const },
  { email: 'enduser@demo.portico.test', name: 'Eve Enduser', role: 'end_user' as const },
];

const password = () => crypto.randomBytes(12).toString('base64url');

/** Seeds the demo vendor; returns the codes of the reseller's sheet, shown once (only their hashes are kept). */
async function seed(db: Knex, now: Date): Promise<string[]> {
  const ids: Record<string, number> = {};
  for (const a of DEMO_ACCOUNTS) {
    ids[a.email] = await accounts.insert(db, { ...a, passwordHash: null, language: 'en' }, now);
  }
  const cad = await catalog.insertProduct(
    db,
    { name: 'Acme CAD', code: 'acme-cad', authorizationMethod: 'key', description: 'Desktop CAD suite' },
    now,
  );
  await catalog.insertFeature(db, { productId: cad, code: 'pdf-export', name: 'PDF export', type: 'activation' }, now);
  await catalog.insertFeature(
    db,
    { productId: cad, code: 'render-minutes', name: 'Cloud render minutes', type: 'consumption' },
    now,
  );
  const analytics = await catalog.insertProduct(
    db,
    { name: 'Acme Analytics', code: 'acme-analytics', authorizationMethod: 'user' },
    now,
  );
  const plant = await catalog.insertProduct(
    db,
    { name: 'Acme Plant Control', code: 'acme-plant', authorizationMethod: 'key' },
    now,
  );

  const base = catalog.DEFAULT_ENTITLEMENTS;
  const cadPerpetual = { ...base, maxActivations: 3, maxTransfers: 2, allowOffline: true, maintenanceDays: 365 };
  const cadSubscription = {
    ...base,
    licenseType: 'subscription' as const,
    validityDays: 365,
    maxActivations: 2,
    maxTransfers: 0,
  };
  const cadTrial = { ...base, licenseType: 'time-limited' as const, isTrial: true, trialDays: 30, maxActivations: 1 };
  const analyticsTeam = {
    ...base,
    maxActivations: 2,
    maxTransfers: 0,
    floating: true,
    floatingUsers: 5,
    floatingTimeoutMinutes: 30,
    canBorrow: true,
    maxBorrowHours: 72,
  };
  const plantAirgap = { ...base, allowOffline: true, airgapped: true, maxActivations: 1 };
  const addPolicy = (productId: number, name: string, isDefault: boolean, entitlements: catalog.Entitlements) =>
    catalog.insertPolicy(db, { productId, name, isDefault, entitlements }, now);
  const cadPerpetualId = await addPolicy(cad, 'Perpetual, 3 seats', true, cadPerpetual);
  const cadSubscriptionId = await addPolicy(cad, 'Annual subscription', false, cadSubscription);
  await addPolicy(cad, '30-day trial', false, cadTrial);
  const analyticsId = await addPolicy(analytics, 'Team (floating)', true, analyticsTeam);
  const plantId = await addPolicy(plant, 'Air-gapped site', true, plantAirgap);

  const globex = await catalog.insertCustomer(
    db,
    {
      kind: 'company',
      name: 'Globex GmbH',
      contactName: 'Greta Globex',
      email: 'it@globex.example',
      address: 'Hauptstraße 1, 10115 Berlin',
    },
    now,
  );
  const initech = await catalog.insertCustomer(
    db,
    { kind: 'company', name: 'Initech SA', contactName: 'Pierre Lumbergh', email: 'licences@initech.example' },
    now,
  );
  await catalog.insertCustomer(db, { kind: 'person', name: 'Jane Roe', email: 'jane.roe@example.com' }, now);

  const o1 = await catalog.insertOrder(
    db,
    { orderRef: 'ORD-1001', reference: 'Globex CAD rollout', customerId: globex },
    now,
  );
  const o2 = await catalog.insertOrder(
    db,
    { orderRef: 'ORD-1002', reference: 'Initech analytics team', customerId: initech },
    now,
  );
  const o3 = await catalog.insertOrder(
    db,
    { orderRef: 'ORD-1003', reference: 'Globex plant', customerId: globex },
    now,
  );
  /** `count` licenses of `orderId` for a product and policy; key-based unless `keyed` is false (user-based). */
  const addLicenses = async (
    count: number,
    orderId: number,
    productId: number,
    policyId: number,
    entitlements: catalog.Entitlements,
    keyed = true,
  ) => {
    const added: number[] = [];
    for (let i = 0; i < count; i++)
      added.push(
        await catalog.insertLicense(
          db,
          {
            orderId,
            productId,
            policyId,
            licenseKey: keyed ? generateLicenseKey() : null,
            entitlements,
            startDate: now,
          },
          now,
        ),
      );
    return added;
  };
  const cadLicenses = await addLicenses(10, o1, cad, cadPerpetualId, cadPerpetual);
  const subscriptions = await addLicenses(3, o1, cad, cadSubscriptionId, cadSubscription);
  const [teamLicense] = await addLicenses(3, o2, analytics, analyticsId, analyticsTeam, false);
  await catalog.assignLicenseUser(db, teamLicense!, ids['enduser@demo.portico.test']!, 2, now);
  const [plantLicense] = await addLicenses(2, o3, plant, plantId, plantAirgap);
  await seedActivity(db, now, {
    cadLicenses,
    subscriptions,
    teamLicense: teamLicense!,
    plantLicense: plantLicense!,
    endUser: ids['enduser@demo.portico.test']!,
    orders: { cad: o1, team: o2, plant: o3 },
  });

  // The channel (docs/user-portal.md, "Roles", "Delegation"): the vendor assigned the distributor;
  // the distributor invited the reseller (Manager on ORD-1001, Viewer on ORD-1002) and gave it a
  // sub-quota of 10 Acme CAD out of its pool of 50; the reseller invited the customer's IT admin as
  // Operator on ORD-1001, and the distributor invited the IT admin as Operator on ORD-1002.
  const distributor = ids['distributor@demo.portico.test']!;
  const reseller = ids['reseller@demo.portico.test']!;
  const itAdmin = ids['it-admin@demo.portico.test']!;
  await catalog.grantPermissions(db, distributor, ['create_order', 'create_bundle_order', ...ORDER_PERMISSIONS]);
  await catalog.assignManager(db, distributor, o3, now, 'viewer');
  const invite = async (who: number, order: number, role: BuiltInRole, by: number) => {
    await catalog.assignManager(db, who, order, now, role);
    await db('manager_orders').where({ account_id: who, order_id: order }).update({ invited_by: by });
  };
  for (const order of [o1, o2]) await catalog.assignManager(db, distributor, order, now, 'manager');
  await invite(reseller, o1, 'manager', distributor);
  await invite(reseller, o2, 'viewer', distributor);
  await invite(itAdmin, o1, 'operator', reseller);
  await invite(itAdmin, o2, 'operator', distributor);
  await db('manager_quotas').insert([
    { account_id: distributor, product_id: cad, quota: 50, issued: 10 },
    { account_id: distributor, product_id: analytics, quota: null, issued: 0 },
    { account_id: reseller, product_id: cad, quota: 10, issued: 0, granted_by: distributor },
    // Used up: the console's overview lists it among what needs attention.
    { account_id: distributor, product_id: plant, quota: 2, issued: 2 },
  ]);
  // A sheet of 5 unredeemed codes the reseller generated on ORD-1001 (out of its sub-quota), and
  // self-service on, so that the demo end user (or a new visitor) can redeem one at /redeem.
  await saveSettings(db, { endUserSelfService: true }, now);
  const sheet = await generateVouchers(
    { db, clock: { now: () => now } },
    systemActor('npm run demo'),
    (await accounts.findById(db, reseller))!,
    o1,
    { policyId: cadPerpetualId, count: 5, days: 90 },
  );
  return sheet.codes;
}

const DAY = 24 * 60 * 60 * 1000;
const hex = (bytes: number) => crypto.randomBytes(bytes).toString('hex');

/**
 * Life in the demo, so that the dashboards have something to show (docs/user-portal.md
 * "Dashboard", docs/console.md "Overview"): activations on every channel (a license with every seat
 * taken, a device not seen for months, floating slots held right now, an air-gapped plant PC), a
 * blacklisted machine, subscriptions expiring within 30, 60 and 90 days, refused activations with
 * their reasons, and a few security events.
 */
async function seedActivity(
  db: Knex,
  now: Date,
  w: {
    cadLicenses: number[];
    subscriptions: number[];
    teamLicense: number;
    plantLicense: number;
    endUser: number;
    orders: { cad: number; team: number; plant: number };
  },
) {
  const actor = systemActor('npm run demo');
  const ago = (days: number, minutes = 0) => new Date(now.getTime() - days * DAY - minutes * 60_000);
  const activate = async (
    licenseId: number,
    orderId: number,
    d: { host: string; channel: 'online' | 'offline' | 'airgap'; at: Date; seen?: Date; userId?: number },
  ) => {
    const hardwareId = `DEMO-${hex(6).toUpperCase()}`;
    const [id] = await db('devices').insert({
      license_id: licenseId,
      license_user_account_id: d.userId ?? null,
      hardware_id: hardwareId,
      active_hardware_id: hardwareId,
      hostname: d.host,
      os: d.channel === 'airgap' ? 'Windows 10 IoT' : 'Windows 11',
      app_version: '4.2.0',
      channel: d.channel,
      request_hash: hex(32),
      airgap_commitment: d.channel === 'airgap' ? hex(10) : null,
      activated_at: d.at,
      last_seen_at: d.seen ?? d.at,
      // A floating slot (the analytics team license) is held for its timeout after each check-in.
      floating_expires_at: d.userId ? new Date(now.getTime() + 30 * 60_000) : null,
    });
    const deviceId = Number(id);
    await db('licenses').where({ id: licenseId }).increment('times_activated', 1);
    if (d.userId)
      await db('license_user_assignments')
        .where({ license_id: licenseId, account_id: d.userId })
        .increment('times_activated', 1);
    await devices.addHistory(db, { licenseId, deviceId, event: 'activated', channel: d.channel, hardwareId }, d.at);
    await recordAudit(db, actor, d.at, {
      action: 'activation.granted',
      objectType: 'license',
      objectId: licenseId,
      orderId,
      after: { deviceId, channel: d.channel, hardwareId, transfer: false },
    });
    return { deviceId, hardwareId };
  };
  const refuse = async (
    licenseId: number | null,
    orderId: number | null,
    channel: 'online' | 'offline' | 'airgap',
    code: string,
    at: Date,
    hardwareId = `DEMO-${hex(6).toUpperCase()}`,
  ) => {
    // As services/refusals.ts records a refusal: a history row when the license is known, an audit event.
    if (licenseId)
      await devices.addHistory(
        db,
        { licenseId, deviceId: null, event: 'refused', channel, hardwareId, detail: code },
        at,
      );
    await recordAudit(db, { ...actor, label: null, ip: '198.51.100.23' }, at, {
      action: 'activation.refused',
      objectType: licenseId ? 'license' : undefined,
      objectId: licenseId ?? undefined,
      orderId,
      after: { code, channel, hardwareId, requestHash: hex(32) },
    });
  };
  const [full, shared, old, banned] = w.cadLicenses;
  // ORD-1001: one license with all 3 seats taken (and refused a 4th), one with a workstation not
  // seen for four months, one whose stolen laptop the vendor blacklisted.
  for (const [i, host] of ['cad-ws-01', 'cad-ws-02', 'cad-laptop-03'].entries())
    await activate(full!, w.orders.cad, { host, channel: i === 2 ? 'offline' : 'online', at: ago(20 - i * 5) });
  await refuse(full!, w.orders.cad, 'online', 'no_seats', ago(2, 30));
  await refuse(full!, w.orders.cad, 'online', 'no_seats', ago(0, 45));
  await activate(shared!, w.orders.cad, { host: 'cad-ws-04', channel: 'online', at: ago(12) });
  await activate(old!, w.orders.cad, { host: 'cad-old-pc', channel: 'offline', at: ago(200), seen: ago(120) });
  const stolen = await activate(banned!, w.orders.cad, { host: 'stolen-laptop', channel: 'online', at: ago(40) });
  await db('devices')
    .where({ id: stolen.deviceId })
    .update({ deactivated_at: ago(10), active_hardware_id: null, deactivation_reason: 'revoked', blacklisted: true });
  await db('licenses').where({ id: banned! }).decrement('times_activated', 1);
  await db('license_blacklist').insert({ license_id: banned!, hardware_id: stolen.hardwareId, created_at: ago(10) });
  await devices.addHistory(
    db,
    {
      licenseId: banned!,
      deviceId: stolen.deviceId,
      event: 'revoked',
      channel: 'online',
      hardwareId: stolen.hardwareId,
    },
    ago(10),
  );
  await refuse(banned!, w.orders.cad, 'online', 'blacklisted', ago(3), stolen.hardwareId);
  // Subscriptions bought about a year ago: renewals due within 30, 60 and 90 days.
  for (const [i, days] of [20, 50, 85].entries())
    await db('licenses')
      .where({ id: w.subscriptions[i]! })
      .update({ start_date: ago(365 - days), expires_at: new Date(now.getTime() + days * DAY) });
  await refuse(w.subscriptions[0]!, w.orders.cad, 'offline', 'offline_not_allowed', ago(6));
  // ORD-1002: the team's floating license, two slots held right now by the demo end user.
  for (const host of ['eve-laptop', 'eve-desktop'])
    await activate(w.teamLicense, w.orders.team, {
      host,
      channel: 'online',
      at: ago(1),
      seen: ago(0, 5),
      userId: w.endUser,
    });
  // ORD-1003: the air-gapped plant PC, activated with codes.
  await activate(w.plantLicense, w.orders.plant, { host: 'plant-hmi-01', channel: 'airgap', at: ago(8) });
  await refuse(w.plantLicense, w.orders.plant, 'offline', 'airgap_only', ago(8, 10));
  // Security events: a forged request for no known license, failed sign-ins.
  await refuse(null, null, 'offline', 'signature', ago(4));
  for (const minutes of [3, 2, 1])
    await recordAudit(db, { ...actor, label: 'admin@demo.portico.test', ip: '203.0.113.66' }, ago(1, minutes), {
      action: 'auth.login_failed',
      after: { email: 'admin@demo.portico.test', reason: 'wrong_password' },
    });
}

async function main() {
  const config = loadConfig();
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const db = openDatabase(config.databaseUrl);
  try {
    await migrateLatest(db);
    const now = new Date();
    await ensureSigningKey(db, config.dataDir, now);
    const logins: { email: string; role: string; password: string }[] = [];
    let codes: string[] = [];
    await inTransaction(db, async (trx) => {
      const existing = await trx('products').where({ code: 'acme-cad' }).first();
      if (!existing) codes = await seed(trx, now);
      for (const a of DEMO_ACCOUNTS) {
        const account = await accounts.findByEmail(trx, a.email);
        if (!account) continue;
        const pw = password();
        await accounts.update(
          trx,
          account.id,
          { passwordHash: await hashPassword(pw), mustChangePassword: false, disabled: false },
          now,
        );
        logins.push({ email: a.email, role: a.role, password: pw });
      }
      await recordAudit(trx, systemActor('npm run demo'), now, {
        action: existing ? 'demo.passwords_renewed' : 'demo.seeded',
      });
    });
    console.log(
      `Demo data is in ${config.databaseUrl.startsWith('sqlite:') ? config.databaseUrl.slice(7) : 'the configured database'}.`,
    );
    console.log('Demo logins (new passwords on every run):');
    for (const l of logins) console.log(`  ${l.role.padEnd(9)} ${l.email.padEnd(30)} ${l.password}`);
    if (codes.length) {
      console.log('Redeemable codes of ORD-1001 (Acme CAD; shown only now, redeem one at /redeem):');
      for (const c of codes) console.log(`  ${c}`);
    }
    console.log(`Start the server with "npm start" and log in at ${config.baseUrl}/login`);
  } finally {
    await db.destroy();
  }
}

main().catch((err) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exitCode = 1;
});
