import assert from 'node:assert/strict';
import request from 'supertest';
import { buildTestApp, createAccount, csrfFrom, loginAgent, type TestApp } from '../helpers/app.ts';
import { routeTable, fullPath } from '../../app/routes.ts';

/** Every console URL from the route table, with its parameters filled in. */
function consoleUrls(t: TestApp) {
  return routeTable(t.app.locals.ctx)
    .filter((r) => r.area === 'admin')
    .map((r) => ({ method: r.method, url: fullPath(r).replace(/:(\w+)/g, '1') }));
}

describe('console access: only admins, everyone else 404', () => {
  let t: TestApp;
  before(async () => {
    t = await buildTestApp();
  });
  after(async () => t.close());

  it('the route table has console routes to check', () => {
    assert.ok(consoleUrls(t).length > 40);
    // Redeemable codes (controllers/admin/vouchers.ts): every page and action is in the matrix.
    const listed = consoleUrls(t).map((r) => `${r.method} ${r.url}`);
    for (const route of [
      'get /admin/vouchers',
      'get /admin/vouchers/1',
      'post /admin/vouchers/1/codes/1/void',
      'post /admin/vouchers/1/void-rest',
      'get /admin/orders/1/vouchers',
      'post /admin/orders/1/vouchers',
      'get /admin/orders/1/vouchers/new-codes.csv',
      'get /admin/orders/1/vouchers/new-codes/print',
      'post /admin/orders/1/vouchers/new-codes/dismiss',
    ])
      assert.ok(listed.includes(route), route);
  });

  for (const role of ['manager', 'end_user'] as const) {
    it(`a ${role} gets 404 on every console URL, GET and POST (with a valid CSRF token), and nothing changes`, async () => {
      const account = await createAccount(t.db, { role });
      const agent = await loginAgent(t.app, account.email, account.password);
      const token = csrfFrom((await agent.get('/account').expect(200)).text);
      const auditBefore = Number((await t.db('audit_events').count({ n: '*' }).first())!.n);
      for (const { method, url } of consoleUrls(t)) {
        const res =
          method === 'get'
            ? await agent.get(url)
            : await agent.post(url).type('form').send({ _csrf: token, name: 'x' });
        assert.equal(res.status, 404, `${method.toUpperCase()} ${url} as ${role}`);
      }
      const auditAfter = Number((await t.db('audit_events').count({ n: '*' }).first())!.n);
      assert.equal(auditAfter, auditBefore, 'no change was recorded');
    });
  }

  it('anonymous visitors are sent to the login page (GET) or refused (POST without a token)', async () => {
    for (const { method, url } of consoleUrls(t)) {
      if (method === 'get') await request(t.app).get(url).expect(303).expect('location', '/login');
      else await request(t.app).post(url).type('form').send({}).expect(403);
    }
  });

  it('an admin without a CSRF token is refused (403) on every console POST', async () => {
    const admin = await createAccount(t.db, { role: 'admin' });
    const agent = await loginAgent(t.app, admin.email, admin.password);
    for (const { url } of consoleUrls(t).filter((r) => r.method === 'post')) {
      const res = await agent.post(url).type('form').send({ name: 'x' });
      assert.equal(res.status, 403, `POST ${url}`);
    }
  });
});
