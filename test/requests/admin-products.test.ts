import assert from 'node:assert/strict';
import { buildTestApp, adminAgent, auditOf, countRows, submitForm, type TestApp } from '../helpers/app.ts';
import * as catalog from '../../app/models/catalog.ts';

const policyFields = (over: Record<string, string> = {}) => ({
  name: 'Standard',
  license_type: 'perpetual',
  max_activations: '3',
  max_transfers: '2',
  allow_offline: 'on',
  ...over,
});

describe('console: products, features and policies', () => {
  let t: TestApp;
  let agent: Awaited<ReturnType<typeof adminAgent>>['agent'];
  let adminId: number;
  before(async () => {
    t = await buildTestApp();
    const a = await adminAgent(t);
    agent = a.agent;
    adminId = a.admin.id;
  });
  after(async () => t.close());

  it('creates a product; the code is unique and well-formed; 422 with field errors otherwise', async () => {
    const bad = await submitForm(agent, '/admin/products/new', '/admin/products', {
      name: '',
      code: 'bad code!',
      authorization_method: 'key',
    });
    assert.equal(bad.status, 422);
    assert.match(bad.text, /This field is required/);
    assert.match(bad.text, /Use letters, digits and single dashes/);
    assert.equal(await countRows(t.db, 'products'), 0);

    const ok = await submitForm(agent, '/admin/products/new', '/admin/products', {
      name: 'Acme CAD',
      code: 'acme-cad',
      authorization_method: 'key',
      description: 'CAD',
    });
    assert.equal(ok.status, 303);
    const product = await t.db('products').where({ code: 'acme-cad' }).first();
    assert.equal(ok.headers.location, `/admin/products/${product.id}`);
    const page = await agent.get(ok.headers.location).expect(200);
    assert.match(page.text, /The product has been created/);
    const [event] = await auditOf(t.db, 'product', product.id);
    assert.equal(event!.action, 'product.created');
    assert.equal(event!.actor, adminId);
    assert.equal(event!.after.code, 'acme-cad');

    const dup = await submitForm(agent, '/admin/products/new', '/admin/products', {
      name: 'Other',
      code: 'acme-cad',
      authorization_method: 'key',
    });
    assert.equal(dup.status, 422);
    assert.match(dup.text, /This code is already used/);
  });

  it('shows field errors in the admin language', async () => {
    const { agent: german } = await adminAgent(t, 'de');
    const bad = await submitForm(german, '/admin/products/new', '/admin/products', {
      name: '',
      code: 'x',
      authorization_method: 'key',
    });
    assert.equal(bad.status, 422);
    assert.match(bad.text, /<html lang="de">/);
    assert.doesNotMatch(bad.text, /This field is required/);
  });

  it('lists, searches and paginates products', async () => {
    const now = new Date();
    for (let i = 0; i < 55; i++)
      await catalog.insertProduct(
        t.db,
        { name: `Bulk ${String(i).padStart(2, '0')}`, code: `bulk-${i}`, authorizationMethod: 'key' },
        now,
      );
    const first = await agent.get('/admin/products').expect(200);
    assert.match(first.text, /Page 1 of 2/);
    const search = await agent.get('/admin/products?q=acme').expect(200);
    assert.match(search.text, /Acme CAD/);
    assert.doesNotMatch(search.text, /Bulk 01/);
    const literal = await agent.get('/admin/products?q=%25').expect(200);
    assert.match(literal.text, /Nothing found/, 'a % typed in the search is not a wildcard');
  });

  it('edits a product (the code stays), archives, restores; every change audited with before/after', async () => {
    const product = await t.db('products').where({ code: 'acme-cad' }).first();
    const res = await submitForm(agent, `/admin/products/${product.id}/edit`, `/admin/products/${product.id}`, {
      name: 'Acme CAD Pro',
      authorization_method: 'key',
      description: '',
      code: 'hacked',
    });
    assert.equal(res.status, 303);
    const after = await t.db('products').where({ id: product.id }).first();
    assert.equal(after.name, 'Acme CAD Pro');
    assert.equal(after.code, 'acme-cad');
    await submitForm(agent, `/admin/products/${product.id}`, `/admin/products/${product.id}/archive`, {});
    await submitForm(agent, `/admin/products/${product.id}`, `/admin/products/${product.id}/unarchive`, {});
    const events = await auditOf(t.db, 'product', product.id);
    const updated = events.find((e) => e.action === 'product.updated')!;
    assert.equal(updated.before.name, 'Acme CAD');
    assert.equal(updated.after.name, 'Acme CAD Pro');
    assert.deepEqual(events.map((e) => e.action).slice(-2), ['product.archived', 'product.unarchived']);
  });

  it('adds, renames and deletes features', async () => {
    const product = await t.db('products').where({ code: 'acme-cad' }).first();
    const url = `/admin/products/${product.id}`;
    const bad = await submitForm(agent, url, `${url}/features`, { code: '', name: 'x', type: 'weird' });
    assert.equal(bad.status, 422);
    assert.match(bad.text, /Choose one of the offered options/);
    assert.equal(
      (await submitForm(agent, url, `${url}/features`, { code: 'pdf-export', name: 'PDF', type: 'activation' })).status,
      303,
    );
    assert.equal(
      (await submitForm(agent, url, `${url}/features`, { code: 'minutes', name: 'Minutes', type: 'consumption' }))
        .status,
      303,
    );
    const dup = await submitForm(agent, url, `${url}/features`, {
      code: 'pdf-export',
      name: 'Again',
      type: 'activation',
    });
    assert.equal(dup.status, 422);
    const feature = await t.db('features').where({ code: 'pdf-export' }).first();
    assert.equal((await submitForm(agent, url, `${url}/features/${feature.id}`, { name: 'PDF export' })).status, 303);
    assert.equal((await t.db('features').where({ id: feature.id }).first()).name, 'PDF export');
    const other = await catalog.insertProduct(
      t.db,
      { name: 'Other', code: 'other', authorizationMethod: 'key' },
      new Date(),
    );
    const foreign = await submitForm(agent, url, `/admin/products/${other}/features/${feature.id}/delete`, {
      confirmed: '1',
    });
    assert.equal(foreign.status, 404, 'a feature of another product is out of reach');
    assert.ok(await t.db('features').where({ id: feature.id }).first());
    assert.deepEqual(
      (await auditOf(t.db, 'feature', feature.id)).map((e) => e.action),
      ['feature.created', 'feature.updated'],
    );
  });

  it('creates policies with every entitlement and cross-field rules; the first is the default', async () => {
    const product = await t.db('products').where({ code: 'acme-cad' }).first();
    const minutes = await t.db('features').where({ code: 'minutes' }).first();
    const newUrl = `/admin/products/${product.id}/policies/new`;
    const create = `/admin/products/${product.id}/policies`;
    const bad = await submitForm(
      agent,
      newUrl,
      create,
      policyFields({
        license_type: 'subscription',
        max_transfers: '-5',
        floating: 'on',
        can_borrow: 'on',
        is_trial: 'on',
      }),
    );
    assert.equal(bad.status, 422);
    for (const field of [
      'validity_days',
      'max_transfers',
      'floating_users',
      'floating_timeout_minutes',
      'max_borrow_hours',
      'trial_days',
    ]) {
      assert.match(bad.text, new RegExp(`id="field-${field}"[^>]*aria-invalid="true"`), field);
    }
    const badPeriod = await submitForm(agent, newUrl, create, {
      ...policyFields(),
      features: String(minutes.id),
      [`consumption_period_${minutes.id}`]: 'week',
      [`max_overage_${minutes.id}`]: '0',
    });
    assert.equal(badPeriod.status, 422);
    assert.match(badPeriod.text, new RegExp(`id="field-consumption_period_${minutes.id}"[^>]*aria-invalid="true"`));
    assert.match(badPeriod.text, new RegExp(`id="field-max_overage_${minutes.id}"[^>]*aria-invalid="true"`));
    const ok = await submitForm(agent, newUrl, create, {
      ...policyFields(),
      features: String(minutes.id),
      [`max_consumption_${minutes.id}`]: '500',
      [`consumption_period_${minutes.id}`]: 'month',
      [`allow_overage_${minutes.id}`]: 'on',
      [`max_overage_${minutes.id}`]: '50',
    });
    assert.equal(ok.status, 303);
    const policy = await t.db('license_policies').where({ product_id: product.id }).first();
    assert.ok(policy.is_default, 'the first policy of a product is its default');
    assert.equal(policy.max_transfers, 2);
    const pf = await t.db('policy_features').where({ policy_id: policy.id }).first();
    assert.deepEqual(
      [pf.max_consumption, pf.consumption_period, Boolean(pf.allow_overage), pf.max_overage],
      [500, 'month', true, 50],
    );
    const edit = await agent.get(`/admin/policies/${policy.id}/edit`).expect(200);
    assert.match(
      edit.text,
      new RegExp(`id="field-allow_overage_${minutes.id}"[^>]*checked`),
      'the edit form shows the rule',
    );
    const shown = await agent.get(`/admin/policies/${policy.id}`).expect(200);
    assert.match(shown.text, /at most 500 per calendar month \(UTC\) · overage allowed up to 50 more/);

    const second = await submitForm(
      agent,
      newUrl,
      create,
      policyFields({ name: 'Annual', license_type: 'subscription', validity_days: '365', is_default: 'on' }),
    );
    assert.equal(second.status, 303);
    const defaults = await t.db('license_policies').where({ product_id: product.id, is_default: true });
    assert.equal(defaults.length, 1, 'exactly one default per product');
    assert.equal(defaults[0].name, 'Annual');
    assert.equal((await auditOf(t.db, 'policy', policy.id))[0]!.action, 'policy.created');
  });

  it('edits a policy with before/after; an air-gapped policy refuses any edit', async () => {
    const product = await t.db('products').where({ code: 'acme-cad' }).first();
    const policy = await t.db('license_policies').where({ product_id: product.id, name: 'Standard' }).first();
    const res = await submitForm(
      agent,
      `/admin/policies/${policy.id}/edit`,
      `/admin/policies/${policy.id}`,
      policyFields({ name: 'Standard', max_activations: '5' }),
    );
    assert.equal(res.status, 303);
    const updated = (await auditOf(t.db, 'policy', policy.id)).find((e) => e.action === 'policy.updated')!;
    assert.equal(updated.before.maxActivations, 3);
    assert.equal(updated.after.maxActivations, 5);

    const create = await submitForm(
      agent,
      `/admin/products/${product.id}/policies/new`,
      `/admin/products/${product.id}/policies`,
      policyFields({ name: 'Site', airgapped: 'on', max_transfers: '-1' }),
    );
    assert.equal(create.status, 303);
    const airgapped = await t.db('license_policies').where({ name: 'Site' }).first();
    assert.ok(airgapped.airgapped && airgapped.allow_offline);
    const page = await agent.get(`/admin/policies/${airgapped.id}`).expect(200);
    assert.doesNotMatch(page.text, new RegExp(`/admin/policies/${airgapped.id}/edit`), 'no edit button');
    await agent.get(`/admin/policies/${airgapped.id}/edit`).expect(303);
    const refused = await agent
      .post(`/admin/policies/${airgapped.id}`)
      .type('form')
      .send({
        _csrf: /name="_csrf" value="([^"]+)"/.exec(page.text)![1],
        ...policyFields({ name: 'Changed', airgapped: '' }),
      });
    assert.equal(refused.status, 303);
    const flashPage = await agent.get(refused.headers.location).expect(200);
    assert.match(flashPage.text, /cannot be edited once saved/);
    const still = await t.db('license_policies').where({ id: airgapped.id }).first();
    assert.equal(still.name, 'Site');
    assert.ok(still.airgapped);
    assert.deepEqual(
      (await auditOf(t.db, 'policy', airgapped.id)).map((e) => e.action),
      ['policy.created'],
    );
  });

  it('makes another policy the default, archives and unarchives one; an archived policy cannot become the default; all audited', async () => {
    const product = await t.db('products').where({ code: 'acme-cad' }).first();
    const policyNamed = async (name: string) =>
      t.db('license_policies').where({ product_id: product.id, name }).first();
    const defaultNames = async () =>
      (await t.db('license_policies').where({ product_id: product.id, is_default: true })).map(
        (p: { name: string }) => p.name,
      );
    const standard = await policyNamed('Standard');
    const annual = await policyNamed('Annual');
    assert.deepEqual(await defaultNames(), ['Annual']);

    // The policy page offers "make default" to a policy that is not; posting it moves the default.
    const page = await agent.get(`/admin/policies/${standard.id}`).expect(200);
    assert.match(page.text, new RegExp(`action="/admin/policies/${standard.id}/default"`));
    assert.equal(
      (await submitForm(agent, `/admin/policies/${standard.id}`, `/admin/policies/${standard.id}/default`, {})).status,
      303,
    );
    assert.deepEqual(await defaultNames(), ['Standard'], 'still exactly one default per product');
    assert.deepEqual((await auditOf(t.db, 'policy', standard.id)).at(-1), {
      action: 'policy.made_default',
      actor: adminId,
      before: { isDefault: false },
      after: { isDefault: true },
    });

    // Archived: no "make default" button, and a forged request is refused with nothing changed.
    assert.equal(
      (await submitForm(agent, `/admin/policies/${annual.id}`, `/admin/policies/${annual.id}/archive`, {})).status,
      303,
    );
    assert.ok((await policyNamed('Annual')).archived);
    assert.deepEqual((await auditOf(t.db, 'policy', annual.id)).at(-1)!.action, 'policy.archived');
    const archivedPage = await agent.get(`/admin/policies/${annual.id}`).expect(200);
    assert.doesNotMatch(archivedPage.text, new RegExp(`action="/admin/policies/${annual.id}/default"`));
    const refused = await submitForm(agent, `/admin/policies/${annual.id}`, `/admin/policies/${annual.id}/default`, {});
    assert.equal(refused.status, 303);
    assert.match(
      (await agent.get(refused.headers.location).expect(200)).text,
      /An archived policy cannot be the default/,
    );
    assert.deepEqual(await defaultNames(), ['Standard']);
    assert.equal(
      (await auditOf(t.db, 'policy', annual.id)).at(-1)!.action,
      'policy.archived',
      'no event for the refused change',
    );

    // Archiving the default leaves the product without one; unarchiving does not make it the default again.
    assert.equal(
      (await submitForm(agent, `/admin/policies/${standard.id}`, `/admin/policies/${standard.id}/archive`, {})).status,
      303,
    );
    assert.deepEqual(await defaultNames(), []);
    assert.deepEqual((await auditOf(t.db, 'policy', standard.id)).at(-1)!.before, { archived: false, isDefault: true });
    assert.equal(
      (await submitForm(agent, `/admin/policies/${standard.id}`, `/admin/policies/${standard.id}/unarchive`, {}))
        .status,
      303,
    );
    const unarchived = await policyNamed('Standard');
    assert.ok(!unarchived.archived && !unarchived.is_default);
    assert.deepEqual((await auditOf(t.db, 'policy', standard.id)).at(-1), {
      action: 'policy.unarchived',
      actor: adminId,
      before: { archived: true, isDefault: false },
      after: { archived: false },
    });
    await submitForm(agent, `/admin/policies/${standard.id}`, `/admin/policies/${standard.id}/default`, {}).then((r) =>
      assert.equal(r.status, 303),
    );
    assert.deepEqual(await defaultNames(), ['Standard']);
  });

  it('deletes a product without licenses, archives instead when licenses exist', async () => {
    const now = new Date();
    const lonely = await catalog.insertProduct(
      t.db,
      { name: 'Lonely', code: 'lonely', authorizationMethod: 'key' },
      now,
    );
    assert.equal(
      (await submitForm(agent, `/admin/products/${lonely}`, `/admin/products/${lonely}/delete`, { confirmed: '1' }))
        .status,
      303,
    );
    assert.equal(await t.db('products').where({ id: lonely }).first(), undefined);
    assert.equal((await auditOf(t.db, 'product', lonely)).at(-1)!.action, 'product.deleted');

    const product = await t.db('products').where({ code: 'acme-cad' }).first();
    const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'C' }, now);
    const order = await catalog.insertOrder(t.db, { orderRef: 'O-1', customerId: customer }, now);
    await catalog.insertLicense(
      t.db,
      {
        orderId: order,
        productId: product.id,
        policyId: null,
        licenseKey: 'K',
        entitlements: catalog.DEFAULT_ENTITLEMENTS,
        startDate: now,
      },
      now,
    );
    const refused = await submitForm(agent, `/admin/products/${product.id}`, `/admin/products/${product.id}/delete`, {
      confirmed: '1',
    });
    assert.equal(refused.status, 303);
    assert.match((await agent.get(refused.headers.location)).text, /archive it instead/);
    assert.ok(await t.db('products').where({ id: product.id }).first());
    const locked = await submitForm(agent, `/admin/products/${product.id}/edit`, `/admin/products/${product.id}`, {
      name: 'Acme CAD Pro',
      authorization_method: 'user',
    });
    assert.equal(locked.status, 422);
    assert.match(locked.text, /cannot change once licenses exist/);
  });

  it('unknown and malformed ids are 404', async () => {
    await agent.get('/admin/products/999999').expect(404);
    await agent.get('/admin/products/abc').expect(404);
    await agent.get('/admin/policies/0').expect(404);
  });
});
