import assert from 'node:assert/strict';
import { buildTestApp, csrfFrom, loginAgent, submitForm, type TestApp } from '../helpers/app.ts';
import * as catalog from '../../app/models/catalog.ts';
import { portalWorld } from '../helpers/portal.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;
type Agent = Awaited<ReturnType<typeof loginAgent>>;

const KEY_A = 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA';

/** The results part of a search page (the form above it echoes the query). */
const resultsOf = (html: string) => {
  const start = html.indexOf('<section aria-labelledby="search-licenses">');
  assert.ok(start >= 0, 'the page shows results');
  return html.slice(start, html.lastIndexOf('</section>') + '</section>'.length);
};

describe('search across orders', function () {
  this.timeout(60_000);
  let t: TestApp;
  let w: World;
  let managerA: Agent;
  let managerB: Agent;
  let admin: Agent;
  let endUser: Agent;
  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    managerA = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    managerB = await loginAgent(t.app, w.managerB.email, w.managerB.password);
    admin = await loginAgent(t.app, w.admin.email, w.admin.password);
    endUser = await loginAgent(t.app, w.endUser.email, w.endUser.password);
  });
  after(async () => t.close());

  const search = async (agent: Agent, q: string, base = '/portal/search') => {
    const res = await agent.get(base).query({ q });
    assert.equal(res.status, 200, `search for ${q}`);
    return res.text;
  };
  const licenseLink = (id: number, base = '/portal') => `href="${base}/licenses/${id}"`;
  const orderLink = (id: number, base = '/portal') => `href="${base}/orders/${id}"`;

  it('shows a labelled search field in the portal navigation for managers; end users have no search (404)', async () => {
    const page = await managerA.get('/portal/search').expect(200);
    assert.match(page.text, /<label for="field-q">/);
    assert.match(page.text, /<input id="field-q" name="q" type="search"/);
    assert.match((await managerA.get('/portal').expect(200)).text, /href="\/portal\/search"/);
    await endUser.get('/portal/search').expect(404);
    await endUser.get('/portal/search?q=HW-U').expect(404);
  });

  it('finds a license by its whole key and by its start, in any case and with spaces for dashes', async () => {
    for (const q of [KEY_A, 'aaaa-aa', 'aaaa aaaa a']) {
      const html = await search(managerA, q);
      assert.ok(html.includes(licenseLink(w.licenseA)), q);
      assert.match(resultsOf(html), /License key: <code>AAAA-AAAA/);
    }
    assert.ok(!(await search(managerA, 'AAAB')).includes(licenseLink(w.licenseA)));
  });

  it("finds a license by a user's whole e-mail or its start", async () => {
    for (const q of [w.endUser.email, w.endUser.email.toUpperCase(), w.endUser.email.split('@')[0]!]) {
      const html = await search(managerA, q);
      assert.ok(html.includes(licenseLink(w.userLicense)), q);
      assert.ok(resultsOf(html).includes(`User e-mail: <code>${w.endUser.email}</code>`), q);
      assert.ok(!html.includes(licenseLink(w.licenseA)), q);
    }
  });

  it("finds licenses by a device's hardware id, exact or its start", async () => {
    const exact = await search(managerA, 'HW-U');
    assert.ok(exact.includes(licenseLink(w.userLicense)));
    assert.ok(!exact.includes(licenseLink(w.licenseA)));
    const start = resultsOf(await search(managerA, 'HW-'));
    assert.ok(start.includes(licenseLink(w.licenseA)) && start.includes(licenseLink(w.userLicense)));
    assert.ok(!start.includes(licenseLink(w.licenseB)), 'the device of order B is not in the scope of A');
    assert.match(start, /Hardware id: <code>HW-A<\/code>/);
  });

  it("finds orders by number (whole or start) and by part of the customer's name, ignoring case; wildcards are literal", async () => {
    for (const q of ['A-1', 'A-']) assert.ok((await search(managerA, q)).includes(orderLink(w.orderA)), q);
    const byName = resultsOf(await search(managerA, 'LOBE'));
    assert.ok(byName.includes(orderLink(w.orderA)));
    assert.match(byName, /Customer: <code>Globex<\/code>/);
    for (const q of ['%', '_lobex', 'Glo%x']) {
      const html = resultsOf(await search(managerA, q));
      assert.ok(!html.includes(orderLink(w.orderA)), q);
      assert.match(html, /No order matches/);
    }
  });

  it("never finds anything of another manager's orders: the same answer as for something that does not exist", async () => {
    const nothing = resultsOf(await search(managerB, 'ZZZZ-NOTHING'));
    assert.match(nothing, /No license matches/);
    assert.match(nothing, /No order matches/);
    const ofOrderA = [
      KEY_A,
      'AAAA-A',
      w.endUser.email,
      w.endUser.email.split('@')[0]!,
      'HW-A',
      'HW-U',
      'Globex',
      'lobe',
      'A-1',
    ];
    for (const q of ofOrderA) assert.equal(resultsOf(await search(managerB, q)), nothing, q);
    // The same searches find B's own things (the scope works both ways).
    assert.ok((await search(managerB, 'HW-')).includes(licenseLink(w.licenseB)));
    assert.ok((await search(managerB, 'B-1')).includes(orderLink(w.orderB)));
    assert.ok((await search(managerB, 'initech')).includes(orderLink(w.orderB)));
  });

  it('answers an empty, blank or too long query with a field error (422), in the portal and the console', async () => {
    for (const base of ['/portal/search', '/admin/search']) {
      for (const q of ['', '   ']) {
        const res = await admin.get(base).query({ q });
        assert.equal(res.status, 422, `${base} "${q}"`);
        assert.match(res.text, /class="field-error" id="field-q-error"/);
        assert.match(res.text, /aria-invalid="true"/);
      }
      const long = await admin.get(base).query({ q: 'x'.repeat(201) });
      assert.equal(long.status, 422);
      assert.match(long.text, /class="field-error" id="field-q-error"/);
      assert.equal(
        (await admin.get(base).query({ q: ` ${'x'.repeat(200)} ` })).status,
        200,
        '200 characters once trimmed',
      );
    }
    assert.equal((await managerA.get('/portal/search').query({ q: '' })).status, 422);
  });

  it('the console searches across every order, for admins only', async () => {
    const html = resultsOf(await search(admin, 'HW-', '/admin/search'));
    for (const id of [w.licenseA, w.licenseB, w.userLicense]) assert.ok(html.includes(licenseLink(id, '/admin')));
    const orders = resultsOf(await search(admin, 'B-1', '/admin/search'));
    assert.ok(orders.includes(orderLink(w.orderB, '/admin')));
    assert.ok(resultsOf(await search(admin, KEY_A, '/admin/search')).includes(licenseLink(w.licenseA, '/admin')));
    assert.ok(
      resultsOf(await search(admin, w.endUser.email, '/admin/search')).includes(licenseLink(w.userLicense, '/admin')),
    );
    assert.match((await admin.get('/admin').expect(200)).text, /href="\/admin\/search"/);
    await managerA.get('/admin/search?q=HW-').expect(404);
    await endUser.get('/admin/search?q=HW-').expect(404);
  });

  it('shows at most 50 licenses, newest first', async () => {
    const now = new Date();
    const order = await catalog.insertOrder(t.db, { orderRef: 'MANY-1', customerId: w.customer }, now);
    for (let i = 0; i < 55; i++)
      await catalog.insertLicense(
        t.db,
        {
          orderId: order,
          productId: w.product,
          policyId: w.policy,
          licenseKey: `MANY-${String(i).padStart(4, '0')}-AAAA-AAAA-AAAA-AAAA-AAAA`.replace(/[ILOU]/g, '0'),
          entitlements: catalog.DEFAULT_ENTITLEMENTS,
          startDate: now,
        },
        now,
      );
    const html = resultsOf(await search(admin, 'MANY-', '/admin/search'));
    const ids = [...html.matchAll(/href="\/admin\/licenses\/(\d+)"/g)].map((m) => Number(m[1]));
    assert.equal(ids.length, 50);
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => b - a),
    );
  });
});

