import assert from 'node:assert/strict';
import request from 'supertest';
import {
  adminAgent,
  auditOf,
  buildTestApp,
  countRows,
  csrfFrom,
  loginAgent,
  submitForm,
  type TestApp,
} from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import { inTransaction } from '../../app/lib/transaction.ts';
import { saveSettings } from '../../app/models/settings.ts';
import { MAX_ENDPOINTS_PER_OWNER } from '../../app/services/webhooks.ts';

/** The webhook pages of the console (the vendor's endpoints) and the User Portal (a manager's own). */
describe('webhook endpoints: console and User Portal pages', () => {
  let t: TestApp;
  let w: Awaited<ReturnType<typeof portalWorld>>;
  let admin: Awaited<ReturnType<typeof adminAgent>>['agent'];
  let managerAll: Awaited<ReturnType<typeof loginAgent>>;
  let managerB: Awaited<ReturnType<typeof loginAgent>>;
  let managerNone: Awaited<ReturnType<typeof loginAgent>>;
  const publicUrl = 'https://93.184.216.34/hooks/portico';

  const allowPrivate = (on: boolean) =>
    inTransaction(t.db, (trx) => saveSettings(trx, { webhookPrivateTargets: on }, t.clock.now()));
  const secretOf = (html: string) => /value="(whsec_[A-Za-z0-9+/=]+)"/.exec(html)?.[1];

  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    admin = (await adminAgent(t)).agent;
    managerAll = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    managerB = await loginAgent(t.app, w.managerB.email, w.managerB.password);
    managerNone = await loginAgent(t.app, w.managerNone.email, w.managerNone.password);
  });
  after(async () => t.close());

  it('anonymous visitors are sent to the login page', async () => {
    for (const url of ['/admin/webhooks', '/admin/webhooks/new', '/portal/webhooks', '/portal/webhooks/1'])
      await request(t.app).get(url).expect(303).expect('location', '/login');
  });

  it('the vendor registers an endpoint: the secret is shown once, sealed at rest, and the change audited', async () => {
    const created = await submitForm(admin, '/admin/webhooks/new', '/admin/webhooks', {
      url: publicUrl,
      description: 'CRM',
      events: 'license.issued',
    });
    assert.equal(created.status, 200);
    assert.equal(created.headers['cache-control'], 'no-store');
    const secret = secretOf(created.text);
    assert.ok(secret, 'the secret is on the page');
    assert.ok(Buffer.from(secret!.slice('whsec_'.length), 'base64').length >= 24);
    const row = await t.db('webhook_endpoints').first();
    assert.equal(row.owner_account_id, null);
    assert.ok(!String(row.secret_sealed).includes(secret!.slice(6, 30)), 'never stored in clear');
    const events = await auditOf(t.db, 'webhook_endpoint', row.id);
    assert.deepEqual(
      events.map((e) => e.action),
      ['webhook_endpoint.created'],
    );
    assert.ok(!JSON.stringify(events).includes(secret!.slice(6, 30)), 'nor in the audit log');
    const list = await admin.get('/admin/webhooks').expect(200);
    assert.match(list.text, /93\.184\.216\.34/);
    const page = await admin.get(`/admin/webhooks/${row.id}`).expect(200);
    assert.ok(!page.text.includes(secret!), 'the show page does not repeat the secret');
  });

  it('refuses a bad URL and an address the operator has not allowed (422 with a clear message)', async () => {
    const cases: [string, RegExp][] = [
      ['ftp://example.com/x', /Enter an http:\/\/ or https:\/\/ URL/],
      ['https://user:pw@93.184.216.34/', /Enter an http:\/\/ or https:\/\/ URL/],
      ['http://169.254.169.254/latest/meta-data', /This address is not allowed/],
      ['http://[fd00:ec2::254]/', /This address is not allowed/],
      ['http://127.0.0.1:4200/hook', /This address is not allowed/],
      ['http://10.1.2.3/hook', /This address is not allowed/],
      ['http://0.0.0.0/', /This address is not allowed/],
      ['http://224.0.0.1/', /This address is not allowed/],
    ];
    const before = await countRows(t.db, 'webhook_endpoints');
    for (const [url, message] of cases) {
      const res = await submitForm(admin, '/admin/webhooks/new', '/admin/webhooks', { url, events: 'order.created' });
      assert.equal(res.status, 422, url);
      assert.match(res.text, message, url);
      assert.match(res.text, /value="[^"]*"/);
    }
    const noEvents = await submitForm(admin, '/admin/webhooks/new', '/admin/webhooks', { url: publicUrl });
    assert.equal(noEvents.status, 422);
    assert.match(noEvents.text, /Choose at least one event/);
    assert.equal(await countRows(t.db, 'webhook_endpoints'), before);

    // Private ranges when the operator allows them; link-local and metadata addresses never.
    await allowPrivate(true);
    try {
      const intranet = await submitForm(admin, '/admin/webhooks/new', '/admin/webhooks', {
        url: 'http://10.1.2.3/hook',
        events: 'order.created',
      });
      assert.equal(intranet.status, 200);
      for (const url of ['http://169.254.169.254/', 'http://100.100.100.200/', 'http://[fe80::1]/']) {
        const res = await submitForm(admin, '/admin/webhooks/new', '/admin/webhooks', { url, events: 'order.created' });
        assert.equal(res.status, 422, url);
      }
    } finally {
      await allowPrivate(false);
    }
  });

  it('a request without the CSRF token is refused (403) and changes nothing', async () => {
    const before = await countRows(t.db, 'webhook_endpoints');
    await admin.post('/admin/webhooks').type('form').send({ url: publicUrl, events: 'order.created' }).expect(403);
    await managerAll
      .post('/portal/webhooks')
      .type('form')
      .send({ url: publicUrl, events: 'order.created' })
      .expect(403);
    assert.equal(await countRows(t.db, 'webhook_endpoints'), before);
  });

  it('a manager without manage_api_clients, an end user and an admin in the portal are refused (403) or find no webhook pages (404)', async () => {
    await managerNone.get('/portal/webhooks').expect(403);
    await managerNone.get('/portal/webhooks/new').expect(403);
    const page = await managerNone.get('/portal').expect(200);
    await managerNone
      .post('/portal/webhooks')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), url: publicUrl, events: 'order.created' })
      .expect(403);
    const endUser = await loginAgent(t.app, w.endUser.email, w.endUser.password);
    await endUser.get('/portal/webhooks').expect(404);
    await admin.get('/portal/webhooks').expect(404);
  });

  it('the portal dashboard links to the webhook pages for managers with the permission only', async () => {
    assert.match((await managerAll.get('/portal').expect(200)).text, /href="\/portal\/webhooks"/);
    assert.doesNotMatch((await managerNone.get('/portal').expect(200)).text, /href="\/portal\/webhooks"/);
  });

  it("a manager manages their own endpoints; another manager's and the vendor's are not found (404)", async () => {
    const created = await submitForm(managerAll, '/portal/webhooks/new', '/portal/webhooks', {
      url: publicUrl,
      events: ['license.disabled', 'device.reset'] as unknown as string,
    });
    assert.equal(created.status, 200);
    const mine = await t.db('webhook_endpoints').where({ owner_account_id: w.managerAll.id }).first();
    assert.deepEqual(JSON.parse(mine.event_types), ['license.disabled', 'device.reset']);
    const vendors = await t.db('webhook_endpoints').whereNull('owner_account_id').first();

    await managerAll.get(`/portal/webhooks/${mine.id}`).expect(200);
    await managerB.get(`/portal/webhooks/${mine.id}`).expect(404);
    await managerB.get(`/portal/webhooks/${mine.id}/edit`).expect(404);
    await managerAll.get(`/portal/webhooks/${vendors.id}`).expect(404);
    await admin.get(`/admin/webhooks/${mine.id}`).expect(404);
    // The console lists the managers' endpoints, read-only (no link to a page of its own).
    const consoleList = await admin.get('/admin/webhooks').expect(200);
    assert.match(consoleList.text, new RegExp(w.managerAll.email.replace(/[.+]/g, '\\$&')));
    assert.ok(!consoleList.text.includes(`/admin/webhooks/${mine.id}"`));
    const page = await managerB.get('/portal/webhooks').expect(200);
    assert.ok(!page.text.includes(`/portal/webhooks/${mine.id}`));
    for (const action of ['', '/rotate', '/disable', '/test', '/delete']) {
      await managerB
        .post(`/portal/webhooks/${mine.id}${action}`)
        .type('form')
        .send({ _csrf: csrfFrom(page.text), url: publicUrl, events: 'order.created', confirmed: '1' })
        .expect(404);
    }
    assert.equal(await countRows(t.db, 'webhook_endpoints', { id: mine.id }), 1);
  });

  it('edit, disable, enable, rotate, send a test event and delete (with its confirmation), each audited', async () => {
    const e = await t.db('webhook_endpoints').where({ owner_account_id: w.managerAll.id }).first();
    const base = `/portal/webhooks/${e.id}`;
    const edited = await submitForm(managerAll, `${base}/edit`, base, {
      url: `${publicUrl}/v2`,
      description: 'ERP',
      events: 'order.created',
    });
    assert.equal(edited.status, 303);
    assert.equal(edited.headers.location, base);
    const bad = await submitForm(managerAll, `${base}/edit`, base, {
      url: 'http://169.254.169.254/',
      events: 'order.created',
    });
    assert.equal(bad.status, 422);
    assert.equal((await t.db('webhook_endpoints').where({ id: e.id }).first()).url, `${publicUrl}/v2`);

    assert.equal((await submitForm(managerAll, base, `${base}/disable`, {})).status, 303);
    assert.equal((await t.db('webhook_endpoints').where({ id: e.id }).first()).disabled_reason, 'manual');
    assert.equal((await submitForm(managerAll, base, `${base}/enable`, {})).status, 303);

    const sealedBefore = (await t.db('webhook_endpoints').where({ id: e.id }).first()).secret_sealed;
    const rotated = await submitForm(managerAll, base, `${base}/rotate`, {});
    assert.equal(rotated.status, 200);
    assert.ok(secretOf(rotated.text));
    const afterRotation = await t.db('webhook_endpoints').where({ id: e.id }).first();
    assert.equal(afterRotation.previous_secret_sealed, sealedBefore);
    assert.match((await managerAll.get(base).expect(200)).text, /still signs until/);

    assert.equal((await submitForm(managerAll, base, `${base}/test`, {})).status, 303);
    assert.equal(await countRows(t.db, 'webhook_deliveries', { endpoint_id: e.id }), 1);
    assert.equal(await countRows(t.db, 'jobs', { kind: 'webhook.deliver' }), 1);

    // Delete asks first: without confirmed=1 the answer is the question, and nothing is deleted.
    const asked = await submitForm(managerAll, base, `${base}/delete`, {});
    assert.equal(asked.status, 200);
    assert.match(asked.text, /name="confirmed" value="1"/);
    assert.equal(await countRows(t.db, 'webhook_endpoints', { id: e.id }), 1);
    const deleted = await submitForm(managerAll, base, `${base}/delete`, { confirmed: '1' });
    assert.equal(deleted.status, 303);
    assert.equal(await countRows(t.db, 'webhook_endpoints', { id: e.id }), 0);

    assert.deepEqual(
      (await auditOf(t.db, 'webhook_endpoint', e.id)).map((a) => a.action),
      [
        'webhook_endpoint.created',
        'webhook_endpoint.updated',
        'webhook_endpoint.disabled',
        'webhook_endpoint.enabled',
        'webhook_endpoint.secret_rotated',
        'webhook_endpoint.test_sent',
        'webhook_endpoint.deleted',
      ],
    );
  });

  it('one owner has at most MAX_ENDPOINTS_PER_OWNER endpoints: an event cannot fan out without end', async () => {
    const mine = await countRows(t.db, 'webhook_endpoints', { owner_account_id: w.managerB.id });
    for (let i = mine; i < MAX_ENDPOINTS_PER_OWNER; i++) {
      const res = await submitForm(managerB, '/portal/webhooks/new', '/portal/webhooks', {
        url: `${publicUrl}/${i}`,
        events: 'order.created',
      });
      assert.equal(res.status, 200);
    }
    const refused = await submitForm(managerB, '/portal/webhooks/new', '/portal/webhooks', {
      url: `${publicUrl}/one-more`,
      events: 'order.created',
    });
    assert.equal(refused.status, 422);
    assert.match(refused.text, new RegExp(`You have ${MAX_ENDPOINTS_PER_OWNER} webhook endpoints`));
    assert.equal(
      await countRows(t.db, 'webhook_endpoints', { owner_account_id: w.managerB.id }),
      MAX_ENDPOINTS_PER_OWNER,
    );
    // Another owner's count is their own.
    const vendor = await submitForm(admin, '/admin/webhooks/new', '/admin/webhooks', {
      url: `${publicUrl}/vendor`,
      events: 'order.created',
    });
    assert.equal(vendor.status, 200);
  });

  it('the private-ranges setting is on the settings page, off by default', async () => {
    const page = await admin.get('/admin/settings').expect(200);
    assert.match(page.text, /name="webhook_private_targets"(?! checked)/);
  });
});
