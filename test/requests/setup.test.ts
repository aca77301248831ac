import assert from 'node:assert/strict';
import request from 'supertest';
import { buildTestApp, csrfFrom, type TestApp } from '../helpers/app.ts';
import { issueSetupTokenIfNeeded } from '../../app/services/setup.ts';

describe('first run: the one-time setup link', () => {
  let t: TestApp;
  before(async () => {
    t = await buildTestApp();
  });
  after(async () => t.close());

  it('no account exists before the link is used; a newer link voids the older one', async () => {
    assert.equal(Number((await t.db('accounts').count({ n: '*' }).first())!.n), 0);
    const older = await issueSetupTokenIfNeeded(t);
    const token = await issueSetupTokenIfNeeded(t);
    assert.ok(older && token && older !== token);
    await request(t.app).get(`/setup/${older}`).expect(404);
    await request(t.app).get(`/setup/${token}`).expect(200);
  });

  it('validates the form, creates the first admin once, and never again', async () => {
    const token = (await issueSetupTokenIfNeeded(t))!;
    const agent = request.agent(t.app);
    const page = await agent.get(`/setup/${token}`).expect(200);
    const bad = await agent
      .post(`/setup/${token}`)
      .type('form')
      .send({
        _csrf: csrfFrom(page.text),
        name: '',
        email: 'x',
        language: 'en',
        password: 'short',
        password_confirmation: 'short',
      })
      .expect(422);
    assert.match(bad.text, /This field is required/);
    assert.match(bad.text, /Enter a valid e-mail address/);
    assert.equal(Number((await t.db('accounts').count({ n: '*' }).first())!.n), 0);

    await agent
      .post(`/setup/${token}`)
      .type('form')
      .send({
        _csrf: csrfFrom(page.text),
        name: 'Ada Admin',
        email: 'Ada@Vendor.example',
        language: 'en',
        password: 'first admin password',
        password_confirmation: 'first admin password',
      })
      .expect(303)
      .expect('location', '/admin');
    await agent.get('/admin').expect(200);
    const admin = await t.db('accounts').first();
    assert.equal(admin.email, 'ada@vendor.example');
    assert.equal(admin.role, 'admin');
    assert.match(admin.password_hash, /^\$argon2id\$/);
    assert.ok(await t.db('audit_events').where({ action: 'setup.first_admin_created' }).first());

    await request(t.app).get(`/setup/${token}`).expect(404);
    const other = request.agent(t.app);
    const p = await other.get('/login');
    await other
      .post(`/setup/${token}`)
      .type('form')
      .send({
        _csrf: csrfFrom(p.text),
        name: 'Mallory',
        email: 'm@example.com',
        language: 'en',
        password: 'mallory password',
        password_confirmation: 'mallory password',
      })
      .expect(404);
    assert.equal(Number((await t.db('accounts').count({ n: '*' }).first())!.n), 1);
    assert.equal(await issueSetupTokenIfNeeded(t), null, 'no new link once an admin exists');
  });
});
