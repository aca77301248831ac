import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import request from 'supertest';
import { createApp } from '../../app/app.ts';
import { loadConfig } from '../../config/index.ts';
import { createLogger } from '../../app/lib/logger.ts';
import { ManualClock } from '../../app/lib/clock.ts';
import { hashPassword } from '../../app/lib/passwords.ts';
import { newKeyPair } from '../../app/crypto/signing-keys.ts';
import { writePrivateKey } from '../../app/lib/key-files.ts';
import { generateLicenseKey } from '../../app/lib/license-keys.ts';
import { migrateLatest, migrateTo, migrationNames } from '../../db/index.ts';
import { verifyEnvelope } from '../../sdk/src/envelope.ts';
import { loginAgent } from '../helpers/app.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { makeDevice } from '../helpers/device.ts';
import { installationEnv, ok, portico } from '../helpers/portico.ts';

/**
 * Upgrades without surprises (docs/operations.md, "Upgrading"): the database as the previous release
 * left it — migrations up to 0023_renewal_requests, the last released one — with data written in
 * that schema's own SQL (accounts with passwords, a signing key, a product, customer, order with a
 * manager, licenses, an activated device with its history and audit trail), then this release's
 * migrations, then the data checked and used through the real app: accounts log in, the old device
 * checks in, a license still activates and is signed by the pre-upgrade key.
 */

const LAST_RELEASED = '0023_renewal_requests';

