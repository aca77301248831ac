import assert from 'node:assert/strict';
import request from 'supertest';
import {
  buildTestApp,
  adminAgent,
  auditOf,
  countRows,
  csrfFrom,
  loginAgent,
  submitForm,
  type TestApp,
} from '../helpers/app.ts';
import { adminConsole, type Agent } from '../helpers/console.ts';
import * as catalog from '../../app/models/catalog.ts';

/** A product and its default policy. */
async function productWithPolicy(
  t: TestApp,
  product: Parameters<typeof catalog.insertProduct>[1],
  policyName: string,
  entitlements: Partial<catalog.Entitlements>,
) {
  const now = new Date();
  const productId = await catalog.insertProduct(t.db, product, now);
  const policyId = await catalog.insertPolicy(
    t.db,
    {
      productId,
      name: policyName,
      isDefault: true,
      entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, ...entitlements },
    },
    now,
  );
  return { productId, policyId };
}

async function seedCatalog(t: TestApp) {
  const { productId: keyProduct, policyId: keyPolicy } = await productWithPolicy(
    t,
    { name: 'Acme CAD', code: 'cad', authorizationMethod: 'key' },
    'Standard',
    { maxActivations: 2, maxTransfers: 1, licenseType: 'time-limited', validityDays: 30 },
  );
  const feature = await catalog.insertFeature(
    t.db,
    { productId: keyProduct, code: 'pdf', name: 'PDF', type: 'activation' },
    new Date(),
  );
  await t.db('policy_features').insert({ policy_id: keyPolicy, feature_id: feature, max_consumption: null });
  const { productId: userProduct, policyId: userPolicy } = await productWithPolicy(
    t,
    { name: 'Acme Analytics', code: 'analytics', authorizationMethod: 'user' },
    'Team',
    { maxActivations: 3 },
  );
  const { policyId: airPolicy } = await productWithPolicy(
    t,
    { name: 'Plant', code: 'plant', authorizationMethod: 'key' },
    'Site',
    { airgapped: true, allowOffline: true },
  );
  return { keyProduct, keyPolicy, userProduct, userPolicy, airPolicy, feature };
}

async function addDevice(t: TestApp, licenseId: number, hardwareId: string) {
  const now = new Date();
  const [id] = await t.db('devices').insert({
    license_id: licenseId,
    hardware_id: hardwareId,
    active_hardware_id: hardwareId,
    channel: 'offline',
    activated_at: now,
  });
  await t.db('licenses').where({ id: licenseId }).increment('times_activated', 1);
  return Number(id);
}

