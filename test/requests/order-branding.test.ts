import assert from 'node:assert/strict';
import * as brandings from '../../app/models/brandings.ts';
import { adminAgent, auditOf, buildTestApp, countRows, csrfFrom, loginAgent, type TestApp } from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import { api, clientToken } from '../helpers/manage-api.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;

/**
 * The order's branding (docs/console.md, Orders): the console's select writes orders.branding_id; an
 * order a manager creates in the User Portal on a host of a branding records that branding. Real
 * HTTP, real database (SQLite, or MariaDB/MySQL with DATABASE_URL).
 */
describe('The order’s branding', function () {
  this.timeout(60_000);
  let t: TestApp;
  let w: World;
  let admin: Awaited<ReturnType<typeof adminAgent>>['agent'];
  let northwind: number;
  let southwind: number;
  const USERS = 'users.northwind.test';
  const brandingOf = async (orderId: number) =>
    ((await t.db('orders').where({ id: orderId }).first('branding_id')).branding_id as number | null) ?? null;

  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    admin = (await adminAgent(t)).agent;
    const now = new Date();
    const fields = { primaryColor: '#123456', accentColor: '#abcdef', defaultLanguage: 'en' };
    northwind = await brandings.insert(t.db, { name: 'northwind', displayName: 'Northwind Licensing', ...fields }, now);
    southwind = await brandings.insert(t.db, { name: 'southwind', displayName: 'Southwind Keys', ...fields }, now);
    await brandings.insertHost(t.db, northwind, USERS, 'portal', now);
  });
  after(async () => t.close());

  it('the console’s new-order form offers the brandings (none = the default) and records the choice, audited', async () => {
    const page = await admin.get(`/admin/customers/${w.customer}/orders/new`).expect(200);
    assert.match(page.text, /<label for="field-branding_id">Branding<\/label>/);
    assert.match(page.text, /<option value="">The installation&#39;s default<\/option>/);
    assert.match(page.text, new RegExp(`<option value="${northwind}">Northwind Licensing \\(northwind\\)</option>`));
    const created = await admin
      .post(`/admin/customers/${w.customer}/orders`)
      .type('form')
      .send({ _csrf: csrfFrom(page.text), order_ref: 'BR-1', branding_id: String(northwind) })
      .expect(303);
    const orderId = Number(created.headers.location!.split('/').pop());
    assert.equal(await brandingOf(orderId), northwind);
    const [event] = await auditOf(t.db, 'order', orderId);
    assert.equal(event!.action, 'order.created');
    assert.equal(event!.after.brandingId, northwind);
    const show = await admin.get(`/admin/orders/${orderId}`).expect(200);
    assert.match(show.text, new RegExp(`<a href="/admin/brandings/${northwind}">Northwind Licensing</a>`));
  });

  it('the edit form shows the current branding, changes it (audited before/after) and back to the default', async () => {
    const orderId = w.orderB;
    const edit = await admin.get(`/admin/orders/${orderId}/edit`).expect(200);
    assert.match(edit.text, /<option value="" selected>|<option value="">/);
    const save = (branding: string, html: string) =>
      admin
        .post(`/admin/orders/${orderId}`)
        .type('form')
        .send({ _csrf: csrfFrom(html), order_ref: 'B-1', branding_id: branding })
        .expect(303);
    await save(String(southwind), edit.text);
    assert.equal(await brandingOf(orderId), southwind);
    const again = await admin.get(`/admin/orders/${orderId}/edit`).expect(200);
    assert.match(again.text, new RegExp(`<option value="${southwind}" selected>`));
    await save('', again.text);
    assert.equal(await brandingOf(orderId), null);
    const events = (await auditOf(t.db, 'order', orderId)).filter((e) => e.action === 'order.updated');
    assert.deepEqual(
      events.map((e) => [e.before.brandingId, e.after.brandingId]),
      [
        [null, southwind],
        [southwind, null],
      ],
    );
    const show = await admin.get(`/admin/orders/${orderId}`).expect(200);
    assert.match(show.text, /<dt>Branding<\/dt><dd>The installation&#39;s default<\/dd>/);
  });

  it('a branding id that does not exist, or is not a number, is a field error and changes nothing', async () => {
    const edit = await admin.get(`/admin/orders/${w.orderA}/edit`).expect(200);
    for (const bad of ['999999', 'x']) {
      const res = await admin
        .post(`/admin/orders/${w.orderA}`)
        .type('form')
        .send({ _csrf: csrfFrom(edit.text), order_ref: 'A-1', branding_id: bad })
        .expect(422);
      assert.match(res.text, /field-error/);
    }
    assert.equal(await brandingOf(w.orderA), null);
  });

  it('only admins: a manager cannot reach the console’s order form', async () => {
    const manager = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    const res = await manager.get(`/admin/orders/${w.orderA}/edit`);
    assert.ok(res.status === 403 || res.status === 404, String(res.status));
    const post = await manager
      .post(`/admin/orders/${w.orderA}`)
      .type('form')
      .send({
        _csrf: csrfFrom((await manager.get('/account').expect(200)).text),
        order_ref: 'A-1',
        branding_id: String(southwind),
      });
    assert.ok(post.status === 403 || post.status === 404, String(post.status));
    assert.equal(await brandingOf(w.orderA), null);
  });

  it('an order a manager creates in the User Portal on a branding’s host records that branding; a posted branding_id is ignored', async () => {
    const onHost = await loginAgent(t.app, w.managerAll.email, w.managerAll.password, { Host: USERS });
    const form = await onHost.get('/orders/new').set('Host', USERS).expect(200);
    const made = await onHost
      .post('/orders')
      .set('Host', USERS)
      .type('form')
      .send({
        _csrf: csrfFrom(form.text),
        order_ref: 'PORTAL-BR-1',
        customer_choice: 'new',
        kind: 'company',
        name: 'Hooli',
        branding_id: String(southwind),
      });
    assert.equal(made.status, 303, made.text);
    const orderId = Number(made.headers.location!.split('/').pop());
    assert.equal(await brandingOf(orderId), northwind);

    // On the installation's own host: the default.
    const plain = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    const form2 = await plain.get('/portal/orders/new').expect(200);
    const made2 = await plain
      .post('/portal/orders')
      .type('form')
      .send({
        _csrf: csrfFrom(form2.text),
        order_ref: 'PORTAL-BR-2',
        customer_choice: 'new',
        kind: 'company',
        name: 'Pied Piper',
      });
    assert.equal(made2.status, 303, made2.text);
    assert.equal(await brandingOf(Number(made2.headers.location!.split('/').pop())), null);
  });

  it('the Management API ignores it: a PATCH leaves the branding as it is, the JSON does not show it', async () => {
    await t.db('orders').where({ id: w.orderA }).update({ branding_id: northwind });
    const token = await clientToken(t);
    const res = await api(t, 'patch', `/orders/${w.orderA}`, token, {
      reference: 'changed',
      branding_id: southwind,
    }).expect(200);
    assert.equal(res.body.reference, 'changed');
    assert.equal(res.body.branding_id, undefined);
    assert.equal(await brandingOf(w.orderA), northwind);
  });

  it('deleting a branding sets its orders back to the default', async () => {
    const now = new Date();
    const gone = await brandings.insert(
      t.db,
      { name: 'gone', displayName: 'Gone', primaryColor: '#123456', accentColor: '#abcdef', defaultLanguage: 'en' },
      now,
    );
    await t.db('orders').where({ id: w.orderB }).update({ branding_id: gone });
    const page = await admin.get(`/admin/brandings/${gone}`).expect(200);
    await admin
      .post(`/admin/brandings/${gone}/delete`)
      .type('form')
      .send({ _csrf: csrfFrom(page.text), confirmed: '1' })
      .expect(303);
    assert.equal(await countRows(t.db, 'brandings', { id: gone }), 0);
    assert.equal(await brandingOf(w.orderB), null);
    await admin.get(`/admin/orders/${w.orderB}`).expect(200);
  });
});
