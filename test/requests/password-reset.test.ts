import assert from 'node:assert/strict';
import request from 'supertest';
import {
  adminAgent,
  buildTestApp,
  createAccount,
  csrfFrom,
  loginAgent,
  submitForm,
  type TestApp,
} from '../helpers/app.ts';

async function askForReset(t: TestApp, email: string, agent = request.agent(t.app)) {
  const page = await agent.get('/password/forgot').expect(200);
  return agent
    .post('/password/forgot')
    .type('form')
    .send({ _csrf: csrfFrom(page.text), email });
}

async function lastMailTo(t: TestApp, to: string) {
  return t.db('mail_outbox').where({ to_address: to }).orderBy('id', 'desc').first();
}

const linkIn = (text: string) => /http:\/\/portico\.test(\/password\/reset\/[\w-]+)/.exec(text)![1]!;

describe('forgot password and reset link', () => {
  let t: TestApp;
  before(async () => {
    t = await buildTestApp();
  });
  after(async () => t.close());

  it('answers the same for known and unknown addresses; only the known one gets a mail', async () => {
    const { email } = await createAccount(t.db, { language: 'de' });
    const known = await askForReset(t, email);
    const unknown = await askForReset(t, 'stranger@example.com');
    assert.equal(known.status, 303);
    assert.equal(unknown.status, 303);
    assert.equal(known.headers.location, unknown.headers.location);
    const mail = await lastMailTo(t, email);
    assert.ok(mail, 'the mail went to the outbox (no SMTP configured)');
    assert.equal(mail.reason, 'no_smtp');
    assert.match(mail.text_body, /\/password\/reset\//);
    assert.equal(await lastMailTo(t, 'stranger@example.com'), undefined);
    const token = linkIn(mail.text_body).split('/').pop()!;
    const stored = await t.db('password_reset_tokens').first();
    assert.notEqual(stored.token_hash, token, 'only a hash of the token is stored');
  });

  it('validates the address (422 with a field error)', async () => {
    const res = await askForReset(t, 'no at sign');
    assert.equal(res.status, 422);
    assert.match(res.text, /Enter a valid e-mail address/);
  });

  it('sets a new password through the link, exactly once', async () => {
    const { email, id } = await createAccount(t.db);
    await askForReset(t, email);
    const link = linkIn((await lastMailTo(t, email)).text_body);
    const agent = request.agent(t.app);
    const form = await agent.get(link).expect(200);
    assert.equal(form.headers['referrer-policy'], 'no-referrer');
    const short = await agent
      .post(link)
      .type('form')
      .send({ _csrf: csrfFrom(form.text), password: 'short', password_confirmation: 'short' })
      .expect(422);
    assert.match(short.text, /at least 10 characters/);
    await agent
      .post(link)
      .type('form')
      .send({ _csrf: csrfFrom(form.text), password: 'my new password 1', password_confirmation: 'my new password 1' })
      .expect(303)
      .expect('location', '/login');
    await loginAgent(t.app, email, 'my new password 1');

    const again = await agent.get(link).expect(410);
    assert.match(again.text, /invalid, has already been used or has expired/);
    await agent
      .post(link)
      .type('form')
      .send({ _csrf: csrfFrom(form.text), password: 'another password 2', password_confirmation: 'another password 2' })
      .expect(410);
    await loginAgent(t.app, email, 'my new password 1');
    const actions = (
      await t
        .db('audit_events')
        .where({ object_id: String(id) })
        .select('action')
    ).map((r: { action: string }) => r.action);
    assert.ok(actions.includes('auth.password_reset_requested'));
    assert.ok(actions.includes('account.password_reset'));
  });

  it('expires after 60 minutes', async () => {
    const { email } = await createAccount(t.db);
    await askForReset(t, email);
    const link = linkIn((await lastMailTo(t, email)).text_body);
    t.clock.advance(59 * 60_000);
    await request(t.app).get(link).expect(200);
    t.clock.advance(2 * 60_000);
    await request(t.app).get(link).expect(410);
  });

  it('a newer link or a password change voids older links', async () => {
    const { email, password } = await createAccount(t.db);
    await askForReset(t, email);
    const first = linkIn((await lastMailTo(t, email)).text_body);
    const agent = await loginAgent(t.app, email, password);
    const form = await agent.get('/account/password');
    await agent
      .post('/account/password')
      .type('form')
      .send({
        _csrf: csrfFrom(form.text),
        current_password: password,
        password: 'changed password 9',
        password_confirmation: 'changed password 9',
      })
      .expect(303);
    await request(t.app).get(first).expect(410);
  });

  it('rate-limits reset requests per address with 429 and Retry-After', async () => {
    const { email } = await createAccount(t.db);
    const agent = request.agent(t.app);
    for (let i = 0; i < 3; i++) assert.equal((await askForReset(t, email, agent)).status, 303);
    const limited = await askForReset(t, email, agent);
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers['retry-after']) > 0);
    assert.equal(
      await t
        .db('mail_outbox')
        .where({ to_address: email })
        .count({ n: '*' })
        .first()
        .then((r) => Number(r!.n)),
      3,
    );
  });

  it('an invitation link: choosing the first password signs the person in and welcomes them; the link then is 410', async () => {
    const { agent } = await adminAgent(t);
    await submitForm(agent, '/admin/managers/new', '/admin/managers', {
      email: 'welcome@reseller.example',
      name: 'Wanda',
      language: 'de',
    }).then((r) => assert.equal(r.status, 303));
    const link = linkIn((await lastMailTo(t, 'welcome@reseller.example')).text_body);
    const guest = request.agent(t.app);
    const form = await guest.get(link).expect(200);
    assert.match(form.text, /Welcome: choose your password/);
    assert.match(form.text, /Save and sign in/);
    // A password the rules refuse: the welcome form again, nothing changed.
    const weak = await guest
      .post(link)
      .type('form')
      .send({ _csrf: csrfFrom(form.text), password: 'short', password_confirmation: 'short' });
    assert.equal(weak.status, 422);
    assert.match(weak.text, /Welcome: choose your password/);
    const done = await guest
      .post(link)
      .type('form')
      .send({ _csrf: csrfFrom(weak.text), password: 'wanda chose this', password_confirmation: 'wanda chose this' });
    assert.equal(done.status, 303);
    assert.equal(done.headers.location, '/portal');
    // From now on in the account's language (German), the welcome too.
    const portal = await guest.get('/portal').expect(200);
    assert.match(portal.text, /Willkommen, Wanda: Ihr Passwort ist festgelegt und Sie sind angemeldet/);
    const account = await t.db('accounts').where({ email: 'welcome@reseller.example' }).first();
    assert.ok(account.last_login_at, 'the sign-in is recorded like any other');
    const login = await t
      .db('audit_events')
      .where({ action: 'auth.login', object_id: String(account.id) })
      .first();
    assert.deepEqual(JSON.parse(login.after_state), { via: 'invitation' });
    await request(t.app).get(link).expect(410);
  });

  it('a forgotten-password link does not sign in: the person logs in with the new password', async () => {
    const { email } = await createAccount(t.db);
    await askForReset(t, email);
    const link = linkIn((await lastMailTo(t, email)).text_body);
    const guest = request.agent(t.app);
    const form = await guest.get(link).expect(200);
    assert.doesNotMatch(form.text, /Welcome/);
    const done = await guest
      .post(link)
      .type('form')
      .send({
        _csrf: csrfFrom(form.text),
        password: 'a brand new secret',
        password_confirmation: 'a brand new secret',
      });
    assert.equal(done.status, 303);
    assert.equal(done.headers.location, '/login');
    assert.equal((await guest.get('/portal')).status, 303, 'not signed in');
  });

  it('an unknown token is a 410 page, not an error', async () => {
    await request(t.app).get('/password/reset/not-a-real-token').expect(410);
  });
});