describe('console: customers, orders, licenses, license users, managers', () => {
  let t: TestApp;
  let agent: Agent;
  let ids: Awaited<ReturnType<typeof seedCatalog>>;
  let customerId: number;
  let orderId: number;
  before(async () => {
    ({ t, agent } = await adminConsole());
    ids = await seedCatalog(t);
  });
  after(async () => t.close());

  it('creates, searches, edits a customer; 422 on bad input', async () => {
    const bad = await submitForm(agent, '/admin/customers/new', '/admin/customers', {
      kind: 'alien',
      name: '',
      email: 'nope',
    });
    assert.equal(bad.status, 422);
    assert.match(bad.text, /Choose one of the offered options/);
    assert.match(bad.text, /Enter a valid e-mail address/);
    const ok = await submitForm(agent, '/admin/customers/new', '/admin/customers', {
      kind: 'company',
      name: 'Globex GmbH',
      email: 'it@globex.example',
      contact_name: 'Greta',
    });
    assert.equal(ok.status, 303);
    customerId = Number(ok.headers.location.split('/').pop());
    assert.match((await agent.get('/admin/customers?q=globex')).text, /Globex GmbH/);
    const edit = await submitForm(agent, `/admin/customers/${customerId}/edit`, `/admin/customers/${customerId}`, {
      kind: 'company',
      name: 'Globex AG',
      email: '',
    });
    assert.equal(edit.status, 303);
    const events = await auditOf(t.db, 'customer', customerId);
    assert.deepEqual(
      events.map((e) => e.action),
      ['customer.created', 'customer.updated'],
    );
    assert.equal(events[1]!.before.name, 'Globex GmbH');
    assert.equal(events[1]!.after.name, 'Globex AG');
    assert.equal(events[1]!.after.email, null);
  });

  it('creates an order from the customer page; order numbers are unique', async () => {
    const ok = await submitForm(
      agent,
      `/admin/customers/${customerId}/orders/new`,
      `/admin/customers/${customerId}/orders`,
      { order_ref: 'ORD-1', reference: 'Rollout', is_test: 'on' },
    );
    assert.equal(ok.status, 303);
    orderId = Number(ok.headers.location.split('/').pop());
    const order = await t.db('orders').where({ id: orderId }).first();
    assert.ok(order.is_test);
    const dup = await submitForm(
      agent,
      `/admin/customers/${customerId}/orders/new`,
      `/admin/customers/${customerId}/orders`,
      { order_ref: 'ORD-1' },
    );
    assert.equal(dup.status, 422);
    assert.match(dup.text, /Another order already has this number/);
    assert.match((await agent.get('/admin/orders?q=ORD-1')).text, /ORD-1/);
    const edit = await submitForm(agent, `/admin/orders/${orderId}/edit`, `/admin/orders/${orderId}`, {
      order_ref: 'ORD-1',
      reference: 'Rollout 2',
    });
    assert.equal(edit.status, 303);
    assert.deepEqual(
      (await auditOf(t.db, 'order', orderId)).map((e) => e.action),
      ['order.created', 'order.updated'],
    );
  });

  it('issues key-based licenses in bulk with the policy entitlements and features', async () => {
    const bad = await submitForm(agent, `/admin/orders/${orderId}`, `/admin/orders/${orderId}/licenses`, {
      policy_id: String(ids.keyPolicy),
      quantity: '0',
    });
    assert.equal(bad.status, 422);
    assert.match(bad.text, /out of the allowed range/);
    const missing = await submitForm(agent, `/admin/orders/${orderId}`, `/admin/orders/${orderId}/licenses`, {
      policy_id: String(ids.keyPolicy),
    });
    assert.equal(missing.status, 422);
    assert.equal(await countRows(t.db, 'licenses'), 0);

    const ok = await submitForm(agent, `/admin/orders/${orderId}`, `/admin/orders/${orderId}/licenses`, {
      policy_id: String(ids.keyPolicy),
      quantity: '3',
    });
    assert.equal(ok.status, 303);
    assert.match((await agent.get(ok.headers.location)).text, /3 licenses issued/);
    const rows = await t.db('licenses').where({ order_id: orderId });
    assert.equal(rows.length, 3);
    for (const l of rows) {
      assert.match(l.license_key, /^([0-9A-Z]{4}-){6}[0-9A-Z]{4}$/);
      assert.equal(l.max_activations, 2);
      assert.equal(l.license_type, 'time-limited');
      assert.ok(l.expires_at, 'expiry from the validity days');
    }
    assert.equal(await countRows(t.db, 'license_features'), 3);
    const [issued] = (await auditOf(t.db, 'order', orderId)).filter((e) => e.action === 'licenses.issued');
    assert.equal(issued!.after.count, 3);
  });

  it('issues user-based licenses: one per address, users created and invited', async () => {
    const bad = await submitForm(agent, `/admin/orders/${orderId}`, `/admin/orders/${orderId}/licenses`, {
      policy_id: String(ids.userPolicy),
      emails: 'ok@example.com, not-an-address',
    });
    assert.equal(bad.status, 422);
    assert.match(bad.text, /One of the e-mail addresses is not valid/);
    const ok = await submitForm(agent, `/admin/orders/${orderId}`, `/admin/orders/${orderId}/licenses`, {
      policy_id: String(ids.userPolicy),
      emails: 'Ann@Example.com\nbob@example.com',
    });
    assert.equal(ok.status, 303);
    const users = await t.db('accounts').whereIn('email', ['ann@example.com', 'bob@example.com']);
    assert.equal(users.length, 2);
    assert.ok(
      users.every(
        (u: { role: string; password_hash: string | null }) => u.role === 'end_user' && u.password_hash === null,
      ),
    );
    const assignments = await t.db('license_user_assignments').whereIn(
      'account_id',
      users.map((u: { id: number }) => u.id),
    );
    assert.equal(assignments.length, 2);
    assert.ok(assignments.every((a: { max_activations: number }) => a.max_activations === 3));
    assert.equal(await countRows(t.db, 'mail_outbox', { to_address: 'ann@example.com' }), 1, 'an invitation');
  });

  it("lists and filters an order's licenses by status, product, key and user", async () => {
    const key = (await t.db('licenses').whereNotNull('license_key').first()).license_key as string;
    const byKey = await agent
      .get(`/admin/orders/${orderId}?key=${encodeURIComponent(key.slice(0, 9).toLowerCase())}`)
      .expect(200);
    assert.ok(byKey.text.includes(key));
    const byUser = await agent.get(`/admin/orders/${orderId}?user=ann@`).expect(200);
    assert.match(byUser.text, /User license #/);
    assert.doesNotMatch(byUser.text, new RegExp(key));
    const byProduct = await agent.get(`/admin/orders/${orderId}?product=${ids.userProduct}`).expect(200);
    assert.match(byProduct.text, /Licenses \(2\)/);
    const inactive = await agent.get(`/admin/licenses?status=inactive`).expect(200);
    assert.match(inactive.text, /5 in total/);
  });

  it('looks licenses up by a whole key or its beginning, in any case, and wildcards match nothing', async () => {
    const keys = (await t.db('licenses').whereNotNull('license_key').orderBy('id').pluck('license_key')) as string[];
    const [key, other] = [keys[0]!, keys[1]!];
    const whole = await agent.get(`/admin/licenses?key=${encodeURIComponent(key.toLowerCase())}`).expect(200);
    assert.ok(whole.text.includes(key));
    assert.ok(!whole.text.includes(other));
    assert.match(whole.text, /1 in total/);
    const start = await agent.get(`/admin/licenses?key=${encodeURIComponent(key.slice(0, 6))}`).expect(200);
    assert.ok(start.text.includes(key));
    for (const wildcard of ['%', '_', `${key.slice(0, 4)}%`, '*', '[']) {
      const none = await agent.get(`/admin/licenses?key=${encodeURIComponent(wildcard)}`).expect(200);
      assert.ok(!keys.some((k) => none.text.includes(k)), `"${wildcard}" matches no key`);
    }
  });

  it('edits a license (type fixed), disables and enables it, all audited', async () => {
    const license = await t.db('licenses').whereNotNull('license_key').first();
    const url = `/admin/licenses/${license.id}`;
    const bad = await submitForm(agent, `${url}/edit`, url, { max_activations: '', max_transfers: 'x' });
    assert.equal(bad.status, 422);
    const ok = await submitForm(agent, `${url}/edit`, url, {
      license_type: 'perpetual',
      max_activations: '5',
      max_transfers: '0',
      validity_days: '30',
      expires_at: '2031-01-31',
      note: 'VIP',
    });
    assert.equal(ok.status, 303);
    const after = await t.db('licenses').where({ id: license.id }).first();
    assert.equal(after.license_type, 'time-limited', 'the type never changes');
    assert.equal(after.max_activations, 5);
    assert.equal(after.note, 'VIP');
    await submitForm(agent, url, `${url}/disable`, { confirmed: '1' });
    assert.match((await agent.get(url)).text, /status-disabled/);
    await submitForm(agent, url, `${url}/enable`, {});
    const events = await auditOf(t.db, 'license', license.id);
    assert.deepEqual(
      events.map((e) => e.action),
      ['license.updated', 'license.disabled', 'license.enabled'],
    );
    assert.equal(events[0]!.before.maxActivations, 2);
    assert.equal(events[0]!.after.maxActivations, 5);
  });

  it('an air-gapped license keeps its entitlements; only the note changes', async () => {
    const res = await submitForm(agent, `/admin/orders/${orderId}`, `/admin/orders/${orderId}/licenses`, {
      policy_id: String(ids.airPolicy),
      quantity: '1',
    });
    assert.equal(res.status, 303);
    const license = await t.db('licenses').where({ airgapped: true }).first();
    const url = `/admin/licenses/${license.id}`;
    const edit = await agent.get(`${url}/edit`).expect(200);
    assert.match(edit.text, /its entitlements cannot be edited/);
    await agent
      .post(url)
      .type('form')
      .send({
        _csrf: csrfFrom(edit.text),
        license_type: 'perpetual',
        max_activations: '99',
        max_transfers: '0',
        note: 'site A',
      })
      .expect(303);
    const after = await t.db('licenses').where({ id: license.id }).first();
    assert.equal(after.max_activations, 1);
    assert.equal(after.note, 'site A');
    assert.ok(after.airgapped);
  });

  it('resets one device, blacklists another, resets the license; seats follow', async () => {
    const license = await t
      .db('licenses')
      .whereNotNull('license_key')
      .where({ airgapped: false })
      .orderBy('id', 'desc')
      .first();
    const url = `/admin/licenses/${license.id}`;
    const d1 = await addDevice(t, license.id, 'HW-1');
    const d2 = await addDevice(t, license.id, 'HW-2');
    const d3 = await addDevice(t, license.id, 'HW-3');
    await submitForm(agent, url, `${url}/devices/${d1}/reset`, { confirmed: '1' }).then((r) =>
      assert.equal(r.status, 303),
    );
    assert.equal((await t.db('licenses').where({ id: license.id }).first()).times_activated, 2);
    const again = await submitForm(agent, url, `${url}/devices/${d1}/reset`, { confirmed: '1' });
    assert.match((await agent.get(again.headers.location)).text, /no longer active/);
    assert.equal(
      (await t.db('licenses').where({ id: license.id }).first()).times_activated,
      2,
      'a repeated reset frees nothing',
    );

    await submitForm(agent, url, `${url}/devices/${d2}/blacklist`, { confirmed: '1' });
    assert.ok(await t.db('license_blacklist').where({ license_id: license.id, hardware_id: 'HW-2' }).first());
    assert.equal((await t.db('licenses').where({ id: license.id }).first()).times_activated, 1);

    const other = await t.db('licenses').whereNot({ id: license.id }).whereNotNull('license_key').first();
    assert.equal(
      (await submitForm(agent, url, `/admin/licenses/${other.id}/devices/${d3}/reset`, { confirmed: '1' })).status,
      404,
      'a device of another license is out of reach',
    );

    await submitForm(agent, url, `${url}/reset`, { confirmed: '1' });
    assert.equal((await t.db('licenses').where({ id: license.id }).first()).times_activated, 0);
    const devices = await t.db('devices').where({ license_id: license.id });
    assert.ok(devices.every((d: { deactivated_at: unknown }) => d.deactivated_at !== null));
    assert.equal(devices.length, 3, 'history is kept');
    assert.deepEqual(
      (await auditOf(t.db, 'device', d1)).map((e) => e.action),
      ['device.reset'],
    );
    assert.deepEqual(
      (await auditOf(t.db, 'device', d2)).map((e) => e.action),
      ['device.blacklisted'],
    );
    assert.ok((await auditOf(t.db, 'license', license.id)).some((e) => e.action === 'license.reset'));
    const page = await agent.get(url).expect(200);
    assert.match(page.text, /HW-3/);
    assert.match(page.text, /Blacklisted/);
  });

  it('assigns users to a user-based license, sets their limit, unassigns', async () => {
    const license = await t.db('licenses').whereNull('license_key').first();
    const url = `/admin/licenses/${license.id}`;
    const bad = await submitForm(agent, url, `${url}/users`, { email: 'x', max_activations: '0' });
    assert.equal(bad.status, 422);
    assert.equal(
      (
        await submitForm(agent, url, `${url}/users`, {
          email: 'carol@example.com',
          name: 'Carol',
          max_activations: '2',
        })
      ).status,
      303,
    );
    const carol = await t.db('accounts').where({ email: 'carol@example.com' }).first();
    const dup = await submitForm(agent, url, `${url}/users`, { email: 'carol@example.com', max_activations: '2' });
    assert.equal(dup.status, 422);
    assert.match(dup.text, /already assigned/);
    assert.equal((await submitForm(agent, url, `${url}/users/${carol.id}`, { max_activations: '4' })).status, 303);
    assert.equal(
      (await t.db('license_user_assignments').where({ license_id: license.id, account_id: carol.id }).first())
        .max_activations,
      4,
    );
    const admin = await t.db('accounts').where({ role: 'admin' }).first();
    const refused = await submitForm(agent, url, `${url}/users`, { email: admin.email, max_activations: '1' });
    assert.equal(refused.status, 422, 'an admin address cannot become a license user');
    assert.equal((await submitForm(agent, url, `${url}/users/${carol.id}/delete`, { confirmed: '1' })).status, 303);
    assert.equal(
      await t.db('license_user_assignments').where({ license_id: license.id, account_id: carol.id }).first(),
      undefined,
    );
    const keyLicense = await t.db('licenses').whereNotNull('license_key').first();
    const notUser = await submitForm(agent, url, `/admin/licenses/${keyLicense.id}/users`, {
      email: 'dan@example.com',
      max_activations: '1',
    });
    assert.equal(notUser.status, 303);
    assert.match((await agent.get(notUser.headers.location)).text, /key-based: it has no users/);
    assert.deepEqual(
      (await auditOf(t.db, 'license', license.id)).map((e) => e.action),
      ['license_user.assigned', 'license_user.limit_changed', 'license_user.unassigned'],
    );
  });

  it('creates license users with an invitation or a one-time password shown once', async () => {
    const invite = await submitForm(agent, '/admin/license-users/new', '/admin/license-users', {
      email: 'eve@example.com',
      name: 'Eve',
      language: 'fr',
      credentials: 'email',
    });
    assert.equal(invite.status, 303);
    const mail = await t.db('mail_outbox').where({ to_address: 'eve@example.com' }).first();
    assert.ok(mail, 'an invitation mail (in French) is in the outbox');

    const shown = await submitForm(agent, '/admin/license-users/new', '/admin/license-users', {
      email: 'frank@example.com',
      name: 'Frank',
      language: 'en',
      credentials: 'password',
    });
    assert.equal(shown.status, 200);
    assert.equal(shown.headers['cache-control'], 'no-store');
    const password = /class="one-time"><code>([^<]+)<\/code>/.exec(shown.text)![1]!;
    const frank = await t.db('accounts').where({ email: 'frank@example.com' }).first();
    assert.ok(frank.must_change_password);
    const login = request.agent(t.app);
    const page = await login.get('/login');
    await login
      .post('/login')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email: 'frank@example.com', password })
      .expect(303)
      .expect('location', '/account/password');
    assert.doesNotMatch(JSON.stringify(await t.db('audit_events').select('after_state')), new RegExp(password));

    const reset = await submitForm(
      agent,
      `/admin/license-users/${frank.id}`,
      `/admin/license-users/${frank.id}/password`,
      { credentials: 'password' },
    );
    assert.equal(reset.status, 200);
    const newPassword = /class="one-time"><code>([^<]+)<\/code>/.exec(reset.text)![1]!;
    assert.notEqual(newPassword, password);
    await loginAgent(t.app, 'frank@example.com', newPassword);
    const dup = await submitForm(agent, '/admin/license-users/new', '/admin/license-users', {
      email: 'frank@example.com',
      name: 'Frank',
      language: 'en',
      credentials: 'email',
    });
    assert.equal(dup.status, 422);
  });

  it('invites a manager who sets a password through the link, then manages scope and permissions', async () => {
    const invite = await submitForm(agent, '/admin/managers/new', '/admin/managers', {
      email: 'rita@reseller.example',
      name: 'Rita',
      language: 'en',
    });
    assert.equal(invite.status, 303);
    const managerId = Number(invite.headers.location.split('/').pop());
    const defaults = (await t.db('default_permissions').select('permission'))
      .map((r: { permission: string }) => r.permission)
      .sort();
    const granted = (await t.db('manager_permissions').where({ account_id: managerId }).select('permission'))
      .map((r: { permission: string }) => r.permission)
      .sort();
    assert.deepEqual(granted, defaults, 'new managers start with the default set');
    const mail = await t.db('mail_outbox').where({ to_address: 'rita@reseller.example' }).first();
    const link = /http:\/\/portico\.test(\/password\/reset\/[\w-]+)/.exec(mail.text_body)![1]!;
    const guest = request.agent(t.app);
    const form = await guest.get(link).expect(200);
    await guest
      .post(link)
      .type('form')
      .send({ _csrf: csrfFrom(form.text), password: 'rita chose this', password_confirmation: 'rita chose this' })
      .expect(303);
    const rita = await loginAgent(t.app, 'rita@reseller.example', 'rita chose this');

    const url = `/admin/managers/${managerId}`;
    assert.equal(
      (
        await submitForm(agent, url, `${url}/permissions`, {
          permissions: ['create_order', 'create_bundle_order'] as unknown as string,
        })
      ).status,
      303,
    );
    assert.deepEqual(
      (
        await t.db('manager_permissions').where({ account_id: managerId }).orderBy('permission').select('permission')
      ).map((r: { permission: string }) => r.permission),
      ['create_bundle_order', 'create_order'],
    );
    const badPerm = await submitForm(agent, url, `${url}/permissions`, { permissions: 'launch_rockets' });
    assert.equal(badPerm.status, 422);
    const operatorRole = String((await t.db('roles').where({ builtin: 'operator' }).first()).id);
    await submitForm(agent, url, `${url}/permissions`, {
      permissions: 'create_order',
      own_order_role_id: operatorRole,
    });
    assert.equal(String((await t.db('accounts').where({ id: managerId }).first()).own_order_role_id), operatorRole);
    assert.equal(
      (await submitForm(agent, url, `${url}/permissions`, { permissions: 'create_order', own_order_role_id: '999999' }))
        .status,
      422,
      'an unknown role',
    );
    await submitForm(agent, url, `${url}/permissions`, {
      permissions: ['create_order', 'create_bundle_order'] as unknown as string,
    });
    // An order permission is no account permission: it comes with a role on each order.
    assert.equal((await submitForm(agent, url, `${url}/permissions`, { permissions: 'reset_device' })).status, 422);
    const roleId = async (builtin: string) => String((await t.db('roles').where({ builtin }).first()).id);
    const role_id = await roleId('operator');

    const noOrder = await submitForm(agent, url, `${url}/orders`, { order_ref: 'NOPE', role_id });
    assert.equal(noOrder.status, 422);
    assert.match(noOrder.text, /No order has this number/);
    assert.equal(
      (await submitForm(agent, url, `${url}/orders`, { order_ref: 'ORD-1' })).status,
      422,
      'a role is needed',
    );
    assert.equal((await submitForm(agent, url, `${url}/orders`, { order_ref: 'ORD-1', role_id })).status, 303);
    assert.match((await rita.get('/portal').expect(200)).text, /ORD-1/, 'the manager now sees the order');
    const roleOn = async () =>
      (await t.db('manager_orders').where({ account_id: managerId, order_id: orderId }).first()).role_id;
    assert.equal(String(await roleOn()), role_id);
    await rita.get(`/portal/orders/${orderId}/customer/edit`).expect(403);
    const managerRole = await roleId('manager');
    assert.equal((await submitForm(agent, url, `${url}/orders/${orderId}/role`, { role_id: managerRole })).status, 303);
    assert.equal(String(await roleOn()), managerRole);
    await rita.get(`/portal/orders/${orderId}/customer/edit`).expect(200);

    // Order numbers are unique per customer: a number two customers share needs the customer's name.
    for (const name of ['Shared One', 'Shared Two']) {
      const customer = await catalog.insertCustomer(t.db, { kind: 'company', name }, new Date());
      await catalog.insertOrder(t.db, { orderRef: 'SAME-1', customerId: customer }, new Date());
    }
    const ambiguous = await submitForm(agent, url, `${url}/orders`, { order_ref: 'SAME-1', role_id });
    assert.equal(ambiguous.status, 422);
    assert.match(ambiguous.text, /Several orders/);
    assert.equal(
      (await submitForm(agent, url, `${url}/orders`, { order_ref: 'Shared Two / SAME-1', role_id })).status,
      303,
    );
    const assigned = await t
      .db('manager_orders')
      .join('orders', 'orders.id', 'manager_orders.order_id')
      .join('customers', 'customers.id', 'orders.customer_id')
      .where({ 'manager_orders.account_id': managerId, 'orders.order_ref': 'SAME-1' })
      .select('customers.name');
    assert.deepEqual(
      assigned.map((r: { name: string }) => r.name),
      ['Shared Two'],
    );

    assert.equal(
      (await submitForm(agent, url, `${url}/quotas`, { product_id: String(ids.keyProduct), quota: '5' })).status,
      303,
    );
    assert.equal(
      (await submitForm(agent, url, `${url}/quotas`, { product_id: String(ids.userProduct), quota: '' })).status,
      303,
    );
    const quotas = await t.db('manager_quotas').where({ account_id: managerId }).orderBy('product_id');
    assert.deepEqual(
      quotas.map((q: { quota: number | null }) => q.quota),
      [5, null],
    );
    assert.equal(
      (await submitForm(agent, url, `${url}/quotas/${ids.userProduct}/delete`, { confirmed: '1' })).status,
      303,
    );
    assert.equal((await submitForm(agent, url, `${url}/policies`, { policy_ids: String(ids.keyPolicy) })).status, 303);
    assert.deepEqual(
      (await t.db('manager_policies').where({ account_id: managerId })).map((r: { policy_id: number }) => r.policy_id),
      [ids.keyPolicy],
    );

    assert.equal((await submitForm(agent, url, `${url}/orders/${orderId}/delete`, { confirmed: '1' })).status, 303);
    assert.doesNotMatch((await rita.get('/portal').expect(200)).text, /ORD-1/);

    assert.equal((await submitForm(agent, url, url, { name: 'Rita R.', language: 'de', disabled: 'on' })).status, 303);
    await rita.get('/portal').expect(303).expect('location', '/login');

    const actions = (await auditOf(t.db, 'account', managerId)).map((e) => e.action);
    for (const a of [
      'manager.invited',
      'manager.permissions_changed',
      'manager.order_assigned',
      'manager.quota_set',
      'manager.quota_removed',
      'manager.policies_changed',
      'manager.updated',
    ])
      assert.ok(actions.includes(a), a);
    // Removing a manager from an order is one rule in the console and the User Portal (services/delegation.ts).
    assert.ok((await auditOf(t.db, 'order', orderId)).some((e) => e.action === 'order.manager_removed'));
  });

  it('changes the default permission set used for new managers', async () => {
    assert.equal(
      (
        await submitForm(agent, '/admin/managers/defaults', '/admin/managers/defaults', {
          permissions: 'create_bundle_order',
        })
      ).status,
      303,
    );
    const invite = await submitForm(agent, '/admin/managers/new', '/admin/managers', {
      email: 'new@reseller.example',
      name: 'New',
      language: 'en',
    });
    const id = Number(invite.headers.location.split('/').pop());
    assert.deepEqual(
      (await t.db('manager_permissions').where({ account_id: id })).map((r: { permission: string }) => r.permission),
      ['create_bundle_order'],
    );
  });

  it('deletes empty orders and customers only', async () => {
    const refused = await submitForm(agent, `/admin/orders/${orderId}`, `/admin/orders/${orderId}/delete`, {
      confirmed: '1',
    });
    assert.match((await agent.get(refused.headers.location)).text, /has licenses and cannot be deleted/);
    const empty = await catalog.insertOrder(t.db, { orderRef: 'EMPTY', customerId }, new Date());
    assert.equal(
      (await submitForm(agent, `/admin/orders/${empty}`, `/admin/orders/${empty}/delete`, { confirmed: '1' })).status,
      303,
    );
    assert.equal(await t.db('orders').where({ id: empty }).first(), undefined);
    const c = await catalog.insertCustomer(t.db, { kind: 'person', name: 'Solo' }, new Date());
    assert.equal(
      (await submitForm(agent, `/admin/customers/${c}`, `/admin/customers/${c}/delete`, { confirmed: '1' })).status,
      303,
    );
    assert.equal(await t.db('customers').where({ id: c }).first(), undefined);
  });
});

