import assert from 'node:assert/strict';
import request from 'supertest';
import {
  buildTestApp,
  createAccount,
  csrfFrom,
  loginAgent,
  submitForm,
  auditActions,
  type TestApp,
} from '../helpers/app.ts';

const sessionCookie = (res: request.Response) =>
  ([] as string[])
    .concat(res.headers['set-cookie'] ?? [])
    .find((c) => c.startsWith('portico.sid='))
    ?.split(';')[0];

describe('accounts: login, logout, passwords, language', () => {
  let t: TestApp;
  before(async () => {
    t = await buildTestApp();
  });
  after(async () => t.close());

  it('shows the login page with a CSRF-protected form', async () => {
    const res = await request(t.app).get('/login').expect(200);
    assert.match(res.text, /<form method="post" action="\/login"/);
    assert.match(res.text, /name="_csrf"/);
    assert.match(res.text, /<label for="field-email">/);
    assert.match(res.headers['content-security-policy']!, /script-src 'self'/);
  });

  it('refuses a form without or with a wrong CSRF token (403) and logs nobody in', async () => {
    const { email, password } = await createAccount(t.db);
    const agent = request.agent(t.app);
    await agent.get('/login').expect(200);
    const missing = await agent.post('/login').type('form').send({ email, password }).expect(403);
    assert.match(missing.text, /This form has expired/);
    await agent.post('/login').type('form').send({ _csrf: 'forged', email, password }).expect(403);
    const actions = await auditActions(t.db);
    assert.ok(!actions.includes('auth.login'));
  });

  it('logs in, changes the session id, audits it, and logs out', async () => {
    const { email, password, id } = await createAccount(t.db, { role: 'manager' });
    const agent = request.agent(t.app);
    const page = await agent.get('/login').expect(200);
    const before = sessionCookie(page);
    assert.ok(before, 'an anonymous session exists for the CSRF token');
    const res = await agent
      .post('/login')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email: email.toUpperCase(), password })
      .expect(303);
    assert.equal(res.headers.location, '/portal');
    const after = sessionCookie(res);
    assert.ok(after && after !== before, 'the session cookie changes at login');
    const dash = await agent.get('/portal').expect(200);
    assert.match(dash.text, /Your orders/);
    const event = await t.db('audit_events').where({ action: 'auth.login', actor_account_id: id }).first();
    assert.ok(event, 'login audited');
    assert.ok(event.ip, 'with the client address');
    assert.ok(event.request_id, 'and the request id');

    const out = await agent
      .post('/logout')
      .type('form')
      .send({ _csrf: csrfFrom(dash.text) })
      .expect(303);
    assert.equal(out.headers.location, '/login');
    await agent.get('/portal').expect(303).expect('location', '/login');
    assert.ok(await t.db('audit_events').where({ action: 'auth.logout', actor_account_id: id }).first());
  });

  it('rejects wrong credentials with one message for unknown and known e-mails, audited', async () => {
    const { email } = await createAccount(t.db);
    for (const address of [email, 'nobody@example.com']) {
      const agent = request.agent(t.app);
      const page = await agent.get('/login');
      const res = await agent
        .post('/login')
        .type('form')
        .send({ _csrf: csrfFrom(page.text), email: address, password: 'wrong password!' })
        .expect(401);
      assert.match(res.text, /The e-mail address or password is not correct/);
      assert.match(res.text, new RegExp(`value="${address}"`), 'the e-mail stays filled in');
    }
    const failures = await t.db('audit_events').where({ action: 'auth.login_failed' }).select('after_state');
    assert.ok(failures.some((f: { after_state: string }) => JSON.parse(f.after_state).reason === 'unknown_email'));
    assert.ok(failures.some((f: { after_state: string }) => JSON.parse(f.after_state).reason === 'wrong_password'));
  });

  it('re-renders the form with 422 and field errors for bad input', async () => {
    const agent = request.agent(t.app);
    const page = await agent.get('/login');
    const res = await agent
      .post('/login')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email: 'not-an-address', password: '' })
      .expect(422);
    assert.match(res.text, /Enter a valid e-mail address/);
    assert.match(res.text, /aria-invalid="true"/);
  });

  it('answers 429 with Retry-After after repeated failures, without locking the account for others', async () => {
    const { email, password } = await createAccount(t.db);
    const attacker = request.agent(t.app);
    const page = await attacker.get('/login');
    const token = csrfFrom(page.text);
    for (let i = 0; i < 5; i++) {
      await attacker
        .post('/login')
        .type('form')
        .set('X-Forwarded-For', '203.0.113.9')
        .send({ _csrf: token, email, password: `wrong-${i}-password` })
        .expect(401);
    }
    const blocked = await attacker.post('/login').type('form').send({ _csrf: token, email, password }).expect(429);
    assert.ok(Number(blocked.headers['retry-after']) > 0);
    assert.match(blocked.text, /Too many failed attempts/);
    assert.ok(await t.db('audit_events').where({ action: 'auth.login_rate_limited' }).first());

    // The account itself stays usable from another address (seen through a trusted proxy here).
    const proxied = await buildTestApp({ trustProxy: true });
    try {
      const victim = await createAccount(proxied.db);
      const bad = request.agent(proxied.app);
      const p = await bad.get('/login');
      for (let i = 0; i < 6; i++) {
        await bad
          .post('/login')
          .set('X-Forwarded-For', '198.51.100.7')
          .type('form')
          .send({ _csrf: csrfFrom(p.text), email: victim.email, password: 'guess-guess-guess' });
      }
      await bad
        .post('/login')
        .set('X-Forwarded-For', '198.51.100.7')
        .type('form')
        .send({ _csrf: csrfFrom(p.text), email: victim.email, password: victim.password })
        .expect(429);
      await loginAgent(proxied.app, victim.email, victim.password, { 'X-Forwarded-For': '192.0.2.44' });
    } finally {
      await proxied.close();
    }
  });

  it('after the window passes, the client may try again', async () => {
    const { email, password } = await createAccount(t.db);
    const agent = request.agent(t.app);
    const page = await agent.get('/login');
    for (let i = 0; i < 5; i++)
      await agent
        .post('/login')
        .type('form')
        .send({ _csrf: csrfFrom(page.text), email, password: 'nope-nope-nope' });
    await agent
      .post('/login')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email, password })
      .expect(429);
    t.clock.advance(16 * 60_000);
    await agent
      .post('/login')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email, password })
      .expect(303);
  });

  it('forces an initial password to be changed before anything else', async () => {
    const { email, password, id } = await createAccount(t.db, { mustChangePassword: true });
    const agent = request.agent(t.app);
    const page = await agent.get('/login');
    await agent
      .post('/login')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email, password })
      .expect(303)
      .expect('location', '/account/password');
    await agent.get('/portal').expect(303).expect('location', '/account/password');
    await agent.get('/account').expect(303).expect('location', '/account/password');
    const form = await agent.get('/account/password').expect(200);
    assert.match(form.text, /Please choose your own password/);
    const same = await agent
      .post('/account/password')
      .type('form')
      .send({ _csrf: csrfFrom(form.text), current_password: password, password, password_confirmation: password })
      .expect(422);
    assert.match(same.text, /different from the current one/);
    const next = 'a brand new secret 42';
    await agent
      .post('/account/password')
      .type('form')
      .send({ _csrf: csrfFrom(form.text), current_password: password, password: next, password_confirmation: next })
      .expect(303)
      .expect('location', '/portal');
    await agent.get('/portal').expect(200);
    const row = await t.db('accounts').where({ id }).first();
    assert.ok(!row.must_change_password);
    assert.ok(
      await t
        .db('audit_events')
        .where({ action: 'account.initial_password_changed', object_id: String(id) })
        .first(),
    );
    await loginAgent(t.app, email, next);
  });

  it('changes the own password only with the current one', async () => {
    const { email, password, id } = await createAccount(t.db);
    const agent = await loginAgent(t.app, email, password);
    const wrong = await submitForm(agent, '/account/password', '/account/password', {
      current_password: 'not it at all',
      password: 'another secret 123',
      password_confirmation: 'another secret 123',
    });
    assert.equal(wrong.status, 422);
    assert.match(wrong.text, /The current password is not correct/);
    const mismatch = await submitForm(agent, '/account/password', '/account/password', {
      current_password: password,
      password: 'another secret 123',
      password_confirmation: 'another secret 124',
    });
    assert.equal(mismatch.status, 422);
    assert.match(mismatch.text, /do not match/);
    const ok = await submitForm(agent, '/account/password', '/account/password', {
      current_password: password,
      password: 'another secret 123',
      password_confirmation: 'another secret 123',
    });
    assert.equal(ok.status, 303);
    const audit = await t
      .db('audit_events')
      .where({ action: 'account.password_changed', object_id: String(id) })
      .first();
    assert.ok(audit);
    assert.doesNotMatch(JSON.stringify(audit), /another secret/);
  });

  it('saves name and language; the language follows the account', async () => {
    const { email, password, id } = await createAccount(t.db);
    const agent = await loginAgent(t.app, email, password);
    const bad = await submitForm(agent, '/account', '/account', { name: '', language: 'xx' });
    assert.equal(bad.status, 422);
    const ok = await submitForm(agent, '/account', '/account', { name: 'Renée Müller', language: 'de' });
    assert.equal(ok.status, 303);
    const page = await agent.get('/account').expect(200);
    assert.match(page.text, /<html lang="de">/);
    assert.match(page.text, /Renée Müller/);
    const audit = await t
      .db('audit_events')
      .where({ action: 'account.profile_updated', object_id: String(id) })
      .first();
    assert.deepEqual(JSON.parse(audit.after_state), { name: 'Renée Müller', language: 'de' });
  });

  it('picks the language from Accept-Language, and the switcher overrides it', async () => {
    const agent = request.agent(t.app);
    const fr = await agent.get('/login').set('Accept-Language', 'fr-CH, fr;q=0.9, en;q=0.5').expect(200);
    assert.match(fr.text, /<html lang="fr">/);
    await agent
      .post('/language')
      .type('form')
      .send({ _csrf: csrfFrom(fr.text), language: 'es', return_to: '/login' })
      .expect(303)
      .expect('location', '/login');
    const es = await agent.get('/login').set('Accept-Language', 'fr').expect(200);
    assert.match(es.text, /<html lang="es">/);
    const evil = await agent
      .post('/language')
      .type('form')
      .send({ _csrf: csrfFrom(es.text), language: 'de', return_to: '//evil.example/' })
      .expect(303);
    assert.equal(evil.headers.location, '/');
  });

  it('sends anonymous visitors to the login page and back where they were going', async () => {
    const { email, password } = await createAccount(t.db);
    const agent = request.agent(t.app);
    await agent.get('/account').expect(303).expect('location', '/login');
    const page = await agent.get('/login');
    await agent
      .post('/login')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email, password })
      .expect(303)
      .expect('location', '/account');
  });
});
