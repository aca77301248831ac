import assert from 'node:assert/strict';
import { auditOf, buildTestApp, countRows, createAccount, csrfFrom, loginAgent, type TestApp } from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import { fullPath, routeTable } from '../../app/routes.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;
type Agent = Awaited<ReturnType<typeof loginAgent>>;

const CODE = /\b[0-9A-Z]{5}(?:-[0-9A-Z]{5}){3}\b/g;
const CONSOLE_CODE_ROUTES = [
  'get /admin/vouchers',
  'get /admin/vouchers/:id',
  'post /admin/vouchers/:id/codes/:voucherId/void',
  'post /admin/vouchers/:id/void-rest',
  'get /admin/orders/:id/vouchers',
  'post /admin/orders/:id/vouchers',
  'get /admin/orders/:id/vouchers/new-codes.csv',
  'get /admin/orders/:id/vouchers/new-codes/print',
  'post /admin/orders/:id/vouchers/new-codes/dismiss',
];

/**
 * Redeemable codes in the vendor's console (docs/console.md, "Redeemable codes"): every batch of every
 * order with filters, a batch's codes, voiding one or the rest (the quota returned exactly once, also
 * under racing requests), generating for an order with the portal's fresh-codes flow. Real HTTP, real
 * database (SQLite, or MariaDB/MySQL with DATABASE_URL), no mocks.
 */