describe(`upgrade from the last release (schema ${LAST_RELEASED})`, function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let dataDir: string;
  before(async () => {
    database = await createTestDatabase({ migrate: false });
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-upgrade-'));
  });
  after(async () => {
    await database.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('keeps every row and leaves the installation usable', async () => {
    const { db } = database;
    assert.ok(migrationNames().includes(LAST_RELEASED));
    await migrateTo(db, LAST_RELEASED);
    const now = new Date(Date.now() - 7 * 86_400_000);
    const stamps = { created_at: now, updated_at: now };

    // --- the previous release's data, in its schema
    const passwordHash = await hashPassword('an old admin password 1');
    const [adminId] = await db('accounts').insert({
      email: 'admin@vendor.example',
      name: 'Ada Admin',
      password_hash: passwordHash,
      role: 'admin',
      language: 'de',
      ...stamps,
    });
    const [managerId] = await db('accounts').insert({
      email: 'manager@globex.example',
      name: 'Max Manager',
      password_hash: await hashPassword('an old manager password 2'),
      role: 'manager',
      language: 'en',
      ...stamps,
    });
    const key = newKeyPair();
    writePrivateKey(dataDir, key.kid, key.privateKeyPem);
    await db('signing_keys').insert({
      kid: key.kid,
      public_key_pem: key.publicKeyPem,
      status: 'active',
      created_at: now,
      activated_at: now,
    });
    const [productId] = await db('products').insert({
      name: 'Acme CAD',
      code: 'acme-cad',
      authorization_method: 'key',
      ...stamps,
    });
    const [customerId] = await db('customers').insert({ kind: 'company', name: 'Globex', ...stamps });
    const [orderId] = await db('orders').insert({
      order_ref: 'PO-2025-17',
      customer_id: customerId,
      created_by_account_id: adminId,
      license_count: 2,
      ...stamps,
    });
    const role = await db('roles').where({ is_default: true }).first('id');
    await db('manager_orders').insert({ account_id: managerId, order_id: orderId, role_id: role.id, created_at: now });
    const licenseKeys = [generateLicenseKey(), generateLicenseKey()];
    const licenseIds: number[] = [];
    for (const licenseKey of licenseKeys) {
      const [id] = await db('licenses').insert({
        order_id: orderId,
        product_id: productId,
        license_key: licenseKey,
        license_type: 'perpetual',
        max_activations: 3,
        max_transfers: 0,
        allow_offline: true,
        start_date: now,
        issued_by_account_id: adminId,
        ...stamps,
      });
      licenseIds.push(Number(id));
    }
    const device = makeDevice('HW-BEFORE-UPGRADE');
    const [deviceId] = await db('devices').insert({
      license_id: licenseIds[0],
      hardware_id: device.hardwareId,
      active_hardware_id: device.hardwareId,
      hostname: 'cad-01.globex.example',
      os: 'TestOS 1',
      app_version: '1.0.0',
      channel: 'online',
      device_public_key: device.devicePublicKey,
      activated_at: now,
      last_seen_at: now,
    });
    // The activation request's nonce: the license files of the device name it.
    await db('request_nonces').insert({
      nonce: device.activationRequest({ product: 'acme-cad', licenseKey: licenseKeys[0] }).nonce,
      kind: 'activation',
      license_id: licenseIds[0],
      device_id: deviceId,
      created_at: now,
    });
    await db('licenses').where({ id: licenseIds[0] }).update({ times_activated: 1 });
    await db('activation_history').insert({
      license_id: licenseIds[0],
      device_id: deviceId,
      event: 'activated',
      channel: 'online',
      hardware_id: device.hardwareId,
      occurred_at: now,
    });
    for (const [action, objectType, objectId] of [
      ['licenses.issued', 'order', orderId],
      ['activation.granted', 'license', licenseIds[0]],
      ['auth.login', 'account', adminId],
    ] as const)
      await db('audit_events').insert({
        occurred_at: now,
        actor_account_id: adminId,
        actor_label: 'admin@vendor.example',
        action,
        object_type: objectType,
        object_id: String(objectId),
        order_id: objectType === 'account' ? null : orderId,
        after_state: JSON.stringify({ note: 'before the upgrade' }),
      });
    const counts = async () => {
      const out: Record<string, number> = {};
      for (const table of [
        'accounts',
        'signing_keys',
        'orders',
        'licenses',
        'devices',
        'request_nonces',
        'activation_history',
        'audit_events',
      ])
        out[table] = Number((await db(table).count({ n: '*' }).first())!.n);
      return out;
    };
    const before = await counts();

    // --- what the operator sees before starting the new release, then the upgrade itself
    const env = installationEnv(database.url, dataDir);
    const status = ok(await portico(env, 'migrate:status')).stdout;
    assert.match(status, new RegExp(`latest ${LAST_RELEASED}`));
    const pending = migrationNames().slice(migrationNames().indexOf(LAST_RELEASED) + 1);
    for (const name of pending) assert.match(status, new RegExp(`^ {2}${name}$`, 'm'));
    assert.deepEqual(await migrateLatest(db), pending);

    // --- the data, intact
    assert.deepEqual(await counts(), before);
    const license = await db('licenses').where({ id: licenseIds[0] }).first();
    assert.equal(license.license_key, licenseKeys[0]);
    assert.equal(Number(license.times_activated), 1);
    assert.equal((await db('orders').where({ id: orderId }).first()).branding_id, null);
    const admin = await db('accounts').where({ id: adminId }).first();
    assert.equal(admin.password_hash, passwordHash);
    assert.equal(admin.directory_dn, null);
    assert.equal((await db('signing_keys').where({ kid: key.kid }).first()).status, 'active');

    // --- and usable, through the real app
    const config = {
      ...loadConfig({ NODE_ENV: 'test', DATA_DIR: dataDir, LOG_LEVEL: 'warn' }),
      databaseUrl: database.url,
      sessionSecret: 'test-session-secret-that-is-long-enough-1234567890',
      baseUrl: 'http://portico.test',
    };
    const logs: string[] = [];
    const sink = new Writable({
      write: (c, _e, done) => {
        logs.push(String(c));
        done();
      },
    });
    const app = createApp({ db, config, logger: createLogger('warn', sink), clock: new ManualClock() });
    const adminAgent = await loginAgent(app, 'admin@vendor.example', 'an old admin password 1');
    const page = await adminAgent.get(`/admin/licenses/${licenseIds[0]}`);
    assert.equal(page.status, 200, logs.join('').slice(-2000));
    assert.ok(page.text.includes(device.hardwareId), 'the console shows the old device');
    const managerAgent = await loginAgent(app, 'manager@globex.example', 'an old manager password 2');
    assert.match((await managerAgent.get(`/portal/orders/${orderId}`).expect(200)).text, /PO-2025-17/);

    const api = (action: string, body: object) =>
      request(app).post(`/api/v1/${action}`).set('Accept', 'application/json').send(body);
    const trustedKeys = new Map([[key.kid, key.publicKeyPem]]);
    const check = await api('check', {
      request: device.checkRequest({ product: 'acme-cad', licenseId: licenseIds[0]!, activationId: Number(deviceId) }),
    });
    assert.equal(check.status, 200, `${JSON.stringify(check.body)} ${logs.join('').slice(-2000)}`);
    assert.equal(check.body.valid, true, 'the device activated before the upgrade checks in');
    const fresh = makeDevice('HW-AFTER-UPGRADE');
    const activated = await api('activate', {
      request: fresh.activationRequest({ product: 'acme-cad', licenseKey: licenseKeys[1] }).text,
    }).expect(200);
    const signed = verifyEnvelope(activated.body.license, { expectedType: 'license', trustedKeys });
    assert.equal(signed.kid, key.kid, 'signed by the key made before the upgrade');
    assert.equal(Number((await db('licenses').where({ id: licenseIds[1] }).first()).times_activated), 1);
  });
});
