import assert from 'node:assert/strict';
import request from 'supertest';
import * as catalog from '../../app/models/catalog.ts';
import { createEndpoint, webhookDepsOf } from '../../app/services/webhooks.ts';
import { systemActor } from '../../app/services/context.ts';
import { RENEWAL_BUDGET } from '../../app/services/renewals.ts';
import { auditOf, buildTestApp, countRows, createAccount, csrfFrom, loginAgent, type TestApp } from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;
type Agent = Awaited<ReturnType<typeof loginAgent>>;

/**
 * Renewal requests (docs/user-portal.md, "Renewal requests"; docs/console.md): managers and end users
 * ask, the vendor handles them in the console and the requester is mailed. Real HTTP, real database
 * (SQLite, or MariaDB/MySQL with DATABASE_URL), no mocks.
 */
describe('Renewal requests', function () {
  this.timeout(120_000);
  let t: TestApp;
  let w: World;
  let all: Agent;
  let viewer: Agent;
  let other: Agent;
  let user: Agent;
  let admin: Agent;

  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    await t.db('settings').insert({ key: 'end_user_self_service', value: 'true', updated_at: new Date() });
    all = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    viewer = await loginAgent(t.app, w.managerNone.email, w.managerNone.password);
    other = await loginAgent(t.app, w.managerB.email, w.managerB.password);
    user = await loginAgent(t.app, w.endUser.email, w.endUser.password);
    admin = await loginAgent(t.app, w.admin.email, w.admin.password);
  });
  after(async () => t.close());
  afterEach(function () {
    if (this.currentTest?.state === 'failed')
      for (const l of t.logs.filter((e) => Number(e.level) >= 50).slice(-3))
        console.error((l.err as { stack?: string } | undefined)?.stack ?? l.msg);
  });
  // Each test starts with no requests and a fresh daily budget.
  beforeEach(async () => {
    await t.db('renewal_requests').delete();
    await t.db('rate_limits').delete();
  });

  const tokenOf = async (agent: Agent, url: string) => csrfFrom((await agent.get(url).expect(200)).text);
  const post = async (agent: Agent, formUrl: string, action: string, fields: Record<string, string>) =>
    agent
      .post(action)
      .type('form')
      .send({ _csrf: await tokenOf(agent, formUrl), ...fields });
  const orderForm = (id = w.orderA) => `/portal/orders/${id}/renewals/new`;
  const orderAction = (id = w.orderA) => `/portal/orders/${id}/renewals`;
  const licenseForm = (id = w.licenseA) => `/portal/licenses/${id}/renewals/new`;
  const licenseAction = (id = w.licenseA) => `/portal/licenses/${id}/renewals`;
  const myForm = (id = w.userLicense) => `/portal/my/licenses/${id}/renewals/new`;
  const myAction = (id = w.userLicense) => `/portal/my/licenses/${id}/renewals`;

  it('shows the buttons on the order, license and end-user pages', async () => {
    const order = await all.get(`/portal/orders/${w.orderA}`).expect(200);
    assert.ok(order.text.includes(`href="/portal/orders/${w.orderA}/renewals/new?kind=renewal"`));
    assert.ok(order.text.includes(`href="/portal/orders/${w.orderA}/renewals/new?kind=more_seats"`));
    const license = await viewer.get(`/portal/licenses/${w.licenseA}`).expect(200);
    assert.ok(license.text.includes(`href="/portal/licenses/${w.licenseA}/renewals/new?kind=renewal"`));
    const home = await user.get('/portal').expect(200);
    assert.ok(home.text.includes(`href="/portal/my/licenses/${w.userLicense}/renewals/new?kind=more_seats"`));
  });

  it('a manager (any role on the order) requests a renewal: row, audit, flash, listed on the order page', async () => {
    const res = await post(viewer, licenseForm(), licenseAction(), { kind: 'renewal', message: 'Budget approved' });
    assert.equal(res.status, 303);
    assert.equal(res.headers.location, `/portal/licenses/${w.licenseA}`);
    const rows = await t.db('renewal_requests').select();
    assert.equal(rows.length, 1);
    assert.equal(rows[0].kind, 'renewal');
    assert.equal(Number(rows[0].license_id), w.licenseA);
    assert.equal(Number(rows[0].order_id), w.orderA);
    assert.equal(Number(rows[0].requester_account_id), w.managerNone.id);
    assert.equal(rows[0].state, 'new');
    assert.equal(rows[0].message, 'Budget approved');
    const audit = await auditOf(t.db, 'renewal_request', rows[0].id);
    assert.deepEqual(
      audit.map((a) => [a.action, a.actor]),
      [['renewal.requested', w.managerNone.id]],
    );
    const page = await viewer.get(`/portal/licenses/${w.licenseA}`).expect(200);
    assert.match(page.text, /Your renewal request was sent to the vendor\./);
    const order = await all.get(`/portal/orders/${w.orderA}`).expect(200);
    assert.match(order.text, /<td[^>]*><span class="status status-inactive">New<\/span><\/td>/);
  });

  it('an end user requests more seats for their own license', async () => {
    const res = await post(user, myForm(), myAction(), { kind: 'more_seats', seats: '3', message: '' });
    assert.equal(res.status, 303);
    assert.equal(res.headers.location, '/portal');
    const row = await t.db('renewal_requests').first();
    assert.equal(row.kind, 'more_seats');
    assert.equal(Number(row.seats), 3);
    assert.equal(Number(row.license_id), w.userLicense);
    const home = await user.get('/portal').expect(200);
    assert.match(home.text, /Your request for more seats was sent to the vendor\./);
    assert.match(home.text, /3 seats/);
  });

  it('anonymous → login; outside the scope → 404; another user’s license → 404', async () => {
    const anon = request.agent(t.app);
    for (const url of [orderForm(), licenseForm(), myForm()]) {
      const res = await anon.get(url);
      assert.equal(res.status, 303);
      assert.equal(res.headers.location, '/login');
    }
    await other.get(orderForm()).expect(404);
    await other.get(licenseForm()).expect(404);
    const token = await tokenOf(other, orderForm(w.orderB));
    await other.post(orderAction()).type('form').send({ _csrf: token, kind: 'renewal' }).expect(404);
    await other.post(licenseAction()).type('form').send({ _csrf: token, kind: 'renewal' }).expect(404);
    // The end user is no user of license A, and managers have no end-user pages.
    await user.get(myForm(w.licenseA)).expect(404);
    const userToken = await tokenOf(user, myForm());
    await user.post(myAction(w.licenseA)).type('form').send({ _csrf: userToken, kind: 'renewal' }).expect(404);
    await user.get(orderForm()).expect(404);
    await all.get(myForm()).expect(404);
    assert.equal(await countRows(t.db, 'renewal_requests'), 0);
  });

  it('without a CSRF token → 403, nothing recorded', async () => {
    await all.post(orderAction()).type('form').send({ kind: 'renewal' }).expect(403);
    await user.post(myAction()).type('form').send({ kind: 'renewal' }).expect(403);
    assert.equal(await countRows(t.db, 'renewal_requests'), 0);
  });

  it('bad input → 422 with the field’s message, nothing recorded', async () => {
    const noSeats = await post(all, orderForm(), orderAction(), { kind: 'more_seats', seats: '' });
    assert.equal(noSeats.status, 422);
    assert.match(noSeats.text, /Say how many seats to add\./);
    const badKind = await post(all, orderForm(), orderAction(), { kind: 'free_licenses' });
    assert.equal(badKind.status, 422);
    const tooMany = await post(all, orderForm(), orderAction(), { kind: 'more_seats', seats: '1000000' });
    assert.equal(tooMany.status, 422);
    const longMessage = await post(all, orderForm(), orderAction(), { kind: 'renewal', message: 'x'.repeat(2001) });
    assert.equal(longMessage.status, 422);
    assert.ok(longMessage.text.includes('x'.repeat(2001)), 'the submitted message is shown again');
    assert.equal(await countRows(t.db, 'renewal_requests'), 0);
  });

  it('a second open request of the same kind is refused; another kind or a closed one is not', async () => {
    assert.equal((await post(all, orderForm(), orderAction(), { kind: 'renewal' })).status, 303);
    const again = await post(all, orderForm(), orderAction(), { kind: 'renewal' });
    assert.equal(again.status, 303);
    const page = await all.get(again.headers.location!).expect(200);
    assert.match(page.text, /A request of this kind is already open for it/);
    assert.equal(await countRows(t.db, 'renewal_requests'), 1);
    // Another kind, or the same kind for one license of the order, is another request.
    assert.equal((await post(all, orderForm(), orderAction(), { kind: 'more_seats', seats: '2' })).status, 303);
    assert.equal((await post(all, licenseForm(), licenseAction(), { kind: 'renewal' })).status, 303);
    assert.equal(await countRows(t.db, 'renewal_requests'), 3);
    // Once the vendor closed it, a new one may be made.
    await t
      .db('renewal_requests')
      .where({ kind: 'renewal', license_id: null })
      .update({ state: 'done', open_key: null });
    assert.equal((await post(all, orderForm(), orderAction(), { kind: 'renewal' })).status, 303);
    assert.equal(await countRows(t.db, 'renewal_requests'), 4);
  });

  it('two identical requests at the same instant make one row', async () => {
    const token = await tokenOf(all, licenseForm());
    const audited = await countRows(t.db, 'audit_events', { action: 'renewal.requested' });
    const send = () => all.post(licenseAction()).type('form').send({ _csrf: token, kind: 'more_seats', seats: '5' });
    const answers = await Promise.all([send(), send(), send()]);
    assert.deepEqual(
      answers.map((r) => r.status),
      [303, 303, 303],
    );
    assert.equal(await countRows(t.db, 'renewal_requests'), 1);
    assert.equal(await countRows(t.db, 'audit_events', { action: 'renewal.requested' }), audited + 1);
  });

  it(`the daily budget (${RENEWAL_BUDGET.limit}) is spent before the form is read: then 429`, async () => {
    const manager = await createAccount(t.db, { role: 'manager' });
    await catalog.assignManager(t.db, manager.id, w.orderA, new Date());
    const agent = await loginAgent(t.app, manager.email, manager.password);
    const token = await tokenOf(agent, orderForm());
    for (let i = 0; i < RENEWAL_BUDGET.limit; i++)
      await agent.post(orderAction()).type('form').send({ _csrf: token, kind: 'nonsense' }).expect(422);
    const limited = await agent.post(orderAction()).type('form').send({ _csrf: token, kind: 'renewal' });
    assert.equal(limited.status, 429);
    assert.equal(await countRows(t.db, 'renewal_requests'), 0);
    // Another account's budget is its own.
    await post(all, orderForm(), orderAction(), { kind: 'renewal' }).then((r) => assert.equal(r.status, 303));
  });

  it('publishes renewal.requested to a listening endpoint, in snake_case', async () => {
    const ctx = t.app.locals.ctx;
    const endpoint = await createEndpoint(webhookDepsOf(ctx), systemActor('test'), null, {
      url: 'https://93.184.216.34/hook',
      description: null,
      events: ['renewal.requested'],
    });
    try {
      await post(user, myForm(), myAction(), { kind: 'more_seats', seats: '2', message: 'Two interns' });
      const row = await t.db('renewal_requests').first();
      const events = await t.db('webhook_events').where({ type: 'renewal.requested' }).select();
      assert.equal(events.length, 1);
      assert.equal(Number(events[0].order_id), w.orderA);
      const payload = JSON.parse(events[0].payload);
      assert.deepEqual(payload.data, {
        renewal_request_id: Number(row.id),
        kind: 'more_seats',
        seats: 2,
        order_id: w.orderA,
        order_ref: 'A-1',
        license_id: w.userLicense,
        license_key: null,
        requester_email: w.endUser.email,
        message: 'Two interns',
      });
      assert.equal(
        await countRows(t.db, 'webhook_deliveries', { event_id: events[0].id, endpoint_id: endpoint.id }),
        1,
      );
    } finally {
      await t.db('webhook_endpoints').where({ id: endpoint.id }).delete();
    }
  });

  describe('in the console', () => {
    const create = async (agent: Agent, form: string, action: string, fields: Record<string, string>) => {
      assert.equal((await post(agent, form, action, fields)).status, 303);
      return Number((await t.db('renewal_requests').orderBy('id', 'desc').first('id')).id);
    };

    it('lists requests with counts per state and filters by state; not for managers', async () => {
      const first = await create(all, orderForm(), orderAction(), { kind: 'renewal' });
      await create(user, myForm(), myAction(), { kind: 'more_seats', seats: '4' });
      await t.db('renewal_requests').where({ id: first }).update({ state: 'in_progress' });
      const list = await admin.get('/admin/renewals').expect(200);
      assert.match(
        list.text,
        /<span class="stat-value">1<\/span> <a class="stat-label" href="\/admin\/renewals\?state=new">New/,
      );
      assert.match(
        list.text,
        /<span class="stat-value">1<\/span> <a class="stat-label" href="\/admin\/renewals\?state=in_progress">In progress/,
      );
      assert.ok(list.text.includes(w.endUser.email) && list.text.includes(w.managerAll.email));
      const filtered = await admin.get('/admin/renewals?state=in_progress').expect(200);
      assert.ok(filtered.text.includes(w.managerAll.email));
      assert.ok(!filtered.text.includes(w.endUser.email));
      assert.ok(list.text.includes('href="/admin/renewals"'), 'in the console navigation');
      await all.get('/admin/renewals').expect(404);
      await all.get(`/admin/renewals/${first}`).expect(404);
      await admin.get('/admin/renewals/999999').expect(404);
    });

    it('the request page links its order, license and requester', async () => {
      const id = await create(all, licenseForm(), licenseAction(), { kind: 'renewal', message: 'Please <renew>' });
      const page = await admin.get(`/admin/renewals/${id}`).expect(200);
      assert.ok(page.text.includes(`href="/admin/orders/${w.orderA}"`));
      assert.ok(page.text.includes(`href="/admin/licenses/${w.licenseA}"`));
      assert.ok(page.text.includes(`href="/admin/managers/${w.managerAll.id}"`));
      assert.ok(page.text.includes('Please &lt;renew&gt;'), 'the message is escaped');
    });

    it('changing the state mails the requester in their language and is audited', async () => {
      await t.db('accounts').where({ id: w.managerAll.id }).update({ language: 'de' });
      try {
        const id = await create(all, orderForm(), orderAction(), { kind: 'renewal' });
        const page = `/admin/renewals/${id}`;
        const token = csrfFrom((await admin.get(page).expect(200)).text);
        await admin.post(page).type('form').send({ state: 'done' }).expect(403);
        const bad = await admin.post(page).type('form').send({ _csrf: token, state: 'new' });
        assert.equal(bad.status, 422);
        const mailsBefore = await countRows(t.db, 'mail_outbox', { to_address: w.managerAll.email });
        const res = await admin
          .post(page)
          .type('form')
          .send({ _csrf: token, state: 'in_progress', note: 'Quote on its way' });
        assert.equal(res.status, 303);
        const flashed = await admin.get(res.headers.location!).expect(200);
        assert.ok(flashed.text.includes(`Request updated; the note to ${w.managerAll.email} is queued`));
        const row = await t.db('renewal_requests').where({ id }).first();
        assert.equal(row.state, 'in_progress');
        assert.equal(row.vendor_note, 'Quote on its way');
        assert.equal(Number(row.handled_by_account_id), w.admin.id);
        const mails = await t.db('mail_outbox').where({ to_address: w.managerAll.email }).orderBy('id').select();
        assert.equal(mails.length, mailsBefore + 1);
        const mail = mails.at(-1);
        assert.equal(mail.subject, 'Ihre Anfrage zur Bestellung A-1');
        assert.match(mail.text_body, /In Bearbeitung/);
        assert.match(mail.text_body, /Quote on its way/);
        assert.ok(mail.text_body.includes(`/portal/orders/${w.orderA}`));
        const audit = await auditOf(t.db, 'renewal_request', id);
        assert.deepEqual(
          audit.map((a) => a.action),
          ['renewal.requested', 'renewal.state_changed'],
        );
        assert.deepEqual(audit[1]!.before, { state: 'new' });
        assert.deepEqual(audit[1]!.after, { state: 'in_progress', note: 'Quote on its way' });
        // The manager sees the state and the note on the order page.
        const order = await all.get(`/portal/orders/${w.orderA}`).expect(200);
        assert.ok(order.text.includes('Quote on its way'));
        // Declined is final: no way back, and a new request may be made.
        await admin.post(page).type('form').send({ _csrf: token, state: 'declined' }).expect(303);
        const closed = await admin.post(page).type('form').send({ _csrf: token, state: 'done' });
        assert.equal(closed.status, 303);
        assert.equal((await t.db('renewal_requests').where({ id }).first()).state, 'declined');
        assert.equal((await post(all, orderForm(), orderAction(), { kind: 'renewal' })).status, 303);
        assert.equal(await countRows(t.db, 'renewal_requests', { state: 'new' }), 1);
      } finally {
        await t.db('accounts').where({ id: w.managerAll.id }).update({ language: 'en' });
      }
    });
  });
});
