import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type request from 'supertest';
import { auditOf, buildTestApp, countRows, createAccount, csrfFrom, loginAgent, type TestApp } from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import * as catalog from '../../app/models/catalog.ts';
import type { PorticoApp } from '../../app/app.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;
type Agent = ReturnType<typeof request.agent>;

/**
 * Delegation down the channel (docs/user-portal.md, "Delegation"): a distributor (Manager on order A)
 * invites a reseller with a role no stronger than its own; the reseller invites the customer's IT admin
 * the same way; nobody sees or touches anyone above them; sub-quotas come out of the granter's quota
 * and hold under concurrency (this file runs on SQLite and, with DATABASE_URL, on MariaDB).
 */
describe('Delegation: roles down the channel and sub-quotas', function () {
  this.timeout(120_000);
  let t: TestApp;
  let w: World;
  let server: Server;
  let base: string;
  let distributor: Agent;
  const roleId = async (builtin: string) => String((await t.db('roles').where({ builtin }).first()).id);
  const post = async (agent: Agent, url: string, fields: Record<string, string> = {}) =>
    agent
      .post(url)
      .type('form')
      .send({ _csrf: csrfFrom((await agent.get('/account')).text), ...fields });
  const login = (account: { email: string; password: string }) =>
    loginAgent(base as unknown as PorticoApp, account.email, account.password);
  const assignment = (accountId: number, orderId: number) =>
    t.db('manager_orders').where({ account_id: accountId, order_id: orderId }).first();

  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    server = t.app.listen(0);
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    distributor = await login(w.managerAll);
  });
  after(async () => {
    server.close();
    await t.close();
  });

  it('invites a new address as a manager with a role no stronger than the inviter’s, and mails the link', async () => {
    const res = await post(distributor, `/portal/orders/${w.orderA}/managers`, {
      email: 'Reseller.New@Example.com',
      name: 'New Reseller',
      role_id: await roleId('operator'),
    });
    assert.equal(res.status, 303);
    const account = await t.db('accounts').where({ email: 'reseller.new@example.com' }).first();
    assert.equal(account.role, 'manager');
    assert.equal(account.password_hash, null, 'they choose their password through the link');
    const row = await assignment(account.id, w.orderA);
    assert.equal(String(row.role_id), await roleId('operator'));
    assert.equal(row.invited_by, w.managerAll.id);
    assert.ok(await t.db('mail_outbox').where({ to_address: 'reseller.new@example.com' }).first());
    // An end user's address is never turned into a manager.
    const endUser = await post(distributor, `/portal/orders/${w.orderA}/managers`, {
      email: w.endUser.email,
      role_id: await roleId('viewer'),
    });
    assert.equal(endUser.status, 422);
    assert.equal((await t.db('accounts').where({ id: w.endUser.id }).first()).role, 'end_user');
  });

  it('caps a manager at 20 invitations an hour: the 21st is 429 with Retry-After and makes no account, sends no mail', async () => {
    const inviter = await createAccount(t.db, { role: 'manager', name: 'Busy Distributor' });
    await catalog.assignManager(t.db, inviter.id, w.orderA, new Date(), 'manager');
    const agent = await login(inviter);
    const invite = async (n: number) =>
      post(agent, `/portal/orders/${w.orderA}/managers`, {
        email: `flood-${n}@example.com`,
        role_id: await roleId('viewer'),
      });
    for (let n = 1; n <= 20; n++) assert.equal((await invite(n)).status, 303, `invitation ${n}`);
    const refused = await invite(21);
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers['retry-after']) > 0);
    assert.equal(await countRows(t.db, 'accounts', { email: 'flood-21@example.com' }), 0);
    assert.equal(await countRows(t.db, 'mail_outbox', { to_address: 'flood-21@example.com' }), 0);
    // Another manager's budget is their own.
    const other = await post(distributor, `/portal/orders/${w.orderA}/managers`, {
      email: 'not-flooded@example.com',
      role_id: await roleId('viewer'),
    });
    assert.equal(other.status, 303);
  });

  describe('a reseller under the distributor', () => {
    let reseller: Awaited<ReturnType<typeof createAccount>>;
    let itAdmin: Awaited<ReturnType<typeof createAccount>>;
    let r: Agent;
    let orderC: number;
    let resellerRole: string;

    before(async () => {
      reseller = await createAccount(t.db, { role: 'manager', name: 'Reseller' });
      itAdmin = await createAccount(t.db, { role: 'manager', name: 'IT Admin' });
      // The distributor's other order, which the reseller must never learn of.
      orderC = await catalog.insertOrder(t.db, { orderRef: 'C-SECRET', customerId: w.customer }, new Date());
      await catalog.assignManager(t.db, w.managerAll.id, orderC, new Date(), 'manager');
      // A role of the vendor's: Operator plus inviting managers.
      const [id] = await t.db('roles').insert({
        name: 'Reseller',
        builtin: null,
        is_default: false,
        created_at: new Date(),
        updated_at: new Date(),
      });
      resellerRole = String(id);
      await t.db('role_permissions').insert(
        ['dispatch_license', 'manage_license_users', 'reset_device', 'manage_managers'].map((permission) => ({
          role_id: id,
          permission,
        })),
      );
      r = await login(reseller);
    });

    it('is invited with the Operator role, which lacks manage_managers: inviting is 403', async () => {
      assert.equal(
        (
          await post(distributor, `/portal/orders/${w.orderA}/managers`, {
            email: reseller.email,
            role_id: await roleId('operator'),
          })
        ).status,
        303,
      );
      const tried = await post(r, `/portal/orders/${w.orderA}/managers`, {
        email: itAdmin.email,
        role_id: await roleId('viewer'),
      });
      assert.equal(tried.status, 403);
      assert.equal(await assignment(itAdmin.id, w.orderA), undefined);
    });

    it('gets the Reseller role from the distributor, then cannot invite with a stronger role than its own', async () => {
      assert.equal(
        (
          await post(distributor, `/portal/orders/${w.orderA}/managers/${reseller.id}/role`, {
            role_id: resellerRole,
          })
        ).status,
        303,
      );
      const stronger = await post(r, `/portal/orders/${w.orderA}/managers`, {
        email: itAdmin.email,
        role_id: await roleId('manager'),
      });
      assert.equal(stronger.status, 422);
      assert.match(stronger.text, /no permission you do not have/);
      assert.equal(await assignment(itAdmin.id, w.orderA), undefined);
      // Its own role is the strongest it can give.
      assert.equal(
        (await post(r, `/portal/orders/${w.orderA}/managers`, { email: itAdmin.email, role_id: resellerRole })).status,
        303,
      );
      assert.equal((await assignment(itAdmin.id, w.orderA)).invited_by, reseller.id);
      // Nor may it raise its invitee, or itself, above its own role afterwards.
      assert.equal(
        (
          await post(r, `/portal/orders/${w.orderA}/managers/${itAdmin.id}/role`, {
            role_id: await roleId('manager'),
          })
        ).status,
        422,
      );
      assert.equal(
        (
          await post(r, `/portal/orders/${w.orderA}/managers/${reseller.id}/role`, {
            role_id: await roleId('manager'),
          })
        ).status,
        404,
      );
      assert.equal(String((await assignment(reseller.id, w.orderA)).role_id), resellerRole);
    });

    it("sees neither its parent's other orders nor the managers above or beside it", async () => {
      await r.get(`/portal/orders/${orderC}`).expect(404);
      assert.doesNotMatch((await r.get('/portal/orders').expect(200)).text, /C-SECRET/);
      assert.match((await r.get('/portal/search?q=C-SECRET').expect(200)).text, /No order matches/);
      const page = (await r.get(`/portal/orders/${w.orderA}`).expect(200)).text;
      assert.match(page, new RegExp(reseller.email));
      assert.match(page, new RegExp(itAdmin.email));
      for (const above of [w.managerAll, w.managerNone, w.operator])
        assert.doesNotMatch(page, new RegExp(above.email), `${above.email} is not shown`);
      // Forged requests at the managers above it: 404, as if they were not there.
      for (const above of [w.managerAll, w.managerNone]) {
        assert.equal(
          (await post(r, `/portal/orders/${w.orderA}/managers/${above.id}/delete`, { confirmed: '1' })).status,
          404,
        );
        assert.equal(
          (
            await post(r, `/portal/orders/${w.orderA}/managers/${above.id}/role`, {
              role_id: await roleId('viewer'),
            })
          ).status,
          404,
        );
      }
      assert.ok(await assignment(w.managerAll.id, w.orderA));
      assert.ok(await assignment(w.managerNone.id, w.orderA));
      // The distributor sees the whole tree below it.
      const top = (await distributor.get(`/portal/orders/${w.orderA}`).expect(200)).text;
      assert.match(top, new RegExp(itAdmin.email));
    });

    it('cannot probe addresses: a manager above or beside it and an end user get one and the same refusal', async () => {
      const endUser = await createAccount(t.db, { role: 'end_user', name: 'Somebody' });
      const refusals: string[] = [];
      for (const email of [w.managerAll.email, w.operator.email, endUser.email]) {
        const res = await post(r, `/portal/orders/${w.orderA}/managers`, { email, role_id: await roleId('viewer') });
        assert.equal(res.status, 422, email);
        assert.doesNotMatch(res.text, /already assigned|No license manager/, email);
        refusals.push(/This address cannot be invited to this order/.exec(res.text)?.[0] ?? `none for ${email}`);
      }
      assert.deepEqual(new Set(refusals), new Set(['This address cannot be invited to this order']));
      // Its own invitee is someone it can see: named as already assigned.
      const own = await post(r, `/portal/orders/${w.orderA}/managers`, {
        email: itAdmin.email,
        role_id: await roleId('viewer'),
      });
      assert.equal(own.status, 422);
      assert.match(own.text, /already assigned to this order/);
    });

    it('sub-quotas: carved out of the granter’s quota, never exceeded, given back only unissued', async () => {
      // The distributor holds 5 of the key product (portalWorld). It gives the reseller 3.
      const team = (url: string, fields: Record<string, string>) => post(distributor, url, fields);
      const grant = (quota: number) =>
        team(`/portal/team/${reseller.id}/quotas`, { product_id: String(w.product), quota: String(quota) });
      assert.equal((await grant(3)).status, 303);
      const quotaRow = (id: number) => t.db('manager_quotas').where({ account_id: id, product_id: w.product }).first();
      assert.deepEqual(
        { quota: (await quotaRow(reseller.id)).quota, grantedBy: (await quotaRow(reseller.id)).granted_by },
        { quota: 3, grantedBy: w.managerAll.id },
      );
      assert.equal((await quotaRow(w.managerAll.id)).issued, 3, 'the 3 count as used on the distributor');
      assert.equal((await grant(6)).status, 422, 'only 2 are left to give');
      // The reseller issues its 3 (Reseller role has no issue_license: give it Manager-like powers here).
      await t
        .db('manager_orders')
        .where({ account_id: reseller.id, order_id: w.orderA })
        .update({ role_id: await roleId('manager') });
      const issue = (agent: Agent, quantity: number) =>
        post(agent, `/portal/orders/${w.orderA}/licenses`, { policy_id: String(w.policy), quantity: String(quantity) });
      assert.equal((await issue(r, 3)).status, 303);
      assert.equal((await issue(r, 1)).status, 422, 'its sub-quota is used up');
      assert.equal((await grant(2)).status, 422, 'cannot take back what was issued');
      assert.equal((await issue(distributor, 3)).status, 422, 'the distributor has 2 left, not 3');
      assert.equal((await issue(distributor, 2)).status, 303);
      assert.equal((await quotaRow(w.managerAll.id)).issued, 5);
      // Only to one's own invitees: 404 for anybody else, and in the console the sub-quota is marked.
      assert.equal(
        (await team(`/portal/team/${w.managerNone.id}/quotas`, { product_id: String(w.product), quota: '1' })).status,
        404,
      );
      assert.equal(
        (await post(r, `/portal/team/${w.managerAll.id}/quotas`, { product_id: String(w.product), quota: '1' })).status,
        404,
      );
      assert.match((await distributor.get('/portal/team').expect(200)).text, new RegExp(reseller.email));
    });

    it('removing the reseller keeps the IT admin it invited, now under the distributor', async () => {
      assert.equal(
        (await post(distributor, `/portal/orders/${w.orderA}/managers/${reseller.id}/delete`, { confirmed: '1' }))
          .status,
        303,
      );
      assert.equal(await assignment(reseller.id, w.orderA), undefined);
      assert.equal((await assignment(itAdmin.id, w.orderA)).invited_by, w.managerAll.id);
      await r.get(`/portal/orders/${w.orderA}`).expect(404);
      const actions = (await auditOf(t.db, 'order', w.orderA)).map((e) => e.action);
      for (const a of ['order.manager_added', 'order.manager_role_changed', 'order.manager_removed'])
        assert.ok(actions.includes(a), a);
      assert.ok((await auditOf(t.db, 'account', reseller.id)).some((e) => e.action === 'manager.sub_quota_set'));
    });
  });

  describe('under concurrency', () => {
    it('40 racing sub-quota grants of 2 out of a quota of 10: exactly 5 pass, and the sum stays 10', async () => {
      const invitees = await Promise.all(
        Array.from({ length: 40 }, (_, i) => createAccount(t.db, { role: 'manager', name: `Racer ${i}` })),
      );
      const now = new Date();
      const boss = await createAccount(t.db, { role: 'manager', name: 'Boss' });
      await catalog.assignManager(t.db, boss.id, w.orderB, now, 'manager');
      await t.db('manager_quotas').insert({ account_id: boss.id, product_id: w.product, quota: 10, issued: 0 });
      for (const i of invitees) {
        await catalog.assignManager(t.db, i.id, w.orderB, now, 'viewer');
        await t.db('manager_orders').where({ account_id: i.id }).update({ invited_by: boss.id });
      }
      const agent = await login(boss);
      const token = csrfFrom((await agent.get('/account')).text);
      const answers = await Promise.all(
        invitees.map((i) =>
          agent
            .post(`/portal/team/${i.id}/quotas`)
            .type('form')
            .send({ _csrf: token, product_id: String(w.product), quota: '2' }),
        ),
      );
      const statuses = answers.map((a) => a.status).sort();
      assert.deepEqual(statuses, [...Array(5).fill(303), ...Array(35).fill(422)]);
      const granted = await t.db('manager_quotas').where({ granted_by: boss.id, product_id: w.product });
      assert.equal(
        granted.reduce((n: number, g: { quota: number }) => n + Number(g.quota), 0),
        10,
      );
      assert.equal(
        (await t.db('manager_quotas').where({ account_id: boss.id, product_id: w.product }).first()).issued,
        10,
      );
    });

    it('30 racing issues of 1 license under a sub-quota of 3: exactly 3 licenses', async () => {
      const now = new Date();
      const parent = await createAccount(t.db, { role: 'manager', name: 'Parent' });
      const child = await createAccount(t.db, { role: 'manager', name: 'Child' });
      const order = await catalog.insertOrder(t.db, { orderRef: 'RACE-1', customerId: w.customer }, now);
      await catalog.assignManager(t.db, parent.id, order, now, 'manager');
      await catalog.assignManager(t.db, child.id, order, now, 'manager');
      await t.db('manager_orders').where({ account_id: child.id }).update({ invited_by: parent.id });
      await t.db('manager_quotas').insert({ account_id: parent.id, product_id: w.product, quota: 3, issued: 0 });
      const p = await login(parent);
      assert.equal(
        (await post(p, `/portal/team/${child.id}/quotas`, { product_id: String(w.product), quota: '3' })).status,
        303,
      );
      const c = await login(child);
      const token = csrfFrom((await c.get('/account')).text);
      const answers = await Promise.all(
        Array.from({ length: 30 }, () =>
          c
            .post(`/portal/orders/${order}/licenses`)
            .type('form')
            .send({ _csrf: token, policy_id: String(w.policy), quantity: '1' }),
        ),
      );
      assert.equal(answers.filter((a) => a.status === 303).length, 3);
      assert.ok(answers.every((a) => [303, 422].includes(a.status)));
      assert.equal(await countRows(t.db, 'licenses', { order_id: order }), 3);
    });
  });
});
