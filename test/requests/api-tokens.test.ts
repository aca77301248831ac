import assert from 'node:assert/strict';
import request from 'supertest';
import { adminAgent, buildTestApp, countRows, csrfFrom, loginAgent, type TestApp } from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import { api } from '../helpers/manage-api.ts';
import { hashApiToken } from '../../app/crypto/api-tokens.ts';

type Agent = Awaited<ReturnType<typeof loginAgent>>;

/** Making and revoking Management API tokens: console API clients and managers' personal tokens. */
describe('API tokens: console and portal pages', () => {
  let t: TestApp;
  let w: Awaited<ReturnType<typeof portalWorld>>;
  let admin: Agent;
  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    admin = (await adminAgent(t)).agent;
  });
  after(() => t.close());

  const csrf = async (agent: Agent, url: string) => csrfFrom((await agent.get(url).expect(200)).text);
  const freshToken = (html: string) => /value="(portico_(?:ak|pat)_[0-9A-Za-z]+)"/.exec(html)?.[1];

  it('an admin makes an API client: the token is shown once, stored only hashed, audited without it', async () => {
    const token = await csrf(admin, '/admin/api-clients/new');
    await admin
      .post('/admin/api-clients')
      .type('form')
      .send({ _csrf: token, name: 'Shop', days: '30', scopes: ['orders:read', 'customers:read'] })
      .expect(303)
      .expect('location', '/admin/api-clients');
    const page = await admin.get('/admin/api-clients').expect(200);
    const secret = freshToken(page.text);
    assert.ok(secret?.startsWith('portico_ak_'), 'the new token is on the page');
    assert.equal(freshToken((await admin.get('/admin/api-clients').expect(200)).text), undefined, 'shown once');
    const row = await t
      .db('api_tokens')
      .where({ token_hash: hashApiToken(secret!) })
      .first();
    assert.equal(row.name, 'Shop');
    assert.ok(!JSON.stringify(row).includes(secret!), 'not stored readable');
    const audit = await t
      .db('audit_events')
      .where({ action: 'api_token.created', object_id: String(row.id) })
      .first();
    assert.ok(audit);
    assert.ok(!JSON.stringify(audit).includes(secret!), 'not in the audit row');
    assert.ok(!JSON.stringify(t.logs).includes(secret!), 'not in the log');
    await api(t, 'get', '/customers', secret).expect(200);
    await api(t, 'get', '/products', secret).expect((r) => assert.ok([403, 404].includes(r.status)));
  });

  it('refuses bad input (422) and a form without its CSRF token (403)', async () => {
    const token = await csrf(admin, '/admin/api-clients/new');
    const bad = await admin
      .post('/admin/api-clients')
      .type('form')
      .send({ _csrf: token, name: '', days: '400' })
      .expect(422);
    assert.match(bad.text, /field-error/);
    await admin
      .post('/admin/api-clients')
      .type('form')
      .send({ name: 'x', days: '1', scopes: 'orders:read' })
      .expect(403);
  });

  it('revoking asks first; confirmed, the token answers 401 token_revoked', async () => {
    const token = await csrf(admin, '/admin/api-clients/new');
    await admin
      .post('/admin/api-clients')
      .type('form')
      .send({ _csrf: token, name: 'Doomed', days: '5', scopes: 'customers:read' })
      .expect(303);
    const secret = freshToken((await admin.get('/admin/api-clients')).text)!;
    const id = Number(
      (
        await t
          .db('api_tokens')
          .where({ token_hash: hashApiToken(secret) })
          .first()
      ).id,
    );
    const listToken = await csrf(admin, '/admin/api-clients');
    const ask = await admin.post(`/admin/api-clients/${id}/revoke`).type('form').send({ _csrf: listToken }).expect(200);
    assert.match(ask.text, /Doomed/);
    await api(t, 'get', '/customers', secret).expect(200);
    await admin
      .post(`/admin/api-clients/${id}/revoke`)
      .type('form')
      .send({ _csrf: csrfFrom(ask.text), confirmed: '1' })
      .expect(303);
    assert.equal((await api(t, 'get', '/customers', secret).expect(401)).body.error.code, 'token_revoked');
    assert.equal(await countRows(t.db, 'audit_events', { action: 'api_token.revoked', object_id: String(id) }), 1);
  });

  it('a manager with manage_api_clients makes a personal token with the non-vendor scopes only', async () => {
    const manager = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    const page = await manager.get('/portal/tokens/new').expect(200);
    assert.doesNotMatch(page.text, /managers:write|products:write/);
    const vendorScope = await manager
      .post('/portal/tokens')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), name: 'Sneaky', days: '5', scopes: 'products:write' })
      .expect(422);
    assert.match(vendorScope.text, /field-error/);
    await manager
      .post('/portal/tokens')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), name: 'CI', days: '5', scopes: ['orders:read'] })
      .expect(303);
    const secret = freshToken((await manager.get('/portal/tokens').expect(200)).text);
    assert.ok(secret?.startsWith('portico_pat_'));
    const mine = await api(t, 'get', '/orders?limit=100', secret).expect(200);
    assert.ok(mine.body.data.every((o: { id: number }) => o.id !== w.orderB));
    await api(t, 'get', `/orders/${w.orderB}`, secret).expect(404);
    const row = await t
      .db('api_tokens')
      .where({ token_hash: hashApiToken(secret!) })
      .first();
    assert.equal(Number(row.owner_account_id), w.managerAll.id);
    assert.equal(row.kind, 'personal');

    // Another manager cannot see or revoke it (404); the console does not list it among API clients.
    const other = await loginAgent(t.app, w.managerB.email, w.managerB.password);
    assert.doesNotMatch((await other.get('/portal/tokens').expect(200)).text, /CI/);
    await other
      .post(`/portal/tokens/${row.id}/revoke`)
      .type('form')
      .send({ _csrf: await csrf(other, '/portal/tokens'), confirmed: '1' })
      .expect(404);
    await admin
      .post(`/admin/api-clients/${row.id}/revoke`)
      .type('form')
      .send({ _csrf: await csrf(admin, '/admin/api-clients'), confirmed: '1' })
      .expect(404);
    await api(t, 'get', '/orders', secret).expect(200);
  });

  it('a manager without manage_api_clients gets 403; an end user 404; a visitor the login page', async () => {
    const none = await loginAgent(t.app, w.managerNone.email, w.managerNone.password);
    await none.get('/portal/tokens').expect(403);
    const endUser = await loginAgent(t.app, w.endUser.email, w.endUser.password);
    await endUser.get('/portal/tokens').expect(404);
    await request(t.app).get('/portal/tokens').expect(303).expect('location', '/login');
  });
});