describe('console: issuing at volume', function () {
  this.timeout(120_000);
  let t: TestApp;
  before(async () => {
    t = await buildTestApp();
  });
  after(async () => t.close());

  it('10,000 licenses issued in one run all get distinct keys', async () => {
    const { agent } = await adminAgent(t);
    const ids = await seedCatalog(t);
    const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Big' }, new Date());
    const order = await catalog.insertOrder(t.db, { orderRef: 'BIG-1', customerId: customer }, new Date());
    const res = await submitForm(agent, `/admin/orders/${order}`, `/admin/orders/${order}/licenses`, {
      policy_id: String(ids.keyPolicy),
      quantity: '10000',
    });
    assert.equal(res.status, 303);
    assert.equal(await countRows(t.db, 'licenses', { order_id: order }), 10_000);
    const distinct = await t.db('licenses').where({ order_id: order }).countDistinct({ n: 'license_key' }).first();
    assert.equal(Number(distinct!.n), 10_000);
    assert.equal(await countRows(t.db, 'license_features'), 10_000);
    const page = await agent.get(`/admin/orders/${order}`).expect(200);
    assert.match(page.text, /Page 1 of 200/);
    await agent.get(`/admin/orders/${order}?page=200`).expect(200);
    // The order keeps its own count (the pages read it instead of counting), and it is the true one.
    assert.equal(Number((await t.db('orders').where({ id: order }).first('license_count')).license_count), 10_000);
    const more = await submitForm(agent, `/admin/orders/${order}`, `/admin/orders/${order}/licenses`, {
      policy_id: String(ids.keyPolicy),
      quantity: '3',
    });
    assert.equal(more.status, 303);
    assert.equal(Number((await t.db('orders').where({ id: order }).first('license_count')).license_count), 10_003);
    assert.match((await agent.get(`/admin/orders/${order}`).expect(200)).text, /Licenses \(10003\)/);
    assert.match((await agent.get(`/admin/orders?q=BIG-1`).expect(200)).text, /10003/);
  });

  it('two issues into one order at the same time both land, and the order counts both', async () => {
    const { agent } = await adminAgent(t);
    const keyPolicy = Number(
      (
        await t
          .db('license_policies')
          .join('products', 'products.id', 'license_policies.product_id')
          .where('products.code', 'cad')
          .first('license_policies.id')
      ).id,
    );
    const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Twice' }, new Date());
    const order = await catalog.insertOrder(t.db, { orderRef: 'TWICE-1', customerId: customer }, new Date());
    const page = await agent.get(`/admin/orders/${order}`).expect(200);
    const csrf = csrfFrom(page.text);
    const results = await Promise.all(
      [250, 170].map((n) =>
        agent
          .post(`/admin/orders/${order}/licenses`)
          .type('form')
          .send({ _csrf: csrf, policy_id: String(keyPolicy), quantity: String(n) }),
      ),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      [303, 303],
    );
    assert.equal(await countRows(t.db, 'licenses', { order_id: order }), 420);
    assert.equal(Number((await t.db('orders').where({ id: order }).first('license_count')).license_count), 420);
  });
});
