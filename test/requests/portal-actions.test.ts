import assert from 'node:assert/strict';
import { bumpGeneration } from '../../app/lib/generation-cache.ts';
import crypto from 'node:crypto';
import request from 'supertest';
import { buildTestApp, auditOf, countRows, csrfFrom, loginAgent, submitForm, type TestApp } from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import { verifyEnvelope, devicePublicKeyString } from '../../sdk/src/envelope.ts';
import { trustedKeyMap } from '../../app/services/signer.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;
type Agent = Awaited<ReturnType<typeof loginAgent>>;

describe('User Portal actions', function () {
  this.timeout(60_000);
  let t: TestApp;
  let w: World;
  let all: Agent;
  let none: Agent;
  let other: Agent;
  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    all = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    none = await loginAgent(t.app, w.managerNone.email, w.managerNone.password);
    other = await loginAgent(t.app, w.managerB.email, w.managerB.password);
  });
  after(async () => t.close());

  const token = async (agent: Agent) => csrfFrom((await agent.get('/account')).text);
  const post = async (agent: Agent, url: string, fields: Record<string, unknown> = {}) =>
    agent
      .post(url)
      .type('form')
      .send({ _csrf: await token(agent), ...fields });
  const licenseRow = (id: number) => t.db('licenses').where({ id }).first();

  it("the dashboard and order list show only the manager's own orders", async () => {
    const dash = await all.get('/portal').expect(200);
    assert.match(dash.text, /A-1/);
    assert.doesNotMatch(dash.text, /B-1/);
    const list = await other.get('/portal/orders?q=1').expect(200);
    assert.match(list.text, /B-1/);
    assert.doesNotMatch(list.text, /A-1/);
  });

  it("out of scope: IDs of another order's license, device or user → 404, nothing changed", async () => {
    await all.get(`/portal/orders/${w.orderB}`).expect(404);
    await all.get(`/portal/licenses/${w.licenseB}`).expect(404);
    assert.equal((await post(all, `/portal/licenses/${w.licenseB}/disable`, { confirmed: '1' })).status, 404);
    assert.equal(
      (await post(all, `/portal/licenses/${w.licenseA}/devices/${w.deviceB}/reset`, { confirmed: '1' })).status,
      404,
      'a device of another license via an own license',
    );
    assert.equal(
      (
        await post(all, `/portal/licenses/${w.userLicense}/users/${w.managerB.id}/password`, {
          credentials: 'password',
        })
      ).status,
      404,
      'an account that is not a user of this license',
    );
    assert.equal(
      (await post(all, `/portal/orders/${w.orderA}/dispatch`, { [`email_${w.licenseB}`]: 'x@example.com' })).status,
      404,
      'a license of another order in a form field',
    );
    assert.equal(
      (await post(all, `/portal/orders/${w.orderB}/licenses`, { policy_id: String(w.policy), quantity: '1' })).status,
      404,
    );
    assert.ok((await licenseRow(w.licenseB)).enabled);
    assert.equal((await licenseRow(w.licenseB)).times_activated, 1);
    assert.equal((await licenseRow(w.licenseB)).dispatched_to, null);
    assert.equal(await countRows(t.db, 'licenses', { order_id: w.orderB }), 1);
    assert.equal((await auditOf(t.db, 'license', w.licenseB)).length, 0);
  });

  it('without the permission: no button, and a forged POST gets 403 with nothing changed', async () => {
    const page = await none.get(`/portal/licenses/${w.licenseA}`).expect(200);
    assert.doesNotMatch(page.text, /Disable<\/button>/);
    assert.doesNotMatch(page.text, /Move to another device/);
    assert.equal((await post(none, `/portal/licenses/${w.licenseA}/disable`, { confirmed: '1' })).status, 403);
    assert.equal(
      (await post(none, `/portal/licenses/${w.licenseA}/devices/${w.deviceA}/reset`, { confirmed: '1' })).status,
      403,
    );
    assert.equal(
      (await post(none, `/portal/orders/${w.orderA}/licenses`, { policy_id: String(w.policy), quantity: '1' })).status,
      403,
    );
    assert.ok((await licenseRow(w.licenseA)).enabled);
    assert.equal((await licenseRow(w.licenseA)).times_activated, 1);
    const order = await none.get(`/portal/orders/${w.orderA}`).expect(200);
    assert.doesNotMatch(order.text, /Issue licenses/);
  });

  it('issues within quota: 5 of 5, the 6th is refused with a clear message', async () => {
    const bad = await post(all, `/portal/orders/${w.orderA}/licenses`, { policy_id: String(w.policy), quantity: 'x' });
    assert.equal(bad.status, 422);
    assert.equal(
      (await post(all, `/portal/orders/${w.orderA}/licenses`, { policy_id: String(w.policy), quantity: '3' })).status,
      303,
    );
    assert.equal(
      (await post(all, `/portal/orders/${w.orderA}/licenses`, { policy_id: String(w.policy), quantity: '2' })).status,
      303,
    );
    const refused = await post(all, `/portal/orders/${w.orderA}/licenses`, {
      policy_id: String(w.policy),
      quantity: '1',
    });
    assert.equal(refused.status, 422);
    assert.match(refused.text, /exceed your issue quota/);
    assert.equal(
      await countRows(t.db, 'licenses', { order_id: w.orderA, product_id: w.product }),
      6,
      'the first license plus 5 issued',
    );
    const quota = await t.db('manager_quotas').where({ account_id: w.managerAll.id, product_id: w.product }).first();
    assert.equal(quota.issued, 5);
    const issued = (await auditOf(t.db, 'order', w.orderA)).filter((e) => e.action === 'licenses.issued');
    assert.equal(issued.length, 2);
    assert.equal(issued[0]!.actor, w.managerAll.id);
  });

  it('quota holds when two requests race for the last units', async () => {
    await t
      .db('manager_quotas')
      .where({ account_id: w.managerB.id, product_id: w.product })
      .update({ quota: 5, issued: 0 });
    const tk = await token(other);
    const [a, b] = await Promise.all([
      other
        .post(`/portal/orders/${w.orderB}/licenses`)
        .type('form')
        .send({ _csrf: tk, policy_id: String(w.policy), quantity: '3' }),
      other
        .post(`/portal/orders/${w.orderB}/licenses`)
        .type('form')
        .send({ _csrf: tk, policy_id: String(w.policy), quantity: '3' }),
    ]);
    assert.deepEqual([a.status, b.status].sort(), [303, 422]);
    assert.equal(await countRows(t.db, 'licenses', { order_id: w.orderB }), 4, '1 before + 3');
    assert.equal(
      (await t.db('manager_quotas').where({ account_id: w.managerB.id, product_id: w.product }).first()).issued,
      3,
    );
  });

  it('issues only from allowed policies', async () => {
    await t.db('manager_policies').insert({ account_id: w.managerAll.id, policy_id: w.userPolicy });
    const refused = await post(all, `/portal/orders/${w.orderA}/licenses`, {
      policy_id: String(w.policy),
      quantity: '1',
    });
    assert.equal(refused.status, 422);
    assert.match(refused.text, /may not issue licenses from this policy/);
    const ok = await post(all, `/portal/orders/${w.orderA}/licenses`, {
      policy_id: String(w.userPolicy),
      emails: 'new.user@example.com',
    });
    assert.equal(ok.status, 303);
    assert.ok(await t.db('accounts').where({ email: 'new.user@example.com', role: 'end_user' }).first());
    await t.db('manager_policies').where({ account_id: w.managerAll.id }).delete();
  });

  it('creates an order with a new customer (assigned to the manager) and a bundle order; a refused line leaves nothing', async () => {
    const bad = await post(all, '/portal/orders', { order_ref: '', customer_choice: 'new', name: '' });
    assert.equal(bad.status, 422);
    const ok = await post(all, '/portal/orders', {
      order_ref: 'A-2',
      customer_choice: 'new',
      kind: 'company',
      name: 'Umbrella',
    });
    assert.equal(ok.status, 303);
    const order = await t.db('orders').where({ order_ref: 'A-2' }).first();
    const mine = await t.db('manager_orders').where({ account_id: w.managerAll.id, order_id: order.id }).first();
    assert.equal(
      mine.role_id,
      (await t.db('accounts').where({ id: w.managerAll.id }).first()).own_order_role_id,
      'the creator gets the role their console page names for orders they create',
    );
    assert.match((await all.get(ok.headers.location)).text, /Umbrella/);
    // Without one named, the vendor's default role at the time.
    await t.db('accounts').where({ id: w.managerAll.id }).update({ own_order_role_id: null });
    await t.db('roles').update({ is_default: false });
    const viewer = await t.db('roles').where({ builtin: 'viewer' }).first();
    await t.db('roles').where({ id: viewer.id }).update({ is_default: true });
    assert.equal(
      (await post(all, '/portal/orders', { order_ref: 'A-2b', customer_choice: 'new', kind: 'company', name: 'Hooli' }))
        .status,
      303,
    );
    const second = await t.db('orders').where({ order_ref: 'A-2b' }).first();
    assert.equal(
      (await t.db('manager_orders').where({ account_id: w.managerAll.id, order_id: second.id }).first()).role_id,
      viewer.id,
    );
    await t.db('roles').update({ is_default: false });
    await t.db('roles').where({ name: 'Standard' }).update({ is_default: true });
    await t.db('accounts').where({ id: w.managerAll.id }).update({ own_order_role_id: mine.role_id });
    const foreignCustomer = await post(all, '/portal/orders', {
      order_ref: 'A-3',
      customer_choice: 'existing',
      customer_id: String((await t.db('orders').where({ id: w.orderB }).first()).customer_id),
    });
    assert.equal(foreignCustomer.status, 422, "a customer of another manager's order cannot be picked");

    await t.db('manager_quotas').where({ account_id: w.managerAll.id, product_id: w.product }).update({ quota: 100 });
    const refused = await post(all, '/portal/orders/bundle', {
      order_ref: 'BUNDLE-1',
      customer_choice: 'new',
      kind: 'company',
      name: 'Bundle Co',
      line_1_policy: String(w.policy),
      line_1_quantity: '2',
      line_2_policy: String(w.userPolicy),
      line_2_emails: 'not-an-email',
    });
    assert.equal(refused.status, 422);
    assert.equal(await t.db('orders').where({ order_ref: 'BUNDLE-1' }).first(), undefined);
    await t.db('manager_quotas').where({ account_id: w.managerAll.id, product_id: w.product }).update({ quota: 7 });
    const overQuota = await post(all, '/portal/orders/bundle', {
      order_ref: 'BUNDLE-1',
      customer_choice: 'new',
      kind: 'company',
      name: 'Bundle Co',
      line_1_policy: String(w.policy),
      line_1_quantity: '5',
    });
    assert.equal(overQuota.status, 422);
    assert.match(overQuota.text, /exceed your issue quota/);
    assert.equal(
      await t.db('orders').where({ order_ref: 'BUNDLE-1' }).first(),
      undefined,
      'no order, customer or license was left behind',
    );
    assert.equal(await t.db('customers').where({ name: 'Bundle Co' }).first(), undefined);
    const created = await post(all, '/portal/orders/bundle', {
      order_ref: 'BUNDLE-1',
      customer_choice: 'new',
      kind: 'company',
      name: 'Bundle Co',
      line_1_policy: String(w.policy),
      line_1_quantity: '2',
      line_2_policy: String(w.userPolicy),
      line_2_emails: 'b1@example.com, b2@example.com',
    });
    assert.equal(created.status, 303);
    const bundle = await t.db('orders').where({ order_ref: 'BUNDLE-1' }).first();
    assert.equal(await countRows(t.db, 'licenses', { order_id: bundle.id }), 4);
  });

  it('adds and removes managers on an order', async () => {
    const role_id = String((await t.db('roles').where({ builtin: 'operator' }).first()).id);
    const notManager = await post(all, `/portal/orders/${w.orderA}/managers`, { email: w.endUser.email, role_id });
    assert.equal(notManager.status, 422);
    assert.equal(
      (await post(all, `/portal/orders/${w.orderA}/managers`, { email: w.managerB.email, role_id })).status,
      303,
    );
    assert.match((await other.get(`/portal/orders/${w.orderA}`).expect(200)).text, /A-1/);
    assert.equal(
      (await post(all, `/portal/orders/${w.orderA}/managers/${w.managerB.id}/delete`, { confirmed: '1' })).status,
      303,
    );
    await other.get(`/portal/orders/${w.orderA}`).expect(404);
    const self = await post(all, `/portal/orders/${w.orderA}/managers/${w.managerAll.id}/delete`, { confirmed: '1' });
    assert.match((await all.get(self.headers.location)).text, /cannot remove yourself/);
    assert.deepEqual(
      (await auditOf(t.db, 'order', w.orderA)).filter((e) => e.action.startsWith('order.manager')).map((e) => e.action),
      ['order.manager_added', 'order.manager_removed'],
    );
  });

  it('edits the customer of an order', async () => {
    const bad = await submitForm(
      all,
      `/portal/orders/${w.orderA}/customer/edit`,
      `/portal/orders/${w.orderA}/customer`,
      { kind: 'company', name: '' },
    );
    assert.equal(bad.status, 422);
    const ok = await submitForm(
      all,
      `/portal/orders/${w.orderA}/customer/edit`,
      `/portal/orders/${w.orderA}/customer`,
      { kind: 'company', name: 'Globex International', email: 'it@globex.example' },
    );
    assert.equal(ok.status, 303);
    assert.equal((await t.db('customers').where({ id: w.customer }).first()).name, 'Globex International');
    assert.equal((await auditOf(t.db, 'customer', w.customer)).at(-1)!.action, 'customer.updated');
  });

  it('dispatches licenses by form and by CSV; each recipient gets a mail and the license records it', async () => {
    const keyed = await t
      .db('licenses')
      .where({ order_id: w.orderA })
      .whereNotNull('license_key')
      .orderBy('id')
      .limit(3);
    const bad = await post(all, `/portal/orders/${w.orderA}/dispatch`, { [`email_${keyed[0].id}`]: 'not-an-email' });
    assert.equal(bad.status, 422);
    const ok = await post(all, `/portal/orders/${w.orderA}/dispatch`, {
      [`email_${keyed[0].id}`]: 'Alice@Example.com',
      [`email_${keyed[1].id}`]: 'bob@example.com',
    });
    assert.equal(ok.status, 303);
    const first = await licenseRow(keyed[0].id);
    assert.equal(first.dispatched_to, 'alice@example.com');
    assert.ok(first.dispatched_at);
    const mail = await t.db('mail_outbox').where({ to_address: 'alice@example.com' }).first();
    assert.ok(mail.text_body.includes(keyed[0].license_key));
    assert.match(mail.text_body, /offline/);

    const csv = `license key,email\n${keyed[2].license_key.toLowerCase()},carol@example.com\n`;
    const tk = await token(all);
    const upload = await all
      .post(`/portal/orders/${w.orderA}/dispatch/csv?_csrf=${encodeURIComponent(tk)}`)
      .attach('csv', Buffer.from(csv), 'licenses.csv');
    assert.equal(upload.status, 303);
    assert.equal((await licenseRow(keyed[2].id)).dispatched_to, 'carol@example.com');
    const unknown = await all
      .post(`/portal/orders/${w.orderA}/dispatch/csv?_csrf=${encodeURIComponent(tk)}`)
      .attach('csv', Buffer.from(`BBBB-BBBB-BBBB-BBBB-BBBB-BBBB-BBBB,eve@example.com\n`), 'x.csv');
    assert.equal(unknown.status, 422, 'a key of another order is not accepted');
    assert.match(unknown.text, /not licenses of this order/);
    const broken = await all
      .post(`/portal/orders/${w.orderA}/dispatch/csv?_csrf=${encodeURIComponent(tk)}`)
      .attach(
        'csv',
        Buffer.from(`${keyed[2].license_key},carol@example.com\n${keyed[1].license_key},not-an-address\n`),
        'x.csv',
      );
    assert.equal(broken.status, 422, 'a line that does not read refuses the whole file');
    assert.match(broken.text, /\b2\b/, 'naming the line');
    const empty = await all
      .post(`/portal/orders/${w.orderA}/dispatch/csv?_csrf=${encodeURIComponent(tk)}`)
      .attach('csv', Buffer.from(''), 'x.csv');
    assert.equal(empty.status, 422);
    const noToken = await all
      .post(`/portal/orders/${w.orderA}/dispatch/csv`)
      .attach('csv', Buffer.from(csv), 'licenses.csv');
    assert.equal(noToken.status, 403);
    assert.equal((await auditOf(t.db, 'order', w.orderA)).filter((e) => e.action === 'licenses.dispatched').length, 2);
  });

  it("exports the order's licenses as CSV", async () => {
    const res = await all.get(`/portal/orders/${w.orderA}/export.csv`).expect(200);
    assert.match(res.headers['content-type']!, /text\/csv/);
    assert.match(res.headers['content-disposition']!, /attachment; filename="order-A-1-licenses.csv"/);
    const lines = res.text.trim().split('\r\n');
    assert.equal(
      lines[0],
      'license_id,license_key,product,status,times_activated,max_activations,start_date,expires_at,dispatched_to,dispatched_at,users,note',
    );
    assert.equal(lines.length - 1, await countRows(t.db, 'licenses', { order_id: w.orderA }));
    assert.ok(lines.some((l) => l.includes('alice@example.com')));
  });

  it('moves a license to another device: the page explains transfers left; the seat is freed; audited', async () => {
    const page = await all.get(`/portal/licenses/${w.licenseA}/devices/${w.deviceA}/reset`).expect(200);
    assert.match(page.text, /Transfers left after this move: 2/);
    const res = await post(all, `/portal/licenses/${w.licenseA}/devices/${w.deviceA}/reset`, { confirmed: '1' });
    assert.equal(res.status, 303);
    assert.equal((await licenseRow(w.licenseA)).times_activated, 0);
    assert.ok((await t.db('devices').where({ id: w.deviceA }).first()).deactivated_at);
    assert.deepEqual(
      (await auditOf(t.db, 'device', w.deviceA)).map((e) => e.action),
      ['device.reset'],
    );
  });

  it('disables, enables, notes, resets a license; revokes and lends a device', async () => {
    const id = w.licenseA;
    assert.equal((await post(all, `/portal/licenses/${id}/disable`, { confirmed: '1' })).status, 303);
    assert.ok(!Number((await licenseRow(id)).enabled));
    assert.equal((await post(all, `/portal/licenses/${id}/enable`)).status, 303);
    assert.equal((await post(all, `/portal/licenses/${id}/note`, { note: 'Spare laptop' })).status, 303);
    assert.equal((await licenseRow(id)).note, 'Spare laptop');
    const [d2] = await t.db('devices').insert({
      license_id: id,
      hardware_id: 'HW-2',
      active_hardware_id: 'HW-2',
      channel: 'online',
      activated_at: new Date(),
    });
    await t.db('licenses').where({ id }).update({ times_activated: 1 });
    const tooLong = await post(all, `/portal/licenses/${id}/devices/${d2}/borrow`, { hours: '100' });
    assert.equal(tooLong.status, 422);
    assert.match(tooLong.text, /limited to 48 hours/);
    assert.equal((await post(all, `/portal/licenses/${id}/devices/${d2}/borrow`, { hours: '24' })).status, 303);
    assert.ok((await t.db('devices').where({ id: d2 }).first()).borrowed_until);
    assert.equal((await post(all, `/portal/licenses/${id}/devices/${d2}/revoke`, { confirmed: '1' })).status, 303);
    assert.ok(await t.db('license_blacklist').where({ license_id: id, hardware_id: 'HW-2' }).first());
    assert.equal((await post(all, `/portal/licenses/${id}/reset`, { confirmed: '1' })).status, 303);
    const actions = (await auditOf(t.db, 'license', id)).map((e) => e.action);
    for (const a of ['license.disabled', 'license.enabled', 'license.note_changed', 'license.reset'])
      assert.ok(actions.includes(a), a);
    assert.deepEqual(
      (await auditOf(t.db, 'device', Number(d2))).map((e) => e.action),
      ['device.borrowed', 'device.blacklisted'],
    );
  });

  it("assigns and unassigns users, sets limits, resets a user's password", async () => {
    const id = w.userLicense;
    assert.equal(
      (await post(all, `/portal/licenses/${id}/users`, { email: 'dave@example.com', max_activations: '1' })).status,
      303,
    );
    const dave = await t.db('accounts').where({ email: 'dave@example.com' }).first();
    assert.equal((await post(all, `/portal/licenses/${id}/users/${dave.id}`, { max_activations: '0' })).status, 422);
    assert.equal((await post(all, `/portal/licenses/${id}/users/${dave.id}`, { max_activations: '3' })).status, 303);
    const busy = await post(all, `/portal/licenses/${id}/users/${w.endUser.id}/delete`, { confirmed: '1' });
    assert.match((await all.get(busy.headers.location)).text, /still has active devices/);
    const shown = await post(all, `/portal/licenses/${id}/users/${w.secondUser.id}/password`, {
      credentials: 'password',
    });
    assert.equal(shown.status, 200);
    const password = /class="one-time"><code>([^<]+)<\/code>/.exec(shown.text)![1]!;
    const login = request.agent(t.app);
    const p = await login.get('/login');
    await login
      .post('/login')
      .type('form')
      .send({ _csrf: csrfFrom(p.text), email: w.secondUser.email, password })
      .expect(303)
      .expect('location', '/account/password');
    assert.equal((await post(all, `/portal/licenses/${id}/users/${dave.id}/delete`, { confirmed: '1' })).status, 303);
    const actions = (await auditOf(t.db, 'license', id)).map((e) => e.action);
    for (const a of ['license_user.assigned', 'license_user.limit_changed', 'license_user.unassigned'])
      assert.ok(actions.includes(a), a);
  });

  it('downloads a refresh license file for an offline device, signed and with a growing counter', async () => {
    const { publicKey } = crypto.generateKeyPairSync('ed25519');
    // A refresh file follows the one validity rule: the license must (still) allow offline use and
    // have started (the device row below is made by hand, not by an activation that checked it).
    await t.db('licenses').where({ id: w.licenseA }).update({ allow_offline: true, start_date: null });
    const [deviceId] = await t.db('devices').insert({
      license_id: w.licenseA,
      hardware_id: 'HW-OFF',
      active_hardware_id: 'HW-OFF',
      channel: 'offline',
      device_public_key: devicePublicKeyString(publicKey),
      activated_at: new Date(),
    });
    const nonce = crypto.randomBytes(16).toString('base64url'); // the signer refuses a payload the SDK would refuse
    await t
      .db('request_nonces')
      .insert({ nonce, kind: 'activation', license_id: w.licenseA, device_id: deviceId, created_at: new Date() });
    const first = await all.get(`/portal/licenses/${w.licenseA}/devices/${deviceId}/refresh`).expect(200);
    assert.match(first.headers['content-disposition']!, /^attachment; filename="cad-HW-OFF-refresh-1\.lic"$/);
    assert.equal(first.headers['cache-control'], 'no-store');
    const verified = verifyEnvelope(first.text, { expectedType: 'refresh', trustedKeys: await trustedKeyMap(t.db) });
    const payload = verified.payload as Record<string, unknown>;
    assert.equal(payload.counter, 1);
    assert.equal(payload.hardwareId, 'HW-OFF');
    assert.equal(payload.requestNonce, nonce);
    assert.equal(payload.licenseKey, 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA');
    const second = await all.get(`/portal/licenses/${w.licenseA}/devices/${deviceId}/refresh`).expect(200);
    assert.equal(
      (
        verifyEnvelope(second.text, { expectedType: 'refresh', trustedKeys: await trustedKeyMap(t.db) }).payload as {
          counter: number;
        }
      ).counter,
      2,
    );
    const online = await all.get(`/portal/licenses/${w.licenseA}/devices/${w.deviceA}/refresh`);
    assert.equal(online.status, 303, 'not for a device without an offline activation');
    assert.equal(
      (await auditOf(t.db, 'device', Number(deviceId))).filter((e) => e.action === 'device.refresh_file_issued').length,
      2,
    );
  });
});

