import assert from 'node:assert/strict';
import { buildTestApp, countRows } from '../helpers/app.ts';
import { accessMatrix, api, manageApiWorld, type ManageApiWorld } from '../helpers/manage-api.ts';

describe('Management API: orders', () => {
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
        { route: 'GET /orders', scope: 'orders:read', path: () => '/orders', managerOutside: 200 },
        {
          route: 'POST /orders',
          scope: 'orders:write',
          path: () => '/orders',
          // managerB may create orders (its customers or new ones) but not for order A's customer: 422.
          body: (w, who) =>
            who === 'managerInside'
              ? { order_ref: `M-${++n}`, customer: { kind: 'person', name: `New ${n}` } }
              : { order_ref: `M-${++n}`, customer_id: w.customer },
          managerOutside: 422,
          vendor: 201,
          managerInside: 201,
        },
        { route: 'GET /orders/:id', scope: 'orders:read', path: (w) => `/orders/${w.orderA}` },
        {
          route: 'PATCH /orders/:id',
          scope: 'orders:write',
          path: (w) => `/orders/${w.orderA}`,
          body: () => ({ reference: 'PO-1' }),
          managerInside: 404,
        },
      ],
    );
  });

  it('lists a manager’s orders only, with filters; the vendor’s list has every order', async () => {
    const { t, w, tokens } = world;
    const mine = await api(t, 'get', '/orders?limit=100', tokens.managerOutside).expect(200);
    assert.ok(mine.body.data.every((o: { customer_id: number }) => o.customer_id !== w.customer));
    assert.ok(mine.body.data.some((o: { id: number }) => o.id === w.orderB));
    const byRef = await api(t, 'get', '/orders?order_ref=A-1', tokens.vendor).expect(200);
    assert.deepEqual(
      byRef.body.data.map((o: { id: number }) => o.id),
      [w.orderA],
    );
    const byCustomer = await api(t, 'get', `/orders?customer_id=${w.customer}&limit=100`, tokens.vendor).expect(200);
    assert.ok(byCustomer.body.data.every((o: { customer_id: number }) => o.customer_id === w.customer));
    await api(t, 'get', '/orders?customer_id=abc', tokens.vendor).expect(422);
  });

  it('creates customer, order and licenses in one call (vendor), audited as the token', async () => {
    const { t, w, tokens } = world;
    const res = await api(t, 'post', '/orders', tokens.vendor, {
      order_ref: 'SHOP-1001',
      customer: { kind: 'company', name: 'Umbrella' },
      licenses: [
        { policy_id: w.policy, quantity: 3 },
        { policy_id: w.userPolicy, emails: ['alice@umbrella.example'] },
      ],
    }).expect(201);
    assert.equal(res.body.order_ref, 'SHOP-1001');
    assert.equal(res.body.customer_name, 'Umbrella');
    assert.equal(res.body.licenses.length, 4);
    assert.equal(await countRows(t.db, 'licenses', { order_id: res.body.id }), 4);
    assert.equal(res.body.licenses.filter((l: { license_key: string | null }) => l.license_key).length, 3);
    const audit = await t
      .db('audit_events')
      .where({ action: 'order.created', object_id: String(res.body.id) })
      .first();
    assert.match(audit.actor_label, /^api client "shop" \(portico_ak_/);
  });

  it('a manager’s order counts against its quota; a refused line leaves nothing behind', async () => {
    const { t, w, tokens } = world;
    const before = await countRows(t.db, 'orders');
    const over = await api(t, 'post', '/orders', tokens.managerInside, {
      order_ref: 'Q-1',
      customer: { kind: 'person', name: 'Quota Test' },
      licenses: [{ policy_id: w.policy, quantity: 50 }],
    }).expect(422);
    assert.equal(over.body.error.code, 'validation');
    assert.equal(await countRows(t.db, 'orders'), before);
    assert.equal(await countRows(t.db, 'customers', { name: 'Quota Test' }), 0);
    const ok = await api(t, 'post', '/orders', tokens.managerInside, {
      order_ref: 'Q-2',
      customer: { kind: 'person', name: 'Quota Test' },
      licenses: [{ policy_id: w.policy, quantity: 1 }],
    }).expect(201);
    // The manager is assigned to the order it made, as in the portal.
    assert.equal(await countRows(t.db, 'manager_orders', { account_id: w.managerAll.id, order_id: ok.body.id }), 1);
    const quota = await t.db('manager_quotas').where({ account_id: w.managerAll.id, product_id: w.product }).first();
    assert.ok(Number(quota.issued) >= 1);
  });

  it('needs create_bundle_order for licenses in the call, as the portal does', async () => {
    const { t, w, tokens } = world;
    await t.db('manager_permissions').where({ account_id: w.managerB.id, permission: 'create_bundle_order' }).delete();
    const res = await api(t, 'post', '/orders', tokens.managerOutside, {
      order_ref: 'NB-1',
      customer: { kind: 'person', name: 'No Bundle' },
      licenses: [{ policy_id: w.policy, quantity: 1 }],
    }).expect(403);
    assert.equal(res.body.error.code, 'forbidden');
    await api(t, 'post', '/orders', tokens.managerOutside, {
      order_ref: 'NB-2',
      customer: { kind: 'person', name: 'No Bundle' },
    }).expect(201);
  });

  it('a personal token does only what its scopes allow, whatever its manager may do', async () => {
    const { t, w, tokens } = world;
    const readOnly = await tokens.personal(w.managerAll.id, ['orders:read']);
    await api(t, 'get', `/orders/${w.orderA}`, readOnly).expect(200);
    const res = await api(t, 'post', '/orders', readOnly, {
      order_ref: 'RO-1',
      customer: { kind: 'person', name: 'RO' },
    });
    assert.equal(res.status, 403);
    assert.equal(res.body.error.code, 'insufficient_scope');
    assert.match(String(res.headers['www-authenticate']), /scope="orders:write"/);
    await api(t, 'get', `/customers/${w.customer}`, readOnly).expect(403);
  });

  it('refuses bad input with field names, nested ones included', async () => {
    const { t, w, tokens } = world;
    const both = await api(t, 'post', '/orders', tokens.vendor, {
      order_ref: 'X',
      customer_id: w.customer,
      customer: {},
    });
    assert.equal(both.status, 422);
    assert.ok(both.body.error.fields.customer_id);
    const nested = await api(t, 'post', '/orders', tokens.vendor, {
      order_ref: 'X',
      customer: { kind: 'company' },
      licenses: [{ policy_id: 'p' }],
    }).expect(422);
    assert.ok(nested.body.error.fields['customer.name'] || nested.body.error.fields['licenses[0].policy_id']);
    const missing = await api(t, 'post', '/orders', tokens.vendor, { customer_id: 999999, order_ref: 'Y' }).expect(422);
    assert.ok(missing.body.error.fields.customer_id);
    const taken = await api(t, 'post', '/orders', tokens.vendor, { customer_id: w.customer, order_ref: 'A-1' }).expect(
      422,
    );
    assert.ok(taken.body.error.fields.order_ref);
  });

  it('a shop retrying concurrently with one Idempotency-Key makes one order and one set of licenses', async () => {
    const { t, w, tokens } = world;
    const body = { order_ref: 'RACE-1', customer_id: w.customer, licenses: [{ policy_id: w.policy, quantity: 2 }] };
    const results = await Promise.all(
      Array.from({ length: 10 }, () => api(t, 'post', '/orders', tokens.vendor, body, { 'Idempotency-Key': 'race-1' })),
    );
    const statuses = results.map((r) => r.status);
    assert.equal(await countRows(t.db, 'orders', { order_ref: 'RACE-1' }), 1, String(statuses));
    const order = await t.db('orders').where({ order_ref: 'RACE-1' }).first();
    assert.equal(await countRows(t.db, 'licenses', { order_id: order.id }), 2);
    assert.ok(
      statuses.every((s) => s === 201 || s === 409),
      String(statuses),
    );
    // Once it is done, a retry gets the stored answer.
    const replay = await api(t, 'post', '/orders', tokens.vendor, body, { 'Idempotency-Key': 'race-1' }).expect(201);
    assert.equal(replay.headers['idempotent-replayed'], 'true');
    assert.equal(replay.body.id, order.id);
  });

  it('edits an order (vendor) through the console’s service', async () => {
    const { t, w, tokens } = world;
    const res = await api(t, 'patch', `/orders/${w.orderB}`, tokens.vendor, { is_test: true }).expect(200);
    assert.equal(res.body.is_test, true);
    assert.equal(res.body.order_ref, 'B-1');
    await api(t, 'patch', `/orders/${w.orderB}`, tokens.vendor, { is_test: 'yes' }).expect(422);
  });
});
