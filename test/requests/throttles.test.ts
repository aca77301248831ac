import assert from 'node:assert/strict';
import request from 'supertest';
import { generate } from 'otplib';
import {
  adminAgent,
  buildTestApp,
  countRows,
  createAccount,
  csrfFrom,
  loginAgent,
  type TestApp,
} from '../helpers/app.ts';
import { makeDevice } from '../helpers/device.ts';
import * as catalog from '../../app/models/catalog.ts';
import {
  PASSWORD_FAILURES_PER_ACCOUNT,
  PASSWORD_FAILURES_PER_CLIENT,
  PASSWORD_FAILURES_PER_CLIENT_AND_ACCOUNT,
  CODE_FAILURES_PER_CLIENT_AND_ACCOUNT,
} from '../../app/services/throttles.ts';

/**
 * Throttles on typed secrets: counted before they are checked, so bursts check at most the budget
 * (on SQLite and MariaDB alike); limits that slow an attacker without locking the right person out
 * from elsewhere; sessions that end when credentials change.
 */

type Agent = ReturnType<typeof request.agent>;

async function loginForm(agent: Agent, ip: string) {
  const page = await agent.get('/login').set('X-Forwarded-For', ip).expect(200);
  return csrfFrom(page.text);
}

const tally = (values: number[]) =>
  values.reduce<Record<number, number>>((out, v) => {
    out[v] = (out[v] ?? 0) + 1;
    return out;
  }, {});