describe('User Portal: end-user self-service', () => {
  let t: TestApp;
  let w: World;
  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
  });
  after(async () => t.close());

  it('is off by default: no licenses shown, releasing is 404', async () => {
    const agent = await loginAgent(t.app, w.endUser.email, w.endUser.password);
    const page = await agent.get('/portal').expect(200);
    assert.match(page.text, /not enabled self-service/);
    const tk = csrfFrom(page.text);
    await agent.post(`/portal/my/devices/${w.userDevice}/release`).type('form').send({ _csrf: tk }).expect(404);
  });

  it('when on: shows My licenses with devices; releases only own devices; rate-limited; audited', async () => {
    await t.db('settings').insert({ key: 'end_user_self_service', value: 'true', updated_at: new Date() });
    await bumpGeneration(t.db, new Date()); // written past the models: tell the caches
    const agent = await loginAgent(t.app, w.endUser.email, w.endUser.password);
    const page = await agent.get('/portal').expect(200);
    assert.match(page.text, /Acme Analytics/);
    assert.match(page.text, /HW-U\.local/);
    const tk = csrfFrom(page.text);
    await agent.post(`/portal/my/devices/${w.deviceA}/release`).type('form').send({ _csrf: tk }).expect(404);
    await agent.post(`/portal/my/devices/${w.userDevice}/release`).type('form').send({ _csrf: tk }).expect(303);
    assert.ok((await t.db('devices').where({ id: w.userDevice }).first()).deactivated_at);
    assert.equal(
      (await t.db('license_user_assignments').where({ license_id: w.userLicense, account_id: w.endUser.id }).first())
        .times_activated,
      0,
    );
    assert.deepEqual(
      (await auditOf(t.db, 'device', w.userDevice)).map((e) => e.action),
      ['device.released_by_user'],
    );
    for (let i = 0; i < 4; i++)
      await agent.post(`/portal/my/devices/${w.userDevice}/release`).type('form').send({ _csrf: tk });
    const limited = await agent.post(`/portal/my/devices/${w.userDevice}/release`).type('form').send({ _csrf: tk });
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers['retry-after']) > 0);
  });
});