describe('order numbers: unique per customer, and no leak to managers', function () {
  this.timeout(60_000);
  let t: TestApp;
  let w: World;
  let admin: Agent;
  let managerB: Agent;
  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    admin = await loginAgent(t.app, w.admin.email, w.admin.password);
    managerB = await loginAgent(t.app, w.managerB.email, w.managerB.password);
  });
  after(async () => t.close());

  const initech = async () => Number((await t.db('orders').where({ id: w.orderB }).first()).customer_id);
  const newOrder = async (agent: Agent, fields: Record<string, string>) =>
    agent
      .post('/portal/orders')
      .type('form')
      .send({ _csrf: csrfFrom((await agent.get('/portal/orders/new').expect(200)).text), ...fields });

  it('the same number works for two customers; twice for one customer is a field error (console)', async () => {
    const create = (customerId: number) =>
      submitForm(admin, `/admin/customers/${customerId}/orders/new`, `/admin/customers/${customerId}/orders`, {
        order_ref: 'SAME-1',
      });
    const other = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Umbrella' }, new Date());
    assert.equal((await create(w.customer)).status, 303);
    assert.equal((await create(other)).status, 303);
    assert.equal(
      await t
        .db('orders')
        .where({ order_ref: 'SAME-1' })
        .count({ n: '*' })
        .first()
        .then((r) => Number(r!.n)),
      2,
    );
    const twice = await create(w.customer);
    assert.equal(twice.status, 422);
    assert.match(twice.text, /Another order already has this number/);
    assert.match(twice.text, /id="field-order_ref-error"/);
  });

  it("a manager's number taken by an order they manage of the same customer is a field error", async () => {
    const res = await newOrder(managerB, {
      order_ref: 'B-1',
      customer_choice: 'existing',
      customer_id: String(await initech()),
    });
    assert.equal(res.status, 422);
    assert.match(res.text, /Another order already has this number/);
  });

  it("a manager never learns of another scope's numbers: a number of order A is answered like an unused one", async () => {
    // A-1 is order A's number (customer Globex, not in B's scope).
    const withNew = await newOrder(managerB, {
      order_ref: 'A-1',
      customer_choice: 'new',
      kind: 'company',
      name: 'Hooli',
    });
    assert.equal(withNew.status, 303);
    const withOwn = await newOrder(managerB, {
      order_ref: 'A-1',
      customer_choice: 'existing',
      customer_id: String(await initech()),
    });
    assert.equal(withOwn.status, 303);
    const unused = await newOrder(managerB, {
      order_ref: 'UNUSED-1',
      customer_choice: 'existing',
      customer_id: String(await initech()),
    });
    assert.equal(unused.status, 303);
    assert.equal(
      await t
        .db('orders')
        .where({ order_ref: 'A-1' })
        .count({ n: '*' })
        .first()
        .then((r) => Number(r!.n)),
      3,
    );
  });

  it('a customer shared with orders outside the scope cannot be picked, whatever the number (no probing)', async () => {
    const now = new Date();
    const shared = await catalog.insertOrder(t.db, { orderRef: 'G-2', customerId: w.customer }, now);
    await catalog.assignManager(t.db, w.managerB.id, shared, now);
    const page = await managerB.get('/portal/orders/new').expect(200);
    assert.doesNotMatch(page.text, /Globex/, 'Globex also has order A-1, which B does not manage');
    const taken = await newOrder(managerB, {
      order_ref: 'A-1',
      customer_choice: 'existing',
      customer_id: String(w.customer),
    });
    const unused = await newOrder(managerB, {
      order_ref: 'UNUSED-2',
      customer_choice: 'existing',
      customer_id: String(w.customer),
    });
    assert.equal(taken.status, 422);
    assert.equal(unused.status, 422);
    const errorsOf = (html: string) =>
      [...html.matchAll(/class="field-error" id="([^"]+)">([^<]*)</g)].map((m) => m.slice(1));
    assert.deepEqual(errorsOf(taken.text), errorsOf(unused.text));
    assert.doesNotMatch(taken.text, /already has this number/);
    assert.equal(await t.db('orders').where({ order_ref: 'UNUSED-2' }).first(), undefined);
  });
});
