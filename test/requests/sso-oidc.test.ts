import assert from 'node:assert/strict';
import request from 'supertest';
import {
  adminAgent,
  auditOf,
  buildTestApp,
  countRows,
  createAccount,
  csrfFrom,
  loginAgent,
  submitForm,
  type TestApp,
} from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import { CLIENT_ID, CLIENT_SECRET, signInAtOp, startOp, type TestOp } from '../helpers/sso.ts';
import * as catalog from '../../app/models/catalog.ts';
import * as roles from '../../app/models/roles.ts';
import * as managers from '../../app/models/managers.ts';
import { saveSettings } from '../../app/models/settings.ts';
import { inTransaction } from '../../app/lib/transaction.ts';
import { dataDirSecretBox } from '../../app/crypto/secret-box.ts';

/**
 * Single sign-on with OpenID Connect against a real provider (oidc-provider on loopback, its own login
 * and consent pages): JIT accounts, group → role and group → seat, the seat rule in both modes, the
 * protocol's refusals (state, replay, expiry, disabled, foreign domain), routing by e-mail domain and
 * who may see a customer's provider pages.
 */
describe('single sign-on: OpenID Connect', function () {
  this.timeout(60_000);
  let t: TestApp;
  let op: TestOp;
  let w: Awaited<ReturnType<typeof portalWorld>>;
  let admin: Awaited<ReturnType<typeof adminAgent>>['agent'];
  let providerId: number;
  let seatLicense: number;
  const base = (customer: number) => `/admin/customers/${customer}/sso`;

  const sidOf = (res: request.Response) =>
    ([] as string[])
      .concat(res.headers['set-cookie'] ?? [])
      .find((c) => c.startsWith('portico.sid='))
      ?.split(';')[0];

  /** The whole browser round trip: Portico's redirect, the provider's pages, Portico's callback. */
  async function ssoLogin(email: string, agent = request.agent(t.app)) {
    const start = await agent.get(`/sso/${providerId}/start?email=${encodeURIComponent(email)}`).expect(303);
    const callback = await signInAtOp(start.headers.location!, email);
    const res = await agent.get(callback.pathname + callback.search);
    return { agent, res, callback };
  }

  const sent = async (p: Promise<request.Response>, status: number) => {
    const res = await p;
    assert.equal(res.status, status, res.text.slice(0, 800));
    return res;
  };

  const accountOf = (email: string) => t.db('accounts').where({ email }).first();

  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    op = await startOp(t.config.baseUrl);
    admin = (await adminAgent(t)).agent;
    await inTransaction(t.db, (trx) => saveSettings(trx, { webhookPrivateTargets: true }, t.clock.now()));
    const now = new Date();
    seatLicense = await catalog.insertLicense(
      t.db,
      {
        orderId: w.orderA,
        productId: w.userProduct,
        policyId: w.userPolicy,
        licenseKey: null,
        entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, maxActivations: 2 },
        startDate: now,
      },
      now,
    );
  });

  after(async () => {
    await op?.close();
    await t?.close();
  });

  it('the vendor adds an OpenID provider in the console; its client secret is stored encrypted', async () => {
    const res = await sent(
      submitForm(admin, base(w.customer), `${base(w.customer)}/providers`, {
        kind: 'oidc',
        name: 'Globex Entra',
        enabled: 'on',
        groups_claim: 'groups',
        oidc_issuer: op.issuer,
        oidc_client_id: CLIENT_ID,
        oidc_client_secret: CLIENT_SECRET,
        oidc_scopes: 'openid email profile groups',
      }),
      303,
    );
    providerId = Number(/providers\/(\d+)$/.exec(res.headers.location!)![1]);
    const row = await t.db('identity_providers').where({ id: providerId }).first();
    assert.notEqual(row.oidc_client_secret, CLIENT_SECRET);
    assert.ok(!String(row.oidc_client_secret).includes(CLIENT_SECRET));
    assert.equal(dataDirSecretBox(t.dataDir).open(row.oidc_client_secret, `sso:${providerId}`), CLIENT_SECRET);
    const audit = await auditOf(t.db, 'identity_provider', providerId);
    assert.equal(audit[0]!.action, 'identity_provider.created');
    assert.ok(!JSON.stringify(audit).includes(CLIENT_SECRET));
    const page = await admin.get(res.headers.location!).expect(200);
    assert.ok(page.text.includes(`http://portico.test/sso/${providerId}/oidc/callback`));
    assert.ok(!page.text.includes(CLIENT_SECRET));
  });

  it('saving the provider with an empty secret keeps the stored one', async () => {
    const show = `${base(w.customer)}/providers/${providerId}`;
    const before = (await t.db('identity_providers').where({ id: providerId }).first()).oidc_client_secret;
    await sent(
      submitForm(admin, show, show, {
        name: 'Globex Entra ID',
        enabled: 'on',
        groups_claim: 'groups',
        oidc_issuer: op.issuer,
        oidc_client_id: CLIENT_ID,
        oidc_client_secret: '',
        oidc_scopes: 'openid email profile groups',
      }),
      303,
    );
    const row = await t.db('identity_providers').where({ id: providerId }).first();
    assert.equal(row.name, 'Globex Entra ID');
    assert.equal(row.oidc_client_secret, before);
    const updated = (await auditOf(t.db, 'identity_provider', providerId)).at(-1)!;
    assert.equal(updated.action, 'identity_provider.updated');
    assert.equal(updated.after.secretChanged, false);
  });

  it('refuses an issuer on a private address unless private targets are allowed, with the reason in the form', async () => {
    await inTransaction(t.db, (trx) => saveSettings(trx, { webhookPrivateTargets: false }, t.clock.now()));
    const res = await sent(
      submitForm(admin, base(w.customer), `${base(w.customer)}/providers`, {
        kind: 'oidc',
        name: 'Metadata thief',
        oidc_issuer: 'https://169.254.169.254/latest',
        oidc_client_id: 'x',
      }),
      422,
    );
    assert.match(res.text, /field-error/);
    await inTransaction(t.db, (trx) => saveSettings(trx, { webhookPrivateTargets: true }, t.clock.now()));
    assert.equal(await countRows(t.db, 'identity_providers', { name: 'Metadata thief' }), 0);
  });

  it('routes only confirmed domains: an unconfirmed one still gets the password form', async () => {
    const show = `${base(w.customer)}/providers/${providerId}`;
    await sent(submitForm(admin, show, `${show}/domains`, { domain: 'globex.test' }), 303);
    const anon = request.agent(t.app);
    const page = await anon.get('/login').expect(200);
    const unconfirmed = await anon
      .post('/login')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email: 'ann@globex.test', password: '' })
      .expect(422);
    assert.match(unconfirmed.text, /field-password/);
    const domain = await t.db('sso_domains').where({ domain: 'globex.test' }).first();
    await sent(submitForm(admin, show, `${show}/domains/${domain.id}/verify`, {}), 303);
    const routed = await anon
      .post('/login')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email: 'Ann@Globex.test', password: '' })
      .expect(303);
    assert.equal(routed.headers.location, `/login/sso/${providerId}?email=Ann%40Globex.test`);
    // The page between: its link leaves for the provider (a form's redirect may not: CSP form-action).
    const between = await anon.get(routed.headers.location!).expect(200);
    assert.ok(between.text.includes(`href="/sso/${providerId}/start?email=Ann%40Globex.test"`));
    assert.match(between.text, /<script src="\/static\/js\/sso.js" defer><\/script>/);
    // The e-mail step page does the same; any other address goes to the password form.
    const step = await anon.get('/login/sso').expect(200);
    const other = await anon
      .post('/login/sso')
      .type('form')
      .send({ _csrf: csrfFrom(step.text), email: 'bob@elsewhere.test' })
      .expect(303);
    assert.equal(other.headers.location, '/login?email=bob%40elsewhere.test');
  });

  it('maps groups: a role on an order and a seat on a user-based license', async () => {
    const show = `${base(w.customer)}/providers/${providerId}`;
    const manager = await t.db('roles').where({ builtin: 'manager' }).first();
    await sent(
      submitForm(admin, show, `${show}/mappings`, {
        group_name: 'portico-managers',
        kind: 'role',
        order_id: String(w.orderA),
        role_id: String(manager.id),
      }),
      303,
    );
    await sent(
      submitForm(admin, show, `${show}/mappings`, {
        group_name: 'analytics-users',
        kind: 'seat',
        license_id: String(seatLicense),
      }),
      303,
    );
    // Another customer's order cannot be named.
    const foreign = await sent(
      submitForm(admin, show, `${show}/mappings`, {
        group_name: 'x',
        kind: 'role',
        order_id: String(w.orderB),
        role_id: String(manager.id),
      }),
      422,
    );
    assert.match(foreign.text, /field-error/);
    assert.equal(await countRows(t.db, 'sso_mappings', { provider_id: providerId }), 2);
  });

  it('first login creates the manager just in time, with the mapped role, in a new session', async () => {
    op.people.set('mia@globex.test', { email: 'mia@globex.test', name: 'Mia Manager', groups: ['portico-managers'] });
    const agent = request.agent(t.app);
    const before = sidOf(await agent.get('/login').expect(200));
    const { res } = await ssoLogin('mia@globex.test', agent);
    assert.equal(res.status, 303, res.text);
    assert.equal(res.headers.location, '/portal');
    const after = sidOf(res);
    assert.ok(after && after !== before, 'the session id changes at login');
    const account = await accountOf('mia@globex.test');
    assert.equal(account.role, 'manager');
    assert.equal(account.name, 'Mia Manager');
    assert.equal(account.password_hash, null);
    const assignment = await t.db('manager_orders').where({ account_id: account.id, order_id: w.orderA }).first();
    assert.equal(Number(assignment.role_id), Number((await t.db('roles').where({ builtin: 'manager' }).first()).id));
    await agent.get(`/portal/orders/${w.orderA}`).expect(200);
    await agent.get(`/portal/orders/${w.orderB}`).expect(404);
    const actions = (await auditOf(t.db, 'account', account.id)).map((a) => a.action);
    assert.deepEqual(actions.slice(0, 3), ['sso.account_created', 'sso.role_granted', 'auth.login']);
    const login = (await auditOf(t.db, 'account', account.id)).find((a) => a.action === 'auth.login')!;
    assert.deepEqual(login.after, { via: 'oidc', providerId, groups: ['portico-managers'] });
  });

  it('the callback cannot be replayed: the state is spent', async () => {
    op.people.set('rex@globex.test', { email: 'rex@globex.test', groups: ['portico-managers'] });
    const { agent, res, callback } = await ssoLogin('rex@globex.test');
    assert.equal(res.status, 303);
    const again = await agent.get(callback.pathname + callback.search).expect(403);
    assert.match(again.text, /does not belong to this browser session/);
    // Another browser with the same code and state: no sign-in in progress there either.
    await request(t.app)
      .get(callback.pathname + callback.search)
      .expect(403);
    const refusals = await t.db('audit_events').where({ action: 'sso.login_refused' });
    assert.ok(refusals.filter((r) => JSON.parse(r.after_state).reason === 'state_mismatch').length >= 2);
  });

  it('a person removed from the group loses the role at the next login; hand-given roles stay', async () => {
    const mia = await accountOf('mia@globex.test');
    // A hand-given role on another order of the customer is not single sign-on's to take back.
    const extraOrder = await catalog.insertOrder(t.db, { orderRef: 'A-2', customerId: w.customer }, new Date());
    await catalog.assignManager(t.db, mia.id, extraOrder, new Date(), 'viewer');
    op.people.set('mia@globex.test', { email: 'mia@globex.test', groups: ['portico-managers', 'analytics-users'] });
    assert.equal((await ssoLogin('mia@globex.test')).res.status, 303);
    assert.equal(await countRows(t.db, 'manager_orders', { account_id: mia.id }), 2);
    op.people.set('mia@globex.test', { email: 'mia@globex.test', groups: [] });
    assert.equal((await ssoLogin('mia@globex.test')).res.status, 303);
    assert.equal(await countRows(t.db, 'manager_orders', { account_id: mia.id, order_id: w.orderA }), 0);
    assert.equal(await countRows(t.db, 'manager_orders', { account_id: mia.id, order_id: extraOrder }), 1);
    assert.ok((await auditOf(t.db, 'account', mia.id)).some((a) => a.action === 'sso.role_removed'));
  });

  it('seats up to the count; least recently used loses first when a newcomer arrives', async () => {
    for (const name of ['ula', 'uma', 'una'])
      op.people.set(`${name}@globex.test`, { email: `${name}@globex.test`, groups: ['analytics-users'] });
    assert.equal((await ssoLogin('ula@globex.test')).res.status, 303);
    t.clock.advance(60_000);
    assert.equal((await ssoLogin('uma@globex.test')).res.status, 303);
    t.clock.advance(60_000);
    const ula = await accountOf('ula@globex.test');
    const uma = await accountOf('uma@globex.test');
    assert.equal(ula.role, 'end_user');
    assert.equal(await countRows(t.db, 'license_user_assignments', { license_id: seatLicense }), 2);
    // Ula signs in again: her seat is now the more recently used one.
    assert.equal((await ssoLogin('ula@globex.test')).res.status, 303);
    t.clock.advance(60_000);
    assert.equal((await ssoLogin('una@globex.test')).res.status, 303);
    const una = await accountOf('una@globex.test');
    const holders = (await t.db('license_user_assignments').where({ license_id: seatLicense }).select('account_id'))
      .map((r) => Number(r.account_id))
      .sort();
    assert.deepEqual(holders, [ula.id, una.id].sort());
    const reclaimed = (await auditOf(t.db, 'license', seatLicense)).find((a) => a.action === 'sso.seat_reclaimed')!;
    assert.equal(reclaimed.after.accountId, uma.id);
    assert.equal(reclaimed.after.rule, 'least_recently_used');
  });

  it('freeze: when every seat is taken the newcomer waits, shown in the console and the portal', async () => {
    await sent(submitForm(admin, base(w.customer), `${base(w.customer)}/seat-rule`, { rule: 'freeze' }), 303);
    assert.equal((await auditOf(t.db, 'customer', w.customer)).at(-1)!.action, 'customer.seat_rule_changed');
    op.people.set('vic@globex.test', { email: 'vic@globex.test', groups: ['analytics-users'] });
    const { res, agent } = await ssoLogin('vic@globex.test');
    assert.equal(res.status, 303);
    const vic = await accountOf('vic@globex.test');
    assert.equal(await countRows(t.db, 'license_user_assignments', { license_id: seatLicense }), 2);
    assert.equal(await countRows(t.db, 'license_user_assignments', { account_id: vic.id }), 0);
    assert.equal(await countRows(t.db, 'sso_seat_waits', { account_id: vic.id }), 1);
    const waiting = (await auditOf(t.db, 'license', seatLicense)).find((a) => a.action === 'sso.seat_waiting')!;
    assert.equal(waiting.after.accountId, vic.id);
    await agent.get('/portal').expect(200);
    const consolePage = await admin.get(base(w.customer)).expect(200);
    assert.match(consolePage.text, /1 person waits for a seat/);
    assert.ok(consolePage.text.includes('vic@globex.test'));
    const portalManager = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    const portalPage = await portalManager.get(`/portal/customers/${w.customer}/sso`).expect(200);
    assert.ok(portalPage.text.includes('vic@globex.test'));
    assert.match(portalPage.text, /New assignments freeze until an admin picks/);
    // An admin frees a seat (unassigning a user): Vic gets it at the next login.
    const una = await accountOf('una@globex.test');
    const license = `/admin/licenses/${seatLicense}`;
    await sent(submitForm(admin, license, `${license}/users/${una.id}/delete`, { confirmed: '1' }), 303);
    assert.equal(await countRows(t.db, 'license_user_assignments', { license_id: seatLicense, account_id: una.id }), 0);
    assert.equal((await ssoLogin('vic@globex.test')).res.status, 303);
    assert.equal(await countRows(t.db, 'license_user_assignments', { account_id: vic.id, license_id: seatLicense }), 1);
    assert.equal(await countRows(t.db, 'sso_seat_waits', { account_id: vic.id }), 0);
  });

  it('a user removed from the group loses the seat at the next login', async () => {
    const ula = await accountOf('ula@globex.test');
    op.people.set('ula@globex.test', { email: 'ula@globex.test', groups: [] });
    assert.equal((await ssoLogin('ula@globex.test')).res.status, 303);
    assert.equal(await countRows(t.db, 'license_user_assignments', { account_id: ula.id }), 0);
    assert.ok(
      (await auditOf(t.db, 'license', seatLicense)).some(
        (a) => a.action === 'sso.seat_removed' && a.after.accountId === ula.id,
      ),
    );
  });

  it('refuses an address of a domain not confirmed for this provider', async () => {
    op.people.set('eve@initech.test', { email: 'eve@initech.test', groups: ['portico-managers'] });
    const { res } = await ssoLogin('eve@initech.test');
    assert.equal(res.status, 403);
    assert.match(res.text, /may not sign in this e-mail address/);
    assert.equal(await accountOf('eve@initech.test'), undefined);
    const refusal = await t.db('audit_events').where({ action: 'sso.login_refused' }).orderBy('id', 'desc').first();
    assert.equal(JSON.parse(refusal.after_state).reason, 'domain_not_verified');
  });

  it("refuses a first login whose groups map to nothing, and a vendor admin's address", async () => {
    op.people.set('nobody@globex.test', { email: 'nobody@globex.test', groups: ['unknown'] });
    assert.equal((await ssoLogin('nobody@globex.test')).res.status, 403);
    assert.equal(await accountOf('nobody@globex.test'), undefined);
    await t.db('accounts').insert({
      email: 'boss@globex.test',
      name: 'Boss',
      role: 'admin',
      language: 'en',
      password_hash: null,
      must_change_password: false,
      disabled: false,
      created_at: new Date(),
      updated_at: new Date(),
    });
    op.people.set('boss@globex.test', { email: 'boss@globex.test', groups: ['portico-managers'] });
    const { res } = await ssoLogin('boss@globex.test');
    assert.equal(res.status, 403);
    const reasons = (await t.db('audit_events').where({ action: 'sso.login_refused' })).map(
      (r) => JSON.parse(r.after_state).reason,
    );
    assert.ok(reasons.includes('no_mapping'));
    const noMapping = (await t.db('audit_events').where({ action: 'sso.login_refused' })).find(
      (r) => JSON.parse(r.after_state).reason === 'no_mapping',
    );
    assert.equal(JSON.parse(noMapping.after_state).detail, 'groups: unknown', 'the groups the provider sent, to map');
    assert.ok(reasons.includes('admin_account'));
  });

  it('password login off for the domain: the password form refuses it (admins keep theirs)', async () => {
    const show = `${base(w.customer)}/providers/${providerId}`;
    const domain = await t.db('sso_domains').where({ domain: 'globex.test' }).first();
    await sent(submitForm(admin, show, `${show}/domains/${domain.id}/password_off`, {}), 303);
    const anon = request.agent(t.app);
    const page = await anon.get('/login').expect(200);
    const res = await anon
      .post('/login')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email: 'mia@globex.test', password: 'whatever password 123' })
      .expect(401);
    assert.match(res.text, /signs in through single sign-on/);
    assert.equal(await countRows(t.db, 'audit_events', { action: 'sso.password_login_refused' }), 1);
    await sent(submitForm(admin, show, `${show}/domains/${domain.id}/password_on`, {}), 303);
  });

  it("logout ends the Portico session and offers the provider's end-session URL", async () => {
    op.people.set('mia@globex.test', { email: 'mia@globex.test', groups: ['portico-managers'] });
    const { agent, res } = await ssoLogin('mia@globex.test');
    assert.equal(res.status, 303);
    const home = await agent.get('/portal').expect(200);
    await agent
      .post('/logout')
      .type('form')
      .send({ _csrf: csrfFrom(home.text) })
      .expect(303);
    const login = await agent.get('/login').expect(200);
    const link = /href="([^"]+\/session\/end[^"]*)"/.exec(login.text)?.[1];
    assert.ok(link?.startsWith(op.issuer), 'the end-session link of the provider');
    assert.match(link!, /id_token_hint=/);
    await agent.get('/portal').expect(303);
  });

  it('a manager outside the customer gets 404 on its provider pages, one without edit_customer 403; one allowed sees them', async () => {
    const outside = await loginAgent(t.app, w.managerB.email, w.managerB.password);
    await outside.get(`/portal/customers/${w.customer}/sso`).expect(404);
    await outside.get(`/portal/customers/${w.customer}/sso/providers/${providerId}`).expect(404);
    const operator = await loginAgent(t.app, w.operator.email, w.operator.password);
    await operator.get(`/portal/customers/${w.customer}/sso`).expect(403);
    const allowed = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    const page = await allowed.get(`/portal/customers/${w.customer}/sso/providers/${providerId}`).expect(200);
    // Confirming a domain is the vendor's act: not offered to a manager, and 404 if tried.
    assert.doesNotMatch(page.text, /\/verify"/);
    const domain = await t.db('sso_domains').where({ domain: 'globex.test' }).first();
    await allowed
      .post(`/portal/customers/${w.customer}/sso/providers/${providerId}/domains/${domain.id}/unverify`)
      .type('form')
      .send({ _csrf: csrfFrom(page.text) })
      .expect(404);
    // A provider of another customer through this customer's URL: 404.
    const initech = (await t.db('orders').where({ id: w.orderB }).first()).customer_id;
    const [otherId] = await t.db('identity_providers').insert({
      customer_id: initech,
      kind: 'oidc',
      name: 'Initech',
      enabled: false,
      groups_claim: 'groups',
      created_at: new Date(),
      updated_at: new Date(),
    });
    await allowed.get(`/portal/customers/${w.customer}/sso/providers/${otherId}`).expect(404);
    await admin.get(`/admin/customers/${w.customer}/sso/providers/${otherId}`).expect(404);
  });

  it('a manager maps groups only to roles no stronger than their own (no escalation through the provider)', async () => {
    const now = new Date();
    const roleId = await roles.insert(
      t.db,
      'Customer admin',
      ['edit_customer', 'manage_managers', 'manage_license_users'],
      now,
    );
    const lead = await createAccount(t.db, { role: 'manager' });
    await managers.assignOrder(t.db, lead.id, w.orderA, roleId, null, now);
    const agent = await loginAgent(t.app, lead.email, lead.password);
    const show = `/portal/customers/${w.customer}/sso/providers/${providerId}`;
    const managerRole = await t.db('roles').where({ builtin: 'manager' }).first();
    const refused = await sent(
      submitForm(agent, show, `${show}/mappings`, {
        group_name: 'sneaky',
        kind: 'role',
        order_id: String(w.orderA),
        role_id: String(managerRole.id),
      }),
      422,
    );
    assert.match(refused.text, /no stronger than your own/);
    await sent(
      submitForm(agent, show, `${show}/mappings`, {
        group_name: 'helpers',
        kind: 'role',
        order_id: String(w.orderA),
        role_id: String(roleId),
      }),
      303,
    );
    assert.equal(await countRows(t.db, 'sso_mappings', { group_name: 'sneaky' }), 0);
    assert.equal(await countRows(t.db, 'sso_mappings', { group_name: 'helpers' }), 1);
  });

  it('an expired ID token is refused (the app clock is past its expiry plus the skew)', async () => {
    op.people.set('mia@globex.test', { email: 'mia@globex.test', groups: ['portico-managers'] });
    const agent = request.agent(t.app);
    const start = await agent.get(`/sso/${providerId}/start`).expect(303);
    const callback = await signInAtOp(start.headers.location!, 'mia@globex.test');
    t.clock.advance(2 * 3_600_000);
    try {
      const res = await agent.get(callback.pathname + callback.search).expect(403);
      assert.match(res.text, /could not be verified/);
      const refusal = await t.db('audit_events').where({ action: 'sso.login_refused' }).orderBy('id', 'desc').first();
      assert.equal(JSON.parse(refusal.after_state).reason, 'invalid_response');
      assert.match(JSON.parse(refusal.after_state).detail, /exp/);
    } finally {
      t.clock.advance(-2 * 3_600_000);
    }
  });

  it('(control) an ID token re-signed unchanged with the provider key is accepted: the refusals below are the claims', async () => {
    op.people.set('mia@globex.test', { email: 'mia@globex.test', groups: ['portico-managers'] });
    const agent = request.agent(t.app);
    const start = await agent.get(`/sso/${providerId}/start`).expect(303);
    const callback = await signInAtOp(start.headers.location!, 'mia@globex.test');
    op.tamperIdToken = (c) => ({ ...c });
    try {
      await agent.get(callback.pathname + callback.search).expect(303);
    } finally {
      op.tamperIdToken = undefined;
    }
  });

  for (const [what, tamper, detail] of [
    ['another audience', (c: Record<string, unknown>) => ({ ...c, aud: 'another-client' }), /aud/],
    ['another issuer', (c: Record<string, unknown>) => ({ ...c, iss: 'https://idp.example.net' }), /iss/],
    ['another nonce', (c: Record<string, unknown>) => ({ ...c, nonce: 'a-nonce-of-another-login' }), /nonce/],
  ] as const) {
    it(`an ID token for ${what}, signed by the provider's own key, is refused and audited`, async () => {
      op.people.set('mia@globex.test', { email: 'mia@globex.test', groups: ['portico-managers'] });
      const agent = request.agent(t.app);
      const start = await agent.get(`/sso/${providerId}/start`).expect(303);
      const callback = await signInAtOp(start.headers.location!, 'mia@globex.test');
      op.tamperIdToken = tamper;
      try {
        const before = await countRows(t.db, 'audit_events', { action: 'sso.login' });
        const res = await agent.get(callback.pathname + callback.search).expect(403);
        assert.match(res.text, /could not be verified/);
        const refusal = await t.db('audit_events').where({ action: 'sso.login_refused' }).orderBy('id', 'desc').first();
        assert.equal(JSON.parse(refusal.after_state).reason, 'invalid_response');
        assert.match(JSON.parse(refusal.after_state).detail, detail);
        assert.equal(await countRows(t.db, 'audit_events', { action: 'sso.login' }), before, 'nobody signed in');
      } finally {
        op.tamperIdToken = undefined;
      }
    });
  }

  it('a disabled provider sends nobody there and accepts no answer', async () => {
    const agent = request.agent(t.app);
    const start = await agent.get(`/sso/${providerId}/start`).expect(303);
    const callback = await signInAtOp(start.headers.location!, 'mia@globex.test');
    await t.db('identity_providers').where({ id: providerId }).update({ enabled: false });
    const res = await agent.get(callback.pathname + callback.search).expect(403);
    assert.match(res.text, /not available/);
    await request(t.app).get(`/sso/${providerId}/start`).expect(403);
    // The login form no longer routes the domain: the password form answers.
    const anon = request.agent(t.app);
    const page = await anon.get('/login').expect(200);
    await anon
      .post('/login')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email: 'mia@globex.test', password: '' })
      .expect(422);
    const reasons = (await t.db('audit_events').where({ action: 'sso.login_refused' })).map(
      (r) => JSON.parse(r.after_state).reason,
    );
    assert.ok(reasons.filter((r) => r === 'disabled').length >= 2);
  });
});