describe('throttles and sessions', function () {
  this.timeout(120_000);
  let t: TestApp;

  before(async () => {
    t = await buildTestApp({ trustProxy: true });
  });
  after(async () => t.close());

  const failedChecks = (email: string) =>
    t
      .db('audit_events')
      .where({ action: 'auth.login_failed', actor_label: email })
      .count({ n: '*' })
      .first()
      .then((r) => Number(r!.n));

  it('200 simultaneous wrong passwords for one account from one address: at most the budget is checked, the rest get 429', async () => {
    const victim = await createAccount(t.db);
    const agent = request.agent(t.app);
    const token = await loginForm(agent, '198.51.100.10');
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        agent
          .post('/login')
          .set('X-Forwarded-For', '198.51.100.10')
          .type('form')
          .send({ _csrf: token, email: victim.email, password: `wrong ${i}` }),
      ),
    );
    const statuses = tally(answers.map((a) => a.status));
    assert.equal(statuses[429], 200 - PASSWORD_FAILURES_PER_CLIENT_AND_ACCOUNT.limit, JSON.stringify(statuses));
    assert.equal(await failedChecks(victim.email), PASSWORD_FAILURES_PER_CLIENT_AND_ACCOUNT.limit, 'passwords checked');
    assert.equal(
      await countRows(t.db, 'audit_events', { action: 'auth.login_rate_limited', actor_label: victim.email }),
      1,
      'one event for the whole flood',
    );
    // The owner elsewhere is not locked out.
    await loginAgent(t.app, victim.email, victim.password, { 'X-Forwarded-For': '203.0.113.10' });
  });

  it('IPv6 clients are counted by their /64: rotating addresses inside one does not buy fresh guesses', async () => {
    const victim = await createAccount(t.db);
    for (let i = 1; i <= PASSWORD_FAILURES_PER_CLIENT_AND_ACCOUNT.limit; i++) {
      const ip = `2001:db8:77:1::${i.toString(16)}`;
      const agent = request.agent(t.app);
      const token = await loginForm(agent, ip);
      assert.equal(
        (
          await agent
            .post('/login')
            .set('X-Forwarded-For', ip)
            .type('form')
            .send({ _csrf: token, email: victim.email, password: 'wrong' })
        ).status,
        401,
      );
    }
    const same64 = request.agent(t.app);
    const token = await loginForm(same64, '2001:db8:77:1:ffff:ffff:ffff:ffff');
    const refused = await same64
      .post('/login')
      .set('X-Forwarded-For', '2001:db8:77:1:ffff:ffff:ffff:ffff')
      .type('form')
      .send({ _csrf: token, email: victim.email, password: victim.password });
    assert.equal(refused.status, 429, 'another address of the same /64 shares the budget');
    await loginAgent(t.app, victim.email, victim.password, { 'X-Forwarded-For': '2001:db8:77:2::1' });
  });

  it('an address guessing many accounts is slowed down, never walled: the right password from it still signs in', async () => {
    const ip = '198.51.100.20';
    const agent = request.agent(t.app);
    const token = await loginForm(agent, ip);
    for (let i = 0; i < PASSWORD_FAILURES_PER_CLIENT.limit + 2; i++) {
      const res = await agent
        .post('/login')
        .set('X-Forwarded-For', ip)
        .type('form')
        .send({ _csrf: token, email: `nobody${i}@example.com`, password: 'not it at all' });
      assert.equal(res.status, 401, `attempt ${i}: refused, never 429`);
    }
    const colleague = await createAccount(t.db);
    const started = Date.now();
    await loginAgent(t.app, colleague.email, colleague.password, { 'X-Forwarded-For': ip });
    assert.ok(Date.now() - started >= 400, 'past the budget an attempt waits');
  });

  it('an account guessed from many addresses: the ceiling refuses more guesses and mails the owner a link that lifts it', async () => {
    const victim = await createAccount(t.db);
    for (let i = 0; i < PASSWORD_FAILURES_PER_ACCOUNT.limit; i++) {
      const agent = request.agent(t.app);
      const ip = `10.77.${Math.floor(i / 250)}.${i % 250}`;
      const token = await loginForm(agent, ip);
      const res = await agent
        .post('/login')
        .set('X-Forwarded-For', ip)
        .type('form')
        .send({ _csrf: token, email: victim.email, password: `guess ${i}` });
      assert.equal(res.status, 401);
    }
    const agent = request.agent(t.app);
    const token = await loginForm(agent, '10.78.0.1');
    const over = await agent
      .post('/login')
      .set('X-Forwarded-For', '10.78.0.1')
      .type('form')
      .send({ _csrf: token, email: victim.email, password: victim.password });
    assert.equal(over.status, 429, 'the ceiling holds, the right password included');
    assert.equal(await failedChecks(victim.email), PASSWORD_FAILURES_PER_ACCOUNT.limit);
    const mail = await t.db('mail_outbox').where({ to_address: victim.email }).orderBy('id', 'desc').first();
    assert.ok(mail, 'the owner is told');
    const link = /\/login\/unlock\/[\w-]+/.exec(mail.text_body)![0]!;
    const page = await request.agent(t.app).get(link).expect(200);
    const owner = request.agent(t.app);
    const unlockPage = await owner.get(link).expect(200);
    assert.match(page.text, /Resume signing in/);
    await owner
      .post(link)
      .type('form')
      .send({ _csrf: csrfFrom(unlockPage.text) })
      .expect(303);
    await owner
      .post(link)
      .type('form')
      .send({ _csrf: csrfFrom(unlockPage.text) })
      .expect(410);
    await loginAgent(t.app, victim.email, victim.password, { 'X-Forwarded-For': '10.78.0.2' });
    assert.ok(await countRows(t.db, 'audit_events', { action: 'auth.account_unlocked' }));
    assert.ok(!JSON.stringify(t.logs).includes(link.split('/').pop()!), 'the unlock token never reaches the logs');
  });

  it('end-user credentials in the License API take the same throttled check: a burst checks at most the budget', async () => {
    const now = t.clock.now();
    const product = await catalog.insertProduct(
      t.db,
      { name: 'Seats', code: 'seats', authorizationMethod: 'user' },
      now,
    );
    const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Initech' }, now);
    const order = await catalog.insertOrder(t.db, { orderRef: 'THR-1', customerId: customer }, now);
    const licenseId = await catalog.insertLicense(
      t.db,
      {
        orderId: order,
        productId: product,
        policyId: null,
        licenseKey: null,
        entitlements: { ...catalog.DEFAULT_ENTITLEMENTS },
        startDate: now,
      },
      now,
    );
    const user = await createAccount(t.db, { role: 'end_user' });
    await t
      .db('license_user_assignments')
      .insert({ license_id: licenseId, account_id: user.id, max_activations: 1, times_activated: 0, created_at: now });
    const device = makeDevice();
    const call = (password: string, ip: string) =>
      request(t.app)
        .post('/api/v1/activate')
        .set('X-Forwarded-For', ip)
        .send({
          request: device.activationRequest({ product: 'seats', user: user.email }).text,
          user: { email: user.email, password },
        });
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => call(`wrong ${i}`, '198.51.100.30')));
    assert.deepEqual(tally(answers.map((a) => a.status)), {
      401: PASSWORD_FAILURES_PER_CLIENT_AND_ACCOUNT.limit,
      429: 40 - PASSWORD_FAILURES_PER_CLIENT_AND_ACCOUNT.limit,
    });
    assert.ok(
      answers
        .filter((a) => a.status === 429)
        .every((a) => a.body.error.code === 'rate_limited' && a.headers['retry-after']),
    );
    assert.equal(await failedChecks(user.email), PASSWORD_FAILURES_PER_CLIENT_AND_ACCOUNT.limit);
    // An unknown address is refused the same way (and, with a dummy hash, as slowly).
    const unknown = await request(t.app)
      .post('/api/v1/activate')
      .set('X-Forwarded-For', '198.51.100.31')
      .send({
        request: device.activationRequest({ product: 'seats', user: 'nobody@example.com' }).text,
        user: { email: 'nobody@example.com', password: 'x' },
      });
    assert.equal(unknown.status, 401);
    assert.equal(unknown.body.error.code, 'user_credentials');
    // From another address the right password works.
    assert.equal((await call(user.password, '203.0.113.31')).status, 200);
  });

  it('50 simultaneous wrong second-factor codes: at most the budget is checked', async () => {
    const account = await createAccount(t.db);
    const agent = await loginAgent(t.app, account.email, account.password, { 'X-Forwarded-For': '198.51.100.40' });
    const settings = await agent.get('/account/two-factor').expect(200);
    await agent
      .post('/account/two-factor/setup')
      .type('form')
      .send({ _csrf: csrfFrom(settings.text) })
      .expect(303);
    const page = await agent.get('/account/two-factor').expect(200);
    const secret = /<p class="one-time"><code>([A-Z2-7 ]+)<\/code><\/p>/.exec(page.text)![1]!.replace(/ /g, '');
    const right = await generate({ secret, epoch: Math.floor(t.clock.now().getTime() / 1000) });
    const wrong = String((Number(right) + 1) % 1_000_000).padStart(6, '0');
    // Enrolment confirms are not throttled (the secret is on the user's own screen); once it is on,
    // every code on the disable form counts.
    await agent
      .post('/account/two-factor/confirm')
      .set('X-Forwarded-For', '198.51.100.40')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), code: right })
      .expect(200);
    const disable = await agent.get('/account/two-factor/disable').set('X-Forwarded-For', '198.51.100.40').expect(200);
    const burst = await Promise.all(
      Array.from({ length: 50 }, () =>
        agent
          .post('/account/two-factor/disable')
          .set('X-Forwarded-For', '198.51.100.40')
          .type('form')
          .send({ _csrf: csrfFrom(disable.text), current_password: account.password, code: wrong }),
      ),
    );
    assert.equal(burst.filter((r) => r.status === 429).length, 50 - CODE_FAILURES_PER_CLIENT_AND_ACCOUNT.limit);
    assert.equal(
      await countRows(t.db, 'audit_events', { action: 'auth.two_factor_failed', actor_account_id: account.id }),
      CODE_FAILURES_PER_CLIENT_AND_ACCOUNT.limit,
      'codes checked',
    );
  });

  it('a password change ends every other session of the account and renews the one that made it; the account page lists sessions', async () => {
    const account = await createAccount(t.db);
    const here = await loginAgent(t.app, account.email, account.password, {
      'X-Forwarded-For': '203.0.113.50',
      'User-Agent': 'Here/1.0',
    });
    const there = await loginAgent(t.app, account.email, account.password, {
      'X-Forwarded-For': '203.0.113.51',
      'User-Agent': 'There/2.0',
    });
    // Where a session comes from is noted on its first page after the login.
    await there.get('/account').set({ 'X-Forwarded-For': '203.0.113.51', 'User-Agent': 'There/2.0' }).expect(200);
    const page = await here
      .get('/account')
      .set({ 'X-Forwarded-For': '203.0.113.50', 'User-Agent': 'Here/1.0' })
      .expect(200);
    assert.match(page.text, /Here\/1\.0[^<]*<strong>\(this browser\)/);
    assert.match(page.text, /There\/2\.0/);
    assert.match(page.text, /203\.0\.113\.51/);

    const form = await here.get('/account/password').expect(200);
    const changed = await here
      .post('/account/password')
      .type('form')
      .send({
        _csrf: csrfFrom(form.text),
        current_password: account.password,
        password: 'a brand new passphrase 42',
        password_confirmation: 'a brand new passphrase 42',
      });
    assert.equal(changed.status, 303);
    assert.ok(
      ([] as string[]).concat(changed.headers['set-cookie'] ?? []).some((c) => c.includes('.sid=')),
      'the session that made the change got a new id',
    );
    await here.get('/account').expect(200);
    await there
      .get('/account')
      .expect(303)
      .expect('location', /\/login/);
  });

  it('"sign out everywhere else", a reset link, a one-time password and a disabled account end sessions too', async () => {
    const account = await createAccount(t.db);
    const a = await loginAgent(t.app, account.email, account.password);
    const b = await loginAgent(t.app, account.email, account.password);
    const page = await a.get('/account').expect(200);
    await a
      .post('/account/sessions/end')
      .type('form')
      .send({ _csrf: csrfFrom(page.text) })
      .expect(303);
    await b.get('/account').expect(303);
    await a.get('/account').expect(200);
    assert.ok(
      await countRows(t.db, 'audit_events', { action: 'account.sessions_ended', object_id: String(account.id) }),
    );

    const c = await loginAgent(t.app, account.email, account.password);
    const forgot = await request.agent(t.app).get('/password/forgot').expect(200);
    await request(t.app)
      .post('/password/forgot')
      .set(
        'Cookie',
        ([] as string[])
          .concat(forgot.headers['set-cookie'] ?? [])
          .map((x) => x.split(';')[0])
          .join('; '),
      )
      .type('form')
      .send({ _csrf: csrfFrom(forgot.text), email: account.email });
    const mail = await t.db('mail_outbox').where({ to_address: account.email }).orderBy('id', 'desc').first();
    const link = /\/password\/reset\/[\w-]+/.exec(mail.text_body)![0]!;
    const reset = request.agent(t.app);
    const resetPage = await reset.get(link).expect(200);
    await reset
      .post(link)
      .type('form')
      .send({
        _csrf: csrfFrom(resetPage.text),
        password: 'reset to this passphrase 7',
        password_confirmation: 'reset to this passphrase 7',
      })
      .expect(303);
    await a.get('/account').expect(303);
    await c.get('/account').expect(303);

    const admin = (await adminAgent(t)).agent;
    const endUser = await createAccount(t.db, { role: 'end_user' });
    const signedIn = await loginAgent(t.app, endUser.email, endUser.password);
    await signedIn.get('/portal').expect(200);
    const userPage = await admin.get(`/admin/license-users/${endUser.id}`).expect(200);
    assert.equal(
      (
        await admin
          .post(`/admin/license-users/${endUser.id}/password`)
          .type('form')
          .send({ _csrf: csrfFrom(userPage.text), credentials: 'password' })
      ).status,
      200,
      'a one-time password is shown',
    );
    await signedIn.get('/portal').expect(303);

    const manager = await createAccount(t.db, { role: 'manager' });
    const m = await loginAgent(t.app, manager.email, manager.password);
    const edit = await admin.get(`/admin/managers/${manager.id}`).expect(200);
    const res = await admin
      .post(`/admin/managers/${manager.id}`)
      .type('form')
      .send({ _csrf: csrfFrom(edit.text), name: 'Gone', language: 'en', disabled: 'on' });
    assert.equal(res.status, 303);
    assert.equal(await countRows(t.db, 'sessions', { account_id: manager.id }), 0, 'no session row is left');
    await m.get('/portal').expect(303);
  });

  it('the console shows and clears the counters of an address and an account (admins only, audited)', async () => {
    const victim = await createAccount(t.db);
    const agent = request.agent(t.app);
    const token = await loginForm(agent, '198.51.100.60');
    for (let i = 0; i < 6; i++)
      await agent
        .post('/login')
        .set('X-Forwarded-For', '198.51.100.60')
        .type('form')
        .send({ _csrf: token, email: victim.email, password: 'nope' });
    const admin = (await adminAgent(t)).agent;
    const shown = await admin
      .get(`/admin/throttles?email=${encodeURIComponent(victim.email)}&ip=198.51.100.60`)
      .expect(200);
    assert.match(shown.text, /6 \/ 5 <strong>\(limit reached\)/);
    await admin
      .post('/admin/throttles/clear')
      .type('form')
      .send({ _csrf: csrfFrom(shown.text), email: victim.email, ip: '198.51.100.60' })
      .expect(303);
    assert.doesNotMatch(
      (await admin.get(`/admin/throttles?email=${encodeURIComponent(victim.email)}&ip=198.51.100.60`).expect(200)).text,
      /limit reached/,
    );
    await loginAgent(t.app, victim.email, victim.password, { 'X-Forwarded-For': '198.51.100.60' });
    assert.ok(await countRows(t.db, 'audit_events', { action: 'security.throttles_cleared' }));
    const manager = await createAccount(t.db, { role: 'manager' });
    await (await loginAgent(t.app, manager.email, manager.password)).get('/admin/throttles').expect(404);
    assert.equal((await admin.get('/admin/throttles?ip=not-an-address').expect(422)).status, 422);
  });
});
