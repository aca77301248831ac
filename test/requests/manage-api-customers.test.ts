import assert from 'node:assert/strict';
import { adminAgent, buildTestApp, countRows } from '../helpers/app.ts';
import * as catalog from '../../app/models/catalog.ts';
import { accessMatrix, api, manageApiWorld, type ManageApiWorld } from '../helpers/manage-api.ts';

describe('Management API: customers', () => {
  let world: ManageApiWorld;
  before(async () => {
    world = await manageApiWorld(await buildTestApp());
  });
  after(() => world.t.close());

  describe('access matrix', () => {
    let n = 0;
    accessMatrix(
      () => world,
      [
        { route: 'GET /customers', scope: 'customers:read', path: () => '/customers', managerOutside: 200 },
        {
          route: 'POST /customers',
          scope: 'customers:write',
          path: () => '/customers',
          body: () => ({ kind: 'company', name: `Matrix ${++n}` }),
          managerInside: 404,
          vendor: 201,
        },
        { route: 'GET /customers/:id', scope: 'customers:read', path: (w) => `/customers/${w.customer}` },
        {
          route: 'PATCH /customers/:id',
          scope: 'customers:write',
          path: (w) => `/customers/${w.customer}`,
          body: (_w, who) => ({ phone: `+49 ${who}` }),
        },
      ],
    );
  });

  it('lists only the customers of a manager’s orders; the vendor sees all', async () => {
    const { t, w, tokens } = world;
    const mine = await api(t, 'get', '/customers?limit=100', tokens.managerInside).expect(200);
    assert.deepEqual(
      mine.body.data.map((c: { id: number }) => c.id),
      [w.customer],
    );
    const all = await api(t, 'get', '/customers?limit=100', tokens.vendor).expect(200);
    assert.equal(all.body.data.length, await countRows(t.db, 'customers'));
  });

  it('a Viewer on the order reads the customer but may not edit it (403, the portal’s edit_customer)', async () => {
    const { t, w, tokens } = world;
    await catalog.grantPermissions(t.db, w.managerNone.id, ['manage_api_clients']);
    const viewer = await tokens.personal(w.managerNone.id);
    await api(t, 'get', `/customers/${w.customer}`, viewer).expect(200);
    const res = await api(t, 'patch', `/customers/${w.customer}`, viewer, { phone: '1' }).expect(403);
    assert.equal(res.body.error.code, 'forbidden');
  });

  it('creates a customer through the console’s service: database row, audit row naming the token', async () => {
    const { t, tokens } = world;
    const res = await api(t, 'post', '/customers', tokens.vendor, {
      kind: 'person',
      name: '  Ada Lovelace ',
      email: 'ada@example.com',
    }).expect(201);
    assert.equal(res.body.name, 'Ada Lovelace');
    const row = await t.db('customers').where({ id: res.body.id }).first();
    assert.equal(row.email, 'ada@example.com');
    const audit = await t
      .db('audit_events')
      .where({ action: 'customer.created', object_id: String(res.body.id) })
      .first();
    assert.match(audit.actor_label, /^api client "shop" \(portico_ak_\w{4}…\)$/);
    assert.equal(audit.actor_account_id, null);
    assert.ok(!JSON.stringify(audit).includes(tokens.vendor), 'the token is not in the audit row');
  });

  it('a manager’s edit is audited as their personal token, with their account', async () => {
    const { t, w, tokens } = world;
    await api(t, 'patch', `/customers/${w.customer}`, tokens.managerInside, { reference: 'R-77' }).expect(200);
    const audit = await t.db('audit_events').where({ action: 'customer.updated' }).orderBy('id', 'desc').first();
    assert.equal(Number(audit.actor_account_id), w.managerAll.id);
    assert.match(audit.actor_label, /^personal token "ci" of user\d+-\d+@example\.com \(portico_pat_\w{4}…\)$/);
    assert.equal((await t.db('customers').where({ id: w.customer }).first()).reference, 'R-77');
  });

  it('the console’s audit log names the token as the actor, and filters by it', async () => {
    const { t, tokens } = world;
    await api(t, 'post', '/customers', tokens.vendor, { kind: 'company', name: 'Audited Co' }).expect(201);
    const { agent } = await adminAgent(t);
    const page = await agent.get('/admin/audit?actor=api+client+%22shop%22').expect(200);
    assert.match(page.text, /api client &#34;shop&#34; \(portico_ak_\w{4}…\)/);
    assert.doesNotMatch(page.text, new RegExp(tokens.vendor));
  });

  it('refuses bad input with 422 and a message per field', async () => {
    const { t, w, tokens } = world;
    const res = await api(t, 'post', '/customers', tokens.vendor, { kind: 'robot', email: 'nope' }).expect(422);
    assert.equal(res.body.error.code, 'validation');
    assert.deepEqual(Object.keys(res.body.error.fields).sort(), ['email', 'kind', 'name']);
    const patch = await api(t, 'patch', `/customers/${w.customer}`, tokens.vendor, { name: '' }).expect(422);
    assert.ok(patch.body.error.fields.name);
    const notObject = await api(t, 'post', '/customers', tokens.vendor, [1, 2]).expect(422);
    assert.ok(notObject.body.error.fields._body);
  });

  it('answers 404 for an id that does not exist or cannot', async () => {
    const { t, tokens } = world;
    assert.equal((await api(t, 'get', '/customers/999999', tokens.vendor).expect(404)).body.error.code, 'not_found');
    await api(t, 'get', '/customers/abc', tokens.vendor).expect(404);
  });
});