describe('Console: redeemable codes', function () {
  this.timeout(120_000);
  let t: TestApp;
  let w: World;
  let admin: Agent;
  let secondAdmin: Agent;
  let manager: Agent;
  let endUser: Agent;

  before(async () => {
    t = await buildTestApp({ logLevel: 'warn' });
    w = await portalWorld(t.db);
    await t.db('settings').insert({ key: 'end_user_self_service', value: 'true', updated_at: new Date() });
    admin = await loginAgent(t.app, w.admin.email, w.admin.password);
    const other = await createAccount(t.db, { role: 'admin', name: 'Second Admin' });
    secondAdmin = await loginAgent(t.app, other.email, other.password);
    manager = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    endUser = await loginAgent(t.app, w.endUser.email, w.endUser.password);
  });
  after(async () => t.close());
  beforeEach(async () => {
    await t.db('manager_quotas').update({ issued: 0 });
  });

  const token = async (agent: Agent) => csrfFrom((await agent.get('/account')).text);
  const post = async (agent: Agent, url: string, fields: Record<string, unknown> = {}) =>
    agent
      .post(url)
      .type('form')
      .send({ _csrf: await token(agent), ...fields });
  const issued = async (accountId = w.managerAll.id, productId = w.product) =>
    Number((await t.db('manager_quotas').where({ account_id: accountId, product_id: productId }).first()).issued);
  const lastBatch = async () => Number((await t.db('voucher_batches').orderBy('id', 'desc').first()).id);
  const codesOfPage = (html: string) => [...new Set(html.match(CODE) ?? [])];

  /** A manager generates a batch in the User Portal (against their quota); its id and codes. */
  const portalBatch = async (count: number, orderId = w.orderA, policyId = w.policy) => {
    const url = `/portal/orders/${orderId}/vouchers`;
    assert.equal((await post(manager, url, { policy_id: policyId, count, days: 30 })).status, 303);
    const codes = codesOfPage((await manager.get(url).expect(200)).text);
    await post(manager, `${url}/new-codes/dismiss`);
    return { id: await lastBatch(), codes };
  };
  /** The admin generates a batch from the console; its id and codes (then hidden again). */
  const consoleBatch = async (count: number, orderId = w.orderA, policyId = w.policy) => {
    const url = `/admin/orders/${orderId}/vouchers`;
    const res = await post(admin, url, { policy_id: policyId, count, days: 30 });
    assert.equal(res.status, 303, res.text.slice(0, 500));
    const codes = codesOfPage((await admin.get(url).expect(200)).text);
    await post(admin, `${url}/new-codes/dismiss`);
    return { id: await lastBatch(), codes };
  };
  const redeem = async (code: string) => {
    const page = await endUser.get('/redeem').expect(200);
    const res = await endUser
      .post('/redeem')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), code });
    assert.equal(res.status, 303, res.text.slice(0, 500));
  };
  const codeRows = (batchId: number) => t.db('vouchers').where({ batch_id: batchId }).orderBy('id');
  const batchLink = (id: number) => `href="/admin/vouchers/${id}"`;

  it('generates codes for an order from the console: shown once, as CSV and printable page, no quota counted', async () => {
    const url = `/admin/orders/${w.orderA}/vouchers`;
    const form = await admin.get(url).expect(200);
    assert.equal(form.headers['cache-control'], 'no-store');
    assert.match(form.text, /name="policy_id"/);

    // The same form rules as the User Portal: refused whole, nothing made.
    const before = await countRows(t.db, 'voucher_batches');
    for (const bad of [{ count: 0 }, { count: 501 }, { days: 731 }]) {
      const res = await post(admin, url, { policy_id: w.policy, count: 3, days: 30, ...bad });
      assert.equal(res.status, 422, JSON.stringify(bad));
    }
    assert.equal(await countRows(t.db, 'voucher_batches'), before);

    const res = await post(admin, url, { policy_id: w.policy, count: 3, days: 30 });
    assert.equal(res.status, 303);
    assert.equal(res.headers.location, url);
    const id = await lastBatch();
    const row = await t.db('voucher_batches').where({ id }).first();
    assert.equal(Number(row.created_by_account_id), w.admin.id);
    assert.ok(!row.quota_counted, 'an admin has no quota');
    assert.equal(await issued(), 0);
    assert.deepEqual(
      (await auditOf(t.db, 'order', w.orderA)).map((e) => e.action),
      ['vouchers.generated'],
    );

    const page = await admin.get(url).expect(200);
    assert.equal(page.headers['cache-control'], 'no-store');
    const codes = codesOfPage(page.text);
    assert.equal(codes.length, 3);
    const csv = await admin.get(`${url}/new-codes.csv`).expect(200);
    assert.match(String(csv.headers['content-type']), /text\/csv/);
    assert.match(csv.text, /^code,product,policy,expires_at\r?\n/);
    for (const c of codes) assert.ok(csv.text.includes(c), 'every code in the CSV');
    const print = await admin.get(`${url}/new-codes/print`).expect(200);
    assert.equal((print.text.match(/<img src="data:image\/svg\+xml;base64,/g) ?? []).length, 3, 'one QR per code');
    assert.ok(print.text.includes(`href="${url}"`), 'the printable page leads back to the console');

    // Another person (the second admin) never sees them; after hiding, neither does the admin.
    assert.equal(codesOfPage((await secondAdmin.get(url).expect(200)).text).length, 0);
    await secondAdmin.get(`${url}/new-codes.csv`).expect(303).expect('Location', url);
    assert.equal((await post(admin, `${url}/new-codes/dismiss`)).status, 303);
    assert.equal(codesOfPage((await admin.get(url).expect(200)).text).length, 0);
    await admin.get(`${url}/new-codes/print`).expect(303).expect('Location', url);

    // The order's page shows the batch with a link, and a way to generate more.
    const order = await admin.get(`/admin/orders/${w.orderA}`).expect(200);
    assert.ok(order.text.includes(batchLink(id)), 'the batch is on the order page');
    assert.ok(order.text.includes(`href="${url}"`), 'the order page links to its codes');
  });

  it('lists every batch of every order, newest first, with counts; filters by status, product, creator and order or customer', async () => {
    const open = await portalBatch(2);
    const redeemed = await consoleBatch(1, w.orderB);
    await redeem(redeemed.codes[0]!);
    const expired = await consoleBatch(2, w.orderA, w.userPolicy);
    await t
      .db('vouchers')
      .where({ batch_id: expired.id })
      .update({ expires_at: new Date(Date.now() - 86_400_000) });
    await t
      .db('voucher_batches')
      .where({ id: expired.id })
      .update({ expires_at: new Date(Date.now() - 86_400_000) });
    const voided = await portalBatch(1);
    const [voidedCode] = await codeRows(voided.id);
    await post(manager, `/portal/orders/${w.orderA}/vouchers/${voidedCode.id}/void`, { confirmed: '1' });
    const mine = [open.id, redeemed.id, expired.id, voided.id];

    const list = await admin.get('/admin/vouchers').expect(200);
    for (const id of mine) assert.ok(list.text.includes(batchLink(id)), `batch ${id} listed`);
    const at = (id: number) => list.text.indexOf(batchLink(id));
    assert.ok(at(voided.id) < at(expired.id) && at(expired.id) < at(redeemed.id) && at(redeemed.id) < at(open.id));
    assert.match(list.text, /1 in all · 1 redeemed · 0 voided · 0 expired · 0 open/);
    assert.match(list.text, /2 in all · 0 redeemed · 0 voided · 2 expired · 0 open/);
    assert.ok(list.text.includes('href="/admin/orders/'), 'orders are links');
    assert.ok(list.text.includes('Initech') && list.text.includes('All Perms'), 'customer and creator shown');

    const listed = async (query: string) => {
      const page = await admin.get(`/admin/vouchers?${query}`).expect(200);
      return mine.filter((id) => page.text.includes(batchLink(id)));
    };
    assert.deepEqual(await listed('status=open'), [open.id]);
    assert.deepEqual(await listed('status=redeemed'), [redeemed.id]);
    assert.deepEqual(await listed('status=expired'), [expired.id]);
    assert.deepEqual(await listed('status=voided'), [voided.id]);
    assert.deepEqual(await listed(`product=${w.userProduct}`), [expired.id]);
    assert.deepEqual(await listed(`creator=${w.managerAll.id}`), [open.id, voided.id]);
    assert.deepEqual(await listed('q=initech'), [redeemed.id]);
    assert.deepEqual(await listed('q=B-1'), [redeemed.id]);
    assert.deepEqual(await listed(`q=A-1&creator=${w.admin.id}`), [expired.id]);
    // Nonsense filters are ignored, not errors.
    assert.equal((await listed('status=bogus&product=x&creator=-1')).length, 4);
    assert.match((await admin.get('/admin/vouchers?q=no-such-order').expect(200)).text, /Nothing found/);
  });

  it('pages like the other console lists (50 a page, newest first)', async () => {
    const now = new Date();
    const rows = Array.from({ length: 51 }, () => ({
      order_id: w.orderB,
      policy_id: w.policy,
      product_id: w.product,
      created_by_account_id: w.admin.id,
      quota_counted: false,
      count: 0,
      expires_at: new Date(now.getTime() + 86_400_000),
      created_at: now,
    }));
    await t.db('voucher_batches').insert(rows);
    const newest = await lastBatch();
    const first = await admin.get('/admin/vouchers').expect(200);
    assert.equal((first.text.match(/href="\/admin\/vouchers\/\d+"/g) ?? []).length, 50);
    assert.ok(first.text.includes(batchLink(newest)));
    assert.match(first.text, /href="\/admin\/vouchers\?page=2"/);
    const second = await admin.get('/admin/vouchers?page=2').expect(200);
    assert.ok(!second.text.includes(batchLink(newest)));
    await t.db('voucher_batches').where('count', 0).delete();
  });

  it('the batch page shows each code by its hint only, its status, redeemer, channel, license and audit trail', async () => {
    const batch = await portalBatch(2);
    await redeem(batch.codes[0]!);
    const [first] = await codeRows(batch.id);
    const page = await admin.get(`/admin/vouchers/${batch.id}`).expect(200);
    assert.equal(page.headers['cache-control'], 'no-store');
    assert.equal(codesOfPage(page.text).length, 0, 'no full code on the page');
    for (const c of batch.codes) assert.ok(page.text.includes(`…${c.replace(/-/g, '').slice(-4)}`), 'each hint');
    assert.ok(page.text.includes(`href="/admin/license-users/${w.endUser.id}"`), 'the redeemer is a link');
    assert.ok(page.text.includes(`href="/admin/licenses/${first.license_id}"`), 'the license is a link');
    assert.match(page.text, /User Portal/);
    assert.ok(page.text.includes(`/admin/audit?object_type=voucher&amp;object_id=${first.id}`), 'audit per code');
    assert.ok(
      page.text.includes(`/admin/audit?object_type=order&amp;object_id=${w.orderA}&amp;action=vouchers.generated`),
      'audit of the generation',
    );
    assert.ok(page.text.includes(`href="/admin/orders/${w.orderA}"`));
    // One void button: the redeemed code has none.
    assert.equal((page.text.match(/\/codes\/\d+\/void"/g) ?? []).length, 1);
    await admin.get('/admin/vouchers/999999').expect(404);
    await admin.get('/admin/vouchers/abc').expect(404);
  });

  it('voids one code after confirming: its unit back to the manager once; redeemed 409, another batch 404', async () => {
    const batch = await portalBatch(3);
    const other = await portalBatch(1);
    assert.equal(await issued(), 4);
    const [a, b] = await codeRows(batch.id);
    const url = (id: number) => `/admin/vouchers/${batch.id}/codes/${id}/void`;

    const ask = await post(admin, url(a.id));
    assert.equal(ask.status, 200, 'the confirmation page');
    assert.match(ask.text, new RegExp(`…${a.hint}`));
    assert.equal((await codeRows(batch.id))[0].voided_at, null, 'nothing happened yet');

    const res = await post(admin, url(a.id), { confirmed: '1' });
    assert.equal(res.status, 303);
    assert.equal(res.headers.location, `/admin/vouchers/${batch.id}`);
    assert.notEqual((await codeRows(batch.id))[0].voided_at, null);
    assert.equal(await issued(), 3, 'one unit back to the manager who generated the batch');
    const audit = await auditOf(t.db, 'voucher', a.id);
    assert.deepEqual(
      audit.map((e) => [e.action, e.actor]),
      [['voucher.voided', w.admin.id]],
    );
    assert.equal(audit[0]!.after.quotaReturned, true);

    // Again: refused, nothing returned twice.
    const again = await post(admin, url(a.id), { confirmed: '1' });
    assert.equal(again.status, 303);
    assert.match((await admin.get(`/admin/vouchers/${batch.id}`)).text, /void already/);
    assert.equal(await issued(), 3);
    // A redeemed code cannot be voided.
    const redeemedCode = batch.codes.find((c) => c.replace(/-/g, '').endsWith(b.hint))!;
    await redeem(redeemedCode);
    await post(admin, url(b.id), { confirmed: '1' });
    assert.equal((await t.db('vouchers').where({ id: b.id }).first()).voided_at, null);
    assert.equal(await issued(), 3);
    // A code of another batch through this batch's URL: 404, on the question and the action.
    const [foreign] = await codeRows(other.id);
    assert.equal((await post(admin, url(foreign.id))).status, 404);
    assert.equal((await post(admin, url(foreign.id), { confirmed: '1' })).status, 404);
    assert.equal((await t.db('vouchers').where({ id: foreign.id }).first()).voided_at, null);
  });

  it('voids the rest of a batch in one action, expired codes too; the quota comes back exactly once, also when two requests race', async () => {
    // A quota large enough that returning units twice would show (another batch keeps units counted).
    await t.db('manager_quotas').where({ account_id: w.managerAll.id, product_id: w.product }).update({ quota: 1000 });
    try {
      await portalBatch(300);
      const batch = await portalBatch(100);
      assert.equal(await issued(), 400);
      await redeem(batch.codes[0]!);
      const rows = await codeRows(batch.id);
      const redeemedRow = rows.find((r) => r.redeemed_at !== null)!;
      const single = rows.find((r) => r.redeemed_at === null)!;
      await post(admin, `/admin/vouchers/${batch.id}/codes/${single.id}/void`, { confirmed: '1' });
      assert.equal(await issued(), 399);
      // Past its expiry: the codes left are expired, and still voided with their units returned.
      await t
        .db('vouchers')
        .where({ batch_id: batch.id })
        .update({ expires_at: new Date(Date.now() - 60_000) });

      const url = `/admin/vouchers/${batch.id}/void-rest`;
      const page = await admin.get(`/admin/vouchers/${batch.id}`).expect(200);
      assert.ok(page.text.includes(`action="${url}"`));
      assert.match(page.text, /Void the remaining 98 codes/);
      const ask = await post(admin, url);
      assert.equal(ask.status, 200);
      assert.match(ask.text, /Void the 98 unused codes of batch/);
      assert.match(ask.text, /quota of All Perms/);
      assert.equal(await countRows(t.db, 'vouchers', { batch_id: batch.id, voided_at: null }), 99, 'nothing yet');

      const [a, b] = await Promise.all([token(admin), token(secondAdmin)]);
      const race = (agent: Agent, csrf: string) => agent.post(url).type('form').send({ _csrf: csrf, confirmed: '1' });
      const [one, two] = await Promise.all([race(admin, a), race(secondAdmin, b)]);
      assert.deepEqual([one.status, two.status], [303, 303]);
      const after = await codeRows(batch.id);
      assert.equal(after.filter((r) => r.voided_at !== null).length, 99, 'every code but the redeemed one is void');
      assert.equal((await t.db('vouchers').where({ id: redeemedRow.id }).first()).voided_at, null);
      assert.equal(await issued(), 301, 'the 99 voided units back exactly once: 300 + the redeemed one stay counted');
      const events = await t
        .db('audit_events')
        .where({ action: 'voucher.voided', object_type: 'voucher' })
        .whereIn(
          'object_id',
          after.map((r) => String(r.id)),
        );
      assert.equal(events.length, 99, 'one voucher.voided event per code, never two');
      const shown = await admin.get(`/admin/vouchers/${batch.id}`).expect(200);
      assert.match(shown.text, /100 in all · 1 redeemed · 99 voided · 0 expired · 0 open/);
      assert.ok(!shown.text.includes(`action="${url}"`), 'nothing left to void');
      // Once more: nothing to void, nothing returned.
      assert.equal((await post(admin, url, { confirmed: '1' })).status, 303);
      assert.equal(await issued(), 301);
    } finally {
      await t.db('manager_quotas').where({ account_id: w.managerAll.id, product_id: w.product }).update({ quota: 5 });
    }
  });

  it('refuses every new console POST without its CSRF token (403), changing nothing', async () => {
    const batch = await portalBatch(1);
    const [code] = await codeRows(batch.id);
    const before = await countRows(t.db, 'audit_events');
    for (const url of [
      `/admin/orders/${w.orderA}/vouchers`,
      `/admin/orders/${w.orderA}/vouchers/new-codes/dismiss`,
      `/admin/vouchers/${batch.id}/codes/${code.id}/void`,
      `/admin/vouchers/${batch.id}/void-rest`,
    ]) {
      const res = await admin.post(url).type('form').send({ confirmed: '1', policy_id: w.policy, count: 1, days: 1 });
      assert.equal(res.status, 403, url);
    }
    assert.equal(await countRows(t.db, 'audit_events'), before);
    assert.equal((await t.db('vouchers').where({ id: code.id }).first()).voided_at, null);
  });

  it('a manager or an end user gets 404 on every console codes route, GET and POST, and nothing changes', async () => {
    const batch = await portalBatch(1);
    const [code] = await codeRows(batch.id);
    const routes = routeTable(t.app.locals.ctx).filter(
      (r) => r.area === 'admin' && CONSOLE_CODE_ROUTES.includes(`${r.method} ${fullPath(r)}`),
    );
    assert.equal(routes.length, CONSOLE_CODE_ROUTES.length, 'every route is in the route table');
    const before = await countRows(t.db, 'audit_events');
    for (const agent of [manager, endUser]) {
      const csrf = await token(agent);
      for (const r of routes) {
        const url = fullPath(r)
          .replace(':voucherId', String(code.id))
          .replace(':id', String(r.path.startsWith('/vouchers') ? batch.id : w.orderA));
        const res =
          r.method === 'get'
            ? await agent.get(url)
            : await agent
                .post(url)
                .type('form')
                .send({ _csrf: csrf, confirmed: '1', policy_id: w.policy, count: 1, days: 1 });
        assert.equal(res.status, 404, `${r.method} ${url}`);
      }
    }
    assert.equal(await countRows(t.db, 'audit_events'), before);
    assert.equal((await t.db('vouchers').where({ id: code.id }).first()).voided_at, null);
  });
});
