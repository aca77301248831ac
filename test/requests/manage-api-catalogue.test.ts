import assert from 'node:assert/strict';
import { buildTestApp } from '../helpers/app.ts';
import { accessMatrix, api, manageApiWorld, type ManageApiWorld } from '../helpers/manage-api.ts';
import * as catalog from '../../app/models/catalog.ts';

/** A policy body the console's form accepts: perpetual, two activations. */
const entitlements = {
  license_type: 'perpetual',
  max_activations: 2,
  max_transfers: 1,
  allow_offline: true,
};

describe('Management API: products and policies', () => {
  let world: ManageApiWorld;
  /** A product (and policy) no manager may issue from: managers' tokens get 404 for it. */
  let hidden: { product: number; policy: number };
  before(async () => {
    world = await manageApiWorld(await buildTestApp());
    const now = new Date();
    const product = await catalog.insertProduct(
      world.t.db,
      { name: 'Hidden', code: 'hidden', authorizationMethod: 'key' },
      now,
    );
    const policy = await catalog.insertPolicy(
      world.t.db,
      { productId: product, name: 'Std', isDefault: true, entitlements: catalog.DEFAULT_ENTITLEMENTS },
      now,
    );
    hidden = { product, policy };
  });
  after(() => world.t.close());

  describe('access matrix', () => {
    let n = 0;
    accessMatrix(
      () => world,
      [
        { route: 'GET /products', scope: 'products:read', path: () => '/products', managerOutside: 200 },
        {
          route: 'POST /products',
          scope: 'products:write',
          path: () => '/products',
          body: () => ({ name: `P ${++n}`, code: `p-${n}`, authorization_method: 'key' }),
          managerInside: 403,
          managerOutside: 403,
          vendor: 201,
        },
        {
          route: 'GET /products/:id',
          scope: 'products:read',
          path: () => `/products/${hidden.product}`,
          managerInside: 404,
        },
        {
          route: 'PATCH /products/:id',
          scope: 'products:write',
          path: () => `/products/${hidden.product}`,
          body: () => ({ description: 'Changed' }),
          managerInside: 403,
          managerOutside: 403,
        },
        { route: 'GET /policies', scope: 'products:read', path: () => '/policies', managerOutside: 200 },
        {
          route: 'POST /policies',
          scope: 'products:write',
          path: () => '/policies',
          body: () => ({ product_id: hidden.product, name: `Pol ${++n}`, entitlements }),
          managerInside: 403,
          managerOutside: 403,
          vendor: 201,
        },
        {
          route: 'GET /policies/:id',
          scope: 'products:read',
          path: () => `/policies/${hidden.policy}`,
          managerInside: 404,
        },
        {
          route: 'PATCH /policies/:id',
          scope: 'products:write',
          path: () => `/policies/${hidden.policy}`,
          body: () => ({ name: 'Standard' }),
          managerInside: 403,
          managerOutside: 403,
        },
      ],
    );
  });

  it('a manager’s token reads the products and policies it may issue from, and no others', async () => {
    const { t, w, tokens } = world;
    const list = await api(t, 'get', '/products?limit=100', tokens.managerInside).expect(200);
    const ids = list.body.data.map((p: { id: number }) => p.id).sort();
    assert.deepEqual(ids, [w.product, w.userProduct].sort());
    await api(t, 'get', `/products/${w.product}`, tokens.managerInside).expect(200);
    const pols = await api(t, 'get', '/policies?limit=100', tokens.managerInside).expect(200);
    assert.ok(pols.body.data.every((p: { product_id: number }) => p.product_id !== hidden.product));
    const all = await api(t, 'get', '/products?limit=100', tokens.vendor).expect(200);
    assert.ok(all.body.data.some((p: { id: number }) => p.id === hidden.product));
  });

  it('creates and edits products through the console’s service; a taken code is 422', async () => {
    const { t, tokens } = world;
    const made = await api(t, 'post', '/products', tokens.vendor, {
      name: 'Acme Render',
      code: 'render',
      authorization_method: 'user',
    }).expect(201);
    assert.equal(made.body.code, 'render');
    const taken = await api(t, 'post', '/products', tokens.vendor, {
      name: 'Again',
      code: 'render',
      authorization_method: 'key',
    }).expect(422);
    assert.ok(taken.body.error.fields.code);
    const edited = await api(t, 'patch', `/products/${made.body.id}`, tokens.vendor, { name: 'Acme Render 2' }).expect(
      200,
    );
    assert.equal(edited.body.name, 'Acme Render 2');
    assert.equal(edited.body.authorization_method, 'user');
    const audit = await t.db('audit_events').where({ action: 'product.updated' }).orderBy('id', 'desc').first();
    assert.match(audit.actor_label, /^api client "shop"/);
  });

  it('creates and edits policies with the console form’s rules (422 with field names)', async () => {
    const { t, tokens } = world;
    const made = await api(t, 'post', '/policies', tokens.vendor, {
      product_id: hidden.product,
      name: 'Subscription',
      entitlements: { ...entitlements, license_type: 'subscription', validity_days: 365 },
    }).expect(201);
    assert.equal(made.body.entitlements.license_type, 'subscription');
    assert.equal(made.body.entitlements.validity_days, 365);
    const missing = await api(t, 'post', '/policies', tokens.vendor, {
      product_id: hidden.product,
      name: 'Broken',
      entitlements: { ...entitlements, license_type: 'subscription' },
    }).expect(422);
    assert.ok(missing.body.error.fields.validity_days);
    await api(t, 'post', '/policies', tokens.vendor, { product_id: 999999, name: 'X', entitlements }).expect(422);
    const edited = await api(t, 'patch', `/policies/${made.body.id}`, tokens.vendor, {
      entitlements: { max_activations: 5 },
    }).expect(200);
    assert.equal(edited.body.entitlements.max_activations, 5);
    assert.equal(edited.body.entitlements.validity_days, 365);
    assert.equal(edited.body.name, 'Subscription');

    // A consumption feature's rule: maximum, period, overage and its cap.
    const feature = await catalog.insertFeature(
      t.db,
      { productId: hidden.product, code: 'minutes', name: 'Minutes', type: 'consumption' },
      new Date(),
    );
    const rule = {
      feature_id: feature,
      max_consumption: 100,
      consumption_period: 'month',
      allow_overage: true,
      max_overage: 10,
    };
    const withRule = await api(t, 'patch', `/policies/${made.body.id}`, tokens.vendor, { features: [rule] }).expect(
      200,
    );
    assert.deepEqual(withRule.body.features, [rule]);
    const badRule = await api(t, 'patch', `/policies/${made.body.id}`, tokens.vendor, {
      features: [{ ...rule, consumption_period: 'week' }],
    }).expect(422);
    assert.ok(Object.keys(badRule.body.error.fields).some((k) => k.includes('consumption_period')));
  });
});
