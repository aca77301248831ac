import assert from 'node:assert/strict';
import request from 'supertest';
import {
  buildTestApp,
  adminAgent,
  auditOf,
  createAccount,
  csrfFrom,
  loginAgent,
  type TestApp,
} from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import { makeDevice } from '../helpers/device.ts';
import * as catalog from '../../app/models/catalog.ts';
import * as licenseUsers from '../../app/models/license-users.ts';
import * as roles from '../../app/models/roles.ts';
import * as brandings from '../../app/models/brandings.ts';
import { generateSigningKey } from '../../app/services/signing-keys.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;
type Agent = Awaited<ReturnType<typeof loginAgent>>;

/**
 * The confirmation step (docs/decisions.md, "Confirmation"): for every action that asks, a POST
 * without confirmed=1 changes nothing and answers the confirm page naming the object; with it, the
 * action happens. Blacklisting has an undo, for whoever may blacklist.
 */
describe('Confirmation of irreversible actions', function () {
  this.timeout(120_000);
  let t: TestApp;
  let w: World;
  let manager: Agent;
  let other: Agent;
  let admin: Agent;

  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    // The licenses started before the test clock's now; the operator is below managerAll on order A.
    await t.db('licenses').update({ start_date: new Date(Date.now() - 86_400_000) });
    await t
      .db('manager_orders')
      .where({ account_id: w.operator.id, order_id: w.orderA })
      .update({ invited_by: w.managerAll.id });
    manager = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    other = await loginAgent(t.app, w.managerB.email, w.managerB.password);
    admin = (await adminAgent(t)).agent;
  });
  after(async () => t.close());

  const token = async (agent: Agent) => csrfFrom((await agent.get('/account')).text);
  const post = async (agent: Agent, url: string, fields: Record<string, string> = {}) =>
    agent
      .post(url)
      .type('form')
      .send({ _csrf: await token(agent), ...fields });

  /**
   * One confirmed action: unconfirmed it answers the confirm page (naming `names`, posting back to
   * `url` with confirmed=1) and `state` is unchanged; confirmed it redirects and `state` changes.
   */
  const confirmed = async (
    agent: Agent,
    url: string,
    names: (string | RegExp)[],
    state: () => Promise<unknown>,
    fields: Record<string, string> = {},
  ) => {
    const before = await state();
    const page = await post(agent, url, fields);
    assert.equal(page.status, 200, `${url} unconfirmed: ${page.status}`);
    assert.match(page.text, /data-confirmation/);
    for (const n of names) assert.match(page.text, typeof n === 'string' ? new RegExp(literal(n)) : n);
    assert.match(page.text, new RegExp(`<form method="post" action="${literal(url)}">`));
    assert.match(page.text, /name="confirmed" value="1"/);
    assert.deepEqual(await state(), before, `${url} acted without confirmation`);
    const ok = await post(agent, url, { ...fields, confirmed: '1' });
    assert.equal(ok.status, 303, `${url} confirmed: ${ok.status} ${ok.text.slice(0, 300)}`);
    assert.notDeepEqual(await state(), before, `${url} did nothing when confirmed`);
  };
  const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const row = (table: string, where: Record<string, unknown>) => t.db(table).where(where).first();
  const keyA = 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA';

  describe('User Portal', () => {
    it('resetting a machine, blacklisting it, removing it from the blacklist', async () => {
      const device = () => row('devices', { id: w.deviceA });
      // The buttons ask first (public/js/confirm.js reads data-confirm).
      const shown = await manager.get(`/portal/licenses/${w.licenseA}`).expect(200);
      assert.match(
        shown.text,
        new RegExp(
          `action="/portal/licenses/${w.licenseA}/devices/${w.deviceA}/revoke" class="inline-form" data-confirm>`,
        ),
      );
      assert.match(
        shown.text,
        new RegExp(`action="/portal/licenses/${w.licenseA}/disable" class="inline-form" data-confirm>`),
      );
      await confirmed(
        manager,
        `/portal/licenses/${w.licenseA}/devices/${w.deviceA}/reset`,
        ['Reset machine HW-A (HW-A.local)?', keyA],
        async () => (await device()).deactivated_at,
      );
      // The transfer page (a link) is itself the confirmation: its form carries the field.
      const again = await t.db('devices').insert({
        license_id: w.licenseA,
        hardware_id: 'HW-A2',
        active_hardware_id: 'HW-A2',
        channel: 'offline',
        activated_at: new Date(),
      });
      const transfer = await manager.get(`/portal/licenses/${w.licenseA}/devices/${again[0]}/reset`).expect(200);
      assert.match(transfer.text, /name="confirmed" value="1"/);

      await confirmed(
        manager,
        `/portal/licenses/${w.licenseA}/devices/${w.deviceA}/revoke`,
        [
          'Blacklist machine HW-A (HW-A.local)?',
          `Blacklist machine HW-A (HW-A.local) on license ${keyA}: it is deactivated and can never activate this license again`,
        ],
        async () => Boolean(await row('license_blacklist', { license_id: w.licenseA, hardware_id: 'HW-A' })),
      );
      const page = await manager.get(`/portal/licenses/${w.licenseA}`).expect(200);
      assert.match(page.text, /Remove from blacklist: HW-A/);
    });

    it("the undo of a blacklist lets the machine activate again; only within the manager's orders", async () => {
      const machine = makeDevice('HW-A');
      const activate = () =>
        request(t.app)
          .post('/api/v1/activate')
          .set('Accept', 'application/json')
          .send({ request: machine.activationRequest({ product: 'cad', licenseKey: keyA }).text });
      const refused = await activate();
      assert.equal(refused.status, 403);
      assert.equal(refused.body.error.code, 'blacklisted');

      const undo = `/portal/licenses/${w.licenseA}/devices/${w.deviceA}/unblacklist`;
      // A manager of another order: the license does not exist for them.
      assert.equal((await post(other, undo)).status, 404);
      assert.ok(await row('license_blacklist', { license_id: w.licenseA, hardware_id: 'HW-A' }));

      const done = await post(manager, undo);
      assert.equal(done.status, 303);
      assert.match((await manager.get(done.headers.location)).text, /off the blacklist/);
      assert.equal(await row('license_blacklist', { license_id: w.licenseA, hardware_id: 'HW-A' }), undefined);
      assert.ok(!Number((await row('devices', { id: w.deviceA })).blacklisted));
      assert.deepEqual(
        (await auditOf(t.db, 'device', w.deviceA)).map((e) => e.action),
        ['device.reset', 'device.blacklisted', 'device.unblacklisted'],
      );
      assert.equal((await activate()).status, 200);
      // Twice is refused: nothing is on the blacklist any more.
      const twice = await post(manager, undo);
      assert.equal(twice.status, 303);
      assert.match((await manager.get(twice.headers.location)).text, /not on the blacklist/);
    });

    it('disabling a license and resetting all its devices', async () => {
      await confirmed(manager, `/portal/licenses/${w.licenseA}/disable`, [`Disable license ${keyA}?`], async () =>
        Number((await row('licenses', { id: w.licenseA })).enabled),
      );
      await confirmed(
        manager,
        `/portal/licenses/${w.licenseA}/reset`,
        [`Reset all devices of license ${keyA}?`, /All \d+ active machines/],
        async () => Number((await row('licenses', { id: w.licenseA })).times_activated),
      );
    });

    it('unassigning a user and withdrawing an invitation name the address', async () => {
      await confirmed(
        manager,
        `/portal/licenses/${w.userLicense}/users/${w.secondUser.id}/delete`,
        [`Remove ${w.secondUser.email} from license User license #${w.userLicense}?`],
        async () =>
          Boolean(await row('license_user_assignments', { license_id: w.userLicense, account_id: w.secondUser.id })),
      );
      // A pending invitation of an end user (services/license-users.ts sends these to users the manager does not own).
      const newcomer = await createAccount(t.db, { role: 'end_user', email: 'newcomer@example.com' });
      const invitation = {
        id: await licenseUsers.insertInvitation(
          t.db,
          {
            licenseId: w.userLicense,
            accountId: newcomer.id,
            maxActivations: 1,
            tokenHash: 'x'.repeat(64),
            invitedBy: w.managerAll.id,
            expiresAt: new Date(t.clock.now().getTime() + 86_400_000),
          },
          t.clock.now(),
        ),
      };
      await confirmed(
        manager,
        `/portal/licenses/${w.userLicense}/invitations/${invitation.id}/delete`,
        ['Withdraw the invitation of newcomer@example.com?'],
        async () => Boolean(await row('license_user_invitations', { id: invitation.id })),
      );
    });

    it('voiding a code and removing a manager name them', async () => {
      const gen = await post(manager, `/portal/orders/${w.orderA}/vouchers`, {
        count: '1',
        days: '30',
        policy_id: String(w.policy),
      });
      assert.equal(gen.status, 303, gen.text.slice(0, 300));
      const voucher = await t.db('vouchers').orderBy('id', 'desc').first();
      await confirmed(
        manager,
        `/portal/orders/${w.orderA}/vouchers/${voucher.id}/void`,
        [`Void code …${voucher.hint}?`, /order A-1/],
        async () => (await row('vouchers', { id: voucher.id })).voided_at,
      );
      await confirmed(
        manager,
        `/portal/orders/${w.orderA}/managers/${w.operator.id}/delete`,
        [`Remove ${w.operator.email} from order A-1?`],
        async () => Boolean(await row('manager_orders', { account_id: w.operator.id, order_id: w.orderA })),
      );
    });

    it('outside the scope the confirm page is 404 too, and names nothing', async () => {
      for (const url of [
        `/portal/licenses/${w.licenseA}/disable`,
        `/portal/licenses/${w.licenseA}/devices/${w.deviceA}/revoke`,
        `/portal/orders/${w.orderA}/managers/${w.managerAll.id}/delete`,
      ]) {
        const res = await post(other, url);
        assert.equal(res.status, 404, url);
        assert.doesNotMatch(res.text, /AAAA-AAAA|data-confirmation/);
      }
    });
  });

  describe('console', () => {
    it('device, license and license-user actions ask first', async () => {
      await confirmed(
        admin,
        `/admin/licenses/${w.licenseB}/devices/${w.deviceB}/blacklist`,
        ['Blacklist machine HW-B (HW-B.local)?', 'BBBB-BBBB-BBBB-BBBB-BBBB-BBBB-BBBB'],
        async () => Boolean(await row('license_blacklist', { license_id: w.licenseB, hardware_id: 'HW-B' })),
      );
      const undo = await post(admin, `/admin/licenses/${w.licenseB}/devices/${w.deviceB}/unblacklist`);
      assert.equal(undo.status, 303);
      assert.equal(await row('license_blacklist', { license_id: w.licenseB, hardware_id: 'HW-B' }), undefined);
      await confirmed(
        admin,
        `/admin/licenses/${w.licenseB}/disable`,
        ['Disable license BBBB-BBBB-BBBB-BBBB-BBBB-BBBB-BBBB?'],
        async () => Number((await row('licenses', { id: w.licenseB })).enabled),
      );
      await confirmed(
        admin,
        `/admin/licenses/${w.userLicense}/devices/${w.userDevice}/reset`,
        ['Reset machine HW-U (HW-U.local)?'],
        async () => (await row('devices', { id: w.userDevice })).deactivated_at,
      );
      await confirmed(
        admin,
        `/admin/licenses/${w.userLicense}/users/${w.endUser.id}/delete`,
        [`Remove ${w.endUser.email} from license`],
        async () =>
          Boolean(await row('license_user_assignments', { license_id: w.userLicense, account_id: w.endUser.id })),
      );
    });

    it('deletions name what is deleted', async () => {
      const now = new Date();
      const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Soon Gone Ltd' }, now);
      await confirmed(admin, `/admin/customers/${customer}/delete`, ['Delete Soon Gone Ltd?'], async () =>
        Boolean(await row('customers', { id: customer })),
      );
      const product = await catalog.insertProduct(
        t.db,
        { name: 'Short Lived', code: 'short', authorizationMethod: 'key' },
        now,
      );
      const feature = await post(admin, `/admin/products/${product}/features`, {
        code: 'export',
        name: 'Export',
        type: 'activation',
      });
      assert.equal(feature.status, 303, feature.text.slice(0, 300));
      const f = await row('features', { product_id: product });
      await confirmed(
        admin,
        `/admin/products/${product}/features/${f.id}/delete`,
        ['Delete Export (export)?'],
        async () => Boolean(await row('features', { id: f.id })),
      );
      await confirmed(admin, `/admin/products/${product}/delete`, ['Delete Short Lived?'], async () =>
        Boolean(await row('products', { id: product })),
      );
      const order = await catalog.insertOrder(t.db, { orderRef: 'GONE-1', customerId: w.customer }, now);
      await confirmed(admin, `/admin/orders/${order}/delete`, ['Delete GONE-1?'], async () =>
        Boolean(await row('orders', { id: order })),
      );
      await confirmed(
        admin,
        `/admin/managers/${w.mixed.id}/orders/${w.orderB}/delete`,
        [`Remove ${w.mixed.email} from order B-1?`],
        async () => Boolean(await row('manager_orders', { account_id: w.mixed.id, order_id: w.orderB })),
      );
      await confirmed(
        admin,
        `/admin/managers/${w.managerB.id}/quotas/${w.product}/delete`,
        [`Remove the quota of ${w.managerB.email} for Acme CAD?`],
        async () => Boolean(await row('manager_quotas', { account_id: w.managerB.id, product_id: w.product })),
      );
    });

    it('roles, brandings, host names, logos and signing keys ask first', async () => {
      const now = new Date();
      const role = await roles.insert(t.db, 'Temporary helpers', [], now);
      await confirmed(admin, `/admin/roles/${role}/delete`, ['Delete Temporary helpers?'], async () =>
        Boolean(await row('roles', { id: role })),
      );
      const branding = await brandings.insert(t.db, { name: 'shortlived', displayName: 'Short Lived Inc' }, now);
      const host = await brandings.insertHost(t.db, branding, 'old.example.com', 'portal', now);
      await brandings.setLogo(t.db, branding, { data: Buffer.from('<svg/>'), mime: 'image/svg+xml' }, now);
      await confirmed(admin, `/admin/brandings/${branding}/logo/delete`, ['Remove the logo of shortlived?'], async () =>
        Boolean((await row('brandings', { id: branding })).logo_mime),
      );
      await confirmed(
        admin,
        `/admin/brandings/${branding}/hosts/${host}/delete`,
        ['Remove host old.example.com?'],
        async () => Boolean(await row('branding_hosts', { id: host })),
      );
      await confirmed(admin, `/admin/brandings/${branding}/delete`, ['Delete shortlived?'], async () =>
        Boolean(await row('brandings', { id: branding })),
      );
      const key = await generateSigningKey(t.db, t.dataDir, now, 'trusted');
      await confirmed(
        admin,
        `/admin/keys/${key.kid}/retire`,
        [`Retire signing key ${key.kid}?`],
        async () => (await row('signing_keys', { kid: key.kid })).status,
      );
    });

    it('voiding a code of a batch and the rest of the batch name them', async () => {
      const gen = await post(admin, `/admin/orders/${w.orderA}/vouchers`, {
        count: '3',
        days: '30',
        policy_id: String(w.policy),
      });
      assert.equal(gen.status, 303, gen.text.slice(0, 300));
      const batch = await t.db('voucher_batches').orderBy('id', 'desc').first();
      const [first] = await t.db('vouchers').where({ batch_id: batch.id }).orderBy('id');
      const shown = await admin.get(`/admin/vouchers/${batch.id}`).expect(200);
      assert.match(
        shown.text,
        new RegExp(`action="/admin/vouchers/${batch.id}/void-rest" class="inline-form" data-confirm>`),
      );
      await confirmed(
        admin,
        `/admin/vouchers/${batch.id}/codes/${first.id}/void`,
        [`Void code …${first.hint}?`, /order A-1/],
        async () => (await row('vouchers', { id: first.id })).voided_at,
      );
      await confirmed(
        admin,
        `/admin/vouchers/${batch.id}/void-rest`,
        [`Void the 2 unused codes of batch ${batch.id}?`, /order A-1/],
        async () => (await t.db('vouchers').where({ batch_id: batch.id }).whereNull('voided_at')).length,
      );
    });

    it('a console action without its object is 404 before any question', async () => {
      assert.equal((await post(admin, '/admin/products/999999/delete')).status, 404);
      assert.equal((await post(admin, `/admin/products/${w.product}/features/999999/delete`)).status, 404);
      assert.equal((await post(admin, '/admin/keys/no-such-key/retire')).status, 404);
      assert.equal((await post(admin, '/admin/vouchers/999999/void-rest')).status, 404);
      assert.equal((await post(admin, '/admin/vouchers/999999/codes/1/void')).status, 404);
    });
  });
});
