import assert from 'node:assert/strict';
import request from 'supertest';
import { generate } from 'otplib';
import { notificationFields } from '../helpers/settings.ts';
import {
  buildTestApp,
  createAccount,
  csrfFrom,
  loginAgent,
  submitForm,
  adminAgent,
  countRows,
  type TestApp,
} from '../helpers/app.ts';

type Agent = ReturnType<typeof request.agent>;

const sessionCookie = (res: request.Response) =>
  ([] as string[])
    .concat(res.headers['set-cookie'] ?? [])
    .find((c) => c.startsWith('portico.sid='))
    ?.split(';')[0];

/** The code an authenticator app shows for `secret` at `at` (the app's own clock is the test clock). */
const codeAt = (secret: string, at: Date) => generate({ secret, epoch: Math.floor(at.getTime() / 1000) });

const STEP_MS = 30_000;

describe('accounts: TOTP second factor', () => {
  let t: TestApp;
  /** Every secret an enrolment showed: none may reach a log line, an audit row or the database in clear. */
  const secretsShown: string[] = [];

  before(async () => {
    t = await buildTestApp();
  });
  after(async () => t.close());

  /** The next 30-second step: a code from the step before has been used already. */
  const nextStep = () => t.clock.advance(STEP_MS);

  /** Enrols through the pages, with the code computed from the secret shown on the page. */
  async function enrol(agent: Agent) {
    const settings = await agent.get('/account/two-factor').expect(200);
    await agent
      .post('/account/two-factor/setup')
      .type('form')
      .send({ _csrf: csrfFrom(settings.text) })
      .expect(303)
      .expect('location', '/account/two-factor');
    const page = await agent.get('/account/two-factor').expect(200);
    const secret = /<p class="one-time"><code>([A-Z2-7 ]+)<\/code><\/p>/.exec(page.text)![1]!.replace(/ /g, '');
    secretsShown.push(secret);
    const res = await agent
      .post('/account/two-factor/confirm')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), code: await codeAt(secret, t.clock.now()) })
      .expect(200);
    const recoveryCodes = [...res.text.matchAll(/<li><code>([0-9A-Z-]+)<\/code><\/li>/g)].map((m) => m[1]!);
    return { secret, recoveryCodes, page, res };
  }

  /** A manager with TOTP on, logged out again. */
  async function enrolledManager(fields: Parameters<typeof createAccount>[1] = {}) {
    const account = await createAccount(t.db, { role: 'manager', ...fields });
    const agent = await loginAgent(t.app, account.email, account.password);
    const { secret, recoveryCodes } = await enrol(agent);
    nextStep();
    return { ...account, secret, recoveryCodes };
  }

  /** The password step: the agent is now half-way, on the code form. */
  async function passwordStep(email: string, password: string, headers: Record<string, string> = {}) {
    const agent = request.agent(t.app);
    const page = await agent.get('/login').set(headers).expect(200);
    await agent
      .post('/login')
      .set(headers)
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email, password })
      .expect(303)
      .expect('location', '/login/two-factor');
    const form = await agent.get('/login/two-factor').set(headers).expect(200);
    const token = csrfFrom(form.text);
    /** Posts `code` on the code form (with the headers of the password step). */
    const code = (value: string) =>
      agent.post('/login/two-factor').set(headers).type('form').send({ _csrf: token, code: value });
    return { agent, code };
  }

  /** An enrolled manager logged in with both factors, one 30-second step later (their code is used). */
  async function fullyLoggedIn(m: Awaited<ReturnType<typeof enrolledManager>>) {
    const step = await passwordStep(m.email, m.password);
    await step.code(await codeAt(m.secret, t.clock.now())).expect(303);
    nextStep();
    return step;
  }

  /** Submits the form that turns the second factor off. */
  const disable = (agent: Agent, fields: { current_password: string; code: string }) =>
    submitForm(agent, '/account/two-factor/disable', '/account/two-factor/disable', fields);

  it('enrols: QR code and secret on the page, confirmed with a current code, recovery codes shown once', async () => {
    const { id, email, password } = await createAccount(t.db, { role: 'manager' });
    const agent = await loginAgent(t.app, email, password);
    const account = await agent.get('/account').expect(200);
    assert.match(account.text, /href="\/account\/two-factor"/);
    assert.match(account.text, /<dt>Two-factor authentication<\/dt><dd>Off<\/dd>/);

    const settings = await agent.get('/account/two-factor').expect(200);
    await agent
      .post('/account/two-factor/setup')
      .type('form')
      .send({ _csrf: csrfFrom(settings.text) })
      .expect(303);
    const page = await agent.get('/account/two-factor').expect(200);
    assert.equal(page.headers['cache-control'], 'no-store');
    const qr = /<img src="data:image\/svg\+xml;base64,([A-Za-z0-9+/=]+)" alt="([^"]+)"/.exec(page.text);
    assert.ok(qr, 'the QR code is an image with a data: URL');
    assert.match(qr[2]!, /QR code to add this account/);
    assert.match(Buffer.from(qr[1]!, 'base64').toString('utf8'), /^<svg /);
    assert.doesNotMatch(page.text, /<svg|style=/, 'no inline SVG or style attribute (CSP)');
    const grouped = /<p class="one-time"><code>([A-Z2-7 ]+)<\/code><\/p>/.exec(page.text)![1]!;
    assert.match(grouped, /^([A-Z2-7]{4} )+[A-Z2-7]{1,4}$/, 'the secret is shown in groups of four');
    const secret = grouped.replace(/ /g, '');
    secretsShown.push(secret);
    const before = await t.db('accounts').where({ id }).first();
    assert.equal(before.totp_secret, null, 'nothing is stored before the code confirms it');

    const wrong = await agent
      .post('/account/two-factor/confirm')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), code: '12345x' })
      .expect(422);
    assert.match(wrong.text, /This code is not correct/);
    assert.match(wrong.text, /aria-invalid="true"/);
    assert.match(wrong.text, /data:image\/svg\+xml/, 'the QR code is still there to try again');

    const res = await agent
      .post('/account/two-factor/confirm')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), code: await codeAt(secret, t.clock.now()) })
      .expect(200);
    assert.equal(res.headers['cache-control'], 'no-store');
    const codes = [...res.text.matchAll(/<li><code>([0-9A-Z-]+)<\/code><\/li>/g)].map((m) => m[1]!);
    assert.equal(codes.length, 10);
    assert.equal(new Set(codes).size, 10);
    for (const c of codes) assert.match(c, /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/);

    const row = await t.db('accounts').where({ id }).first();
    assert.ok(row.totp_enabled_at);
    assert.ok(row.totp_secret && !row.totp_secret.includes(secret), 'the secret is stored encrypted');
    const stored = await t.db('recovery_codes').where({ account_id: id }).select('code_hash', 'used_at');
    assert.equal(stored.length, 10);
    for (const s of stored) {
      assert.match(s.code_hash, /^[0-9a-f]{64}$/);
      assert.ok(!codes.includes(s.code_hash));
    }
    assert.ok(
      await t
        .db('audit_events')
        .where({ action: 'account.two_factor_enabled', object_id: String(id) })
        .first(),
    );

    const after = await agent.get('/account/two-factor').expect(200);
    assert.doesNotMatch(after.text, /<li><code>/, 'the recovery codes are not shown again');
    assert.match(after.text, /Unused recovery codes<\/dt><dd>10</);
    assert.match((await agent.get('/account').expect(200)).text, /<dt>Two-factor authentication<\/dt><dd>On<\/dd>/);
    const again = await agent
      .post('/account/two-factor/setup')
      .type('form')
      .send({ _csrf: csrfFrom(after.text) })
      .expect(303);
    assert.equal(again.headers.location, '/account/two-factor');
    assert.match((await agent.get('/account/two-factor')).text, /already on/);
  });

  it('after the password, nothing is accessible until the code; a valid code logs in with a new session id', async () => {
    const m = await enrolledManager();
    const agent = request.agent(t.app);
    await agent.get('/account').expect(303).expect('location', '/login');
    const page = await agent.get('/login').expect(200);
    const before = sessionCookie(page);
    const res = await agent
      .post('/login')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email: m.email, password: m.password })
      .expect(303)
      .expect('location', '/login/two-factor');
    const pending = sessionCookie(res);
    assert.ok(pending && pending !== before, 'the session id changes after the password step');
    await agent.get('/portal').expect(303).expect('location', '/login');
    await agent.get('/account').expect(303).expect('location', '/login');
    const form = await agent.get('/login/two-factor').expect(200);
    assert.match(form.text, /autocomplete="one-time-code"/);
    assert.doesNotMatch(form.text, /action="\/logout"/, 'nobody is logged in yet');
    const logins = () => countRows(t.db, 'audit_events', { action: 'auth.login', actor_account_id: m.id });
    const loginsBefore = await logins();

    const now = t.clock.now();
    const valid = new Set(
      await Promise.all([-1, 0, 1].map((k) => codeAt(m.secret, new Date(now.getTime() + k * STEP_MS)))),
    );
    const wrongCode = ['000000', '111111', '222222', '333333'].find((c) => !valid.has(c))!;
    const wrong = await agent
      .post('/login/two-factor')
      .type('form')
      .send({ _csrf: csrfFrom(form.text), code: wrongCode })
      .expect(422);
    assert.match(wrong.text, /This code is not correct/);
    await agent.get('/portal').expect(303).expect('location', '/login');
    assert.equal(await logins(), loginsBefore, 'no login recorded before the code');

    const ok = await agent
      .post('/login/two-factor')
      .type('form')
      .send({ _csrf: csrfFrom(form.text), code: await codeAt(m.secret, now) })
      .expect(303);
    assert.equal(ok.headers.location, '/account', 'back where the visitor was going');
    const loggedIn = sessionCookie(ok);
    assert.ok(loggedIn && loggedIn !== pending, 'the session id changes again at login');
    await agent.get('/portal').expect(200);
    assert.equal(await logins(), loginsBefore + 1);

    const events = await t
      .db('audit_events')
      .where({ actor_account_id: m.id })
      .orderBy('id')
      .select('action', 'after_state');
    const actions = events.map((e: { action: string }) => e.action);
    for (const a of ['auth.two_factor_required', 'auth.two_factor_failed', 'auth.login'])
      assert.ok(actions.includes(a), a);
    const login = events.filter((e: { action: string }) => e.action === 'auth.login').at(-1);
    assert.deepEqual(JSON.parse(login.after_state), { secondFactor: 'totp' });
    const failed = events.find((e: { action: string }) => e.action === 'auth.two_factor_failed');
    assert.deepEqual(JSON.parse(failed.after_state), { purpose: 'login', reason: 'wrong_code' });
  });

  it('accepts the code of the previous or next 30-second step (clock skew), not older ones', async () => {
    const m = await enrolledManager();
    const early = await passwordStep(m.email, m.password);
    await early.code(await codeAt(m.secret, new Date(t.clock.now().getTime() + STEP_MS))).expect(303);
    nextStep();
    nextStep();
    const late = await passwordStep(m.email, m.password);
    await late.code(await codeAt(m.secret, new Date(t.clock.now().getTime() - 2 * STEP_MS))).expect(422);
    await late
      .code(await codeAt(m.secret, new Date(t.clock.now().getTime() - STEP_MS)))
      .expect(422, /already been used/);
    nextStep();
    await late.code(await codeAt(m.secret, new Date(t.clock.now().getTime() - STEP_MS))).expect(303);
  });

  it('refuses the same TOTP code twice', async () => {
    const m = await enrolledManager();
    const code = await codeAt(m.secret, t.clock.now());
    const first = await passwordStep(m.email, m.password);
    await first.code(code).expect(303);
    const second = await passwordStep(m.email, m.password);
    const reused = await second.code(code).expect(422);
    assert.match(reused.text, /already been used/);
    const failed = await t
      .db('audit_events')
      .where({ action: 'auth.two_factor_failed', object_id: String(m.id) })
      .first();
    assert.equal(JSON.parse(failed.after_state).reason, 'reused_code');
    nextStep();
    await second.code(await codeAt(m.secret, t.clock.now())).expect(303);
  });

  it('a recovery code logs in once, typed in any case and without dashes', async () => {
    const m = await enrolledManager();
    const typed = m.recoveryCodes[3]!.replace(/-/g, '').toLowerCase();
    const first = await passwordStep(m.email, m.password);
    await first.code(typed).expect(303).expect('location', '/portal');
    const login = await t
      .db('audit_events')
      .where({ action: 'auth.login', actor_account_id: m.id })
      .orderBy('id', 'desc')
      .first();
    assert.deepEqual(JSON.parse(login.after_state), { secondFactor: 'recovery_code', recoveryCodesLeft: 9 });
    assert.equal(await countRows(t.db, 'recovery_codes', { account_id: m.id }), 10);

    const second = await passwordStep(m.email, m.password);
    const again = await second.code(m.recoveryCodes[3]!).expect(422);
    assert.match(again.text, /This code is not correct/);
    await second.code(m.recoveryCodes[4]!).expect(303);
    const page = await second.agent.get('/account/two-factor').expect(200);
    assert.match(page.text, /Unused recovery codes<\/dt><dd>8</);
  });

  it('answers 429 with Retry-After after 5 wrong codes, even for the right one', async () => {
    const m = await enrolledManager();
    const step = await passwordStep(m.email, m.password);
    for (let i = 0; i < 5; i++) {
      await step.code(`9${i}${i}${i}${i}x`).expect(422);
    }
    const blocked = await step.code(await codeAt(m.secret, t.clock.now())).expect(429);
    assert.ok(Number(blocked.headers['retry-after']) > 0);
    assert.match(blocked.text, /Too many wrong codes/);
    assert.ok(
      await t
        .db('audit_events')
        .where({ action: 'auth.two_factor_rate_limited', object_id: String(m.id) })
        .first(),
    );
    await step.agent.get('/portal').expect(303).expect('location', '/login');
  });

  it('the code form expires 5 minutes after the password', async () => {
    const m = await enrolledManager();
    const step = await passwordStep(m.email, m.password);
    t.clock.advance(5 * 60_000 + 1000);
    await step
      .code(await codeAt(m.secret, t.clock.now()))
      .expect(303)
      .expect('location', '/login');
    const login = await step.agent.get('/login').expect(200);
    assert.match(login.text, /Please log in again/);
    await step.agent.get('/login/two-factor').expect(303).expect('location', '/login');
    await step.agent.get('/portal').expect(303).expect('location', '/login');
  });

  it('translates the field error', async () => {
    const m = await enrolledManager({ language: 'de' });
    const step = await passwordStep(m.email, m.password, { 'Accept-Language': 'de' });
    const res = await step.code('abc').expect(422);
    assert.match(res.text, /<html lang="de">/);
    assert.match(res.text, /Dieser Code ist nicht korrekt/);
  });

  it('new recovery codes need a code and replace the old ones', async () => {
    const m = await enrolledManager();
    const step = await fullyLoggedIn(m);
    const bad = await submitForm(step.agent, '/account/two-factor', '/account/two-factor/recovery-codes', { code: '' });
    assert.equal(bad.status, 422);
    assert.match(bad.text, /This field is required/);
    const res = await submitForm(step.agent, '/account/two-factor', '/account/two-factor/recovery-codes', {
      code: await codeAt(m.secret, t.clock.now()),
    });
    assert.equal(res.status, 200);
    const fresh = [...res.text.matchAll(/<li><code>([0-9A-Z-]+)<\/code><\/li>/g)].map((x) => x[1]!);
    assert.equal(fresh.length, 10);
    assert.ok(
      await t
        .db('audit_events')
        .where({ action: 'account.recovery_codes_regenerated', object_id: String(m.id) })
        .first(),
    );

    const old = await passwordStep(m.email, m.password);
    await old.code(m.recoveryCodes[0]!).expect(422);
    await old.code(fresh[0]!).expect(303);
  });

  it('turning it off needs the current password and a code', async () => {
    const m = await enrolledManager();
    const step = await fullyLoggedIn(m);
    const code = await codeAt(m.secret, t.clock.now());

    const wrongPassword = await disable(step.agent, { current_password: 'not my password', code });
    assert.equal(wrongPassword.status, 422);
    assert.match(wrongPassword.text, /The current password is not correct/);
    const wrongCode = await disable(step.agent, { current_password: m.password, code: '12345' });
    assert.equal(wrongCode.status, 422);
    assert.match(wrongCode.text, /This code is not correct/);
    assert.ok((await t.db('accounts').where({ id: m.id }).first()).totp_enabled_at, 'still on');

    const ok = await disable(step.agent, { current_password: m.password, code });
    assert.equal(ok.status, 303);
    assert.equal(ok.headers.location, '/account/two-factor');
    assert.match((await step.agent.get('/account/two-factor').expect(200)).text, /has been turned off/);
    const row = await t.db('accounts').where({ id: m.id }).first();
    assert.equal(row.totp_secret, null);
    assert.equal(row.totp_enabled_at, null);
    assert.equal(await countRows(t.db, 'recovery_codes', { account_id: m.id }), 0);
    const audit = await t
      .db('audit_events')
      .where({ action: 'account.two_factor_disabled', object_id: String(m.id) })
      .first();
    assert.deepEqual(JSON.parse(audit.after_state), { secondFactor: 'totp' });

    // The password alone logs in again.
    const agent = request.agent(t.app);
    const page = await agent.get('/login');
    await agent
      .post('/login')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email: m.email, password: m.password })
      .expect(303)
      .expect('location', '/portal');
  });

  it('wrong codes on the settings forms count too: 429 on the disable form, which stays usable later', async () => {
    const m = await enrolledManager();
    const step = await fullyLoggedIn(m);
    for (let i = 0; i < 5; i++) {
      const res = await disable(step.agent, { current_password: m.password, code: 'wrong!' });
      assert.equal(res.status, 422);
    }
    const blocked = await disable(step.agent, {
      current_password: m.password,
      code: await codeAt(m.secret, t.clock.now()),
    });
    assert.equal(blocked.status, 429);
    assert.ok(Number(blocked.headers['retry-after']) > 0);
    assert.match(blocked.text, /Too many wrong codes/);
    assert.ok((await t.db('accounts').where({ id: m.id }).first()).totp_enabled_at, 'still on');
    t.clock.advance(15 * 60_000);
    const ok = await disable(step.agent, { current_password: m.password, code: await codeAt(m.secret, t.clock.now()) });
    assert.equal(ok.status, 303);
  });

  it('sends anonymous visitors to the login page and refuses forms without a CSRF token (403)', async () => {
    const anonymous = request.agent(t.app);
    await anonymous.get('/account/two-factor').expect(303).expect('location', '/login');
    await anonymous.get('/login/two-factor').expect(303).expect('location', '/login');

    const m = await enrolledManager();
    const step = await passwordStep(m.email, m.password);
    await step.agent
      .post('/login/two-factor')
      .type('form')
      .send({ code: await codeAt(m.secret, t.clock.now()) })
      .expect(403);
    await step.agent.get('/portal').expect(303).expect('location', '/login');

    const other = await createAccount(t.db, { role: 'manager' });
    const agent = await loginAgent(t.app, other.email, other.password);
    await agent.post('/account/two-factor/setup').type('form').send({}).expect(403);
    await agent.post('/account/two-factor/confirm').type('form').send({ code: '123456' }).expect(403);
    await agent
      .post('/account/two-factor/disable')
      .type('form')
      .send({ current_password: other.password, code: '123456' })
      .expect(403);
    await agent.post('/account/two-factor/recovery-codes').type('form').send({ code: '123456' }).expect(403);
    assert.equal((await t.db('accounts').where({ id: other.id }).first()).totp_secret, null);
  });

  describe('when the vendor requires a second factor for managers', () => {
    let admin: Agent;
    const setRequired = async (on: boolean) => {
      const res = await submitForm(admin, '/admin/settings', '/admin/settings', {
        ...(on ? { manager_second_factor: 'on' } : {}),
        end_user_self_service: 'on',
        default_language: 'en',
        offline_lease_days: '30',
        airgap_code_minutes: '60',
        audit_retention_days: '400',
        ...notificationFields,
      });
      assert.equal(res.status, 303);
    };
    before(async () => {
      admin = (await adminAgent(t)).agent;
      await setRequired(true);
    });
    after(async () => setRequired(false));

    it('a manager without TOTP can only enrol, log out or switch the language', async () => {
      const m = await createAccount(t.db, { role: 'manager' });
      const agent = await loginAgent(t.app, m.email, m.password);
      for (const url of ['/portal', '/portal/orders', '/account', '/account/password', '/admin'])
        await agent.get(url).expect(303).expect('location', '/account/two-factor');
      const page = await agent.get('/account/two-factor').expect(200);
      assert.match(page.text, /requires license managers to use two-factor authentication/);
      await agent.get('/static/css/app.css').expect(200);
      await agent
        .post('/language')
        .type('form')
        .send({ _csrf: csrfFrom(page.text), language: 'fr', return_to: '/account/two-factor' })
        .expect(303)
        .expect('location', '/account/two-factor');

      const { secret } = await enrol(agent);
      assert.ok(secret);
      await agent.get('/portal').expect(200);
    });

    it('the forced password change comes first', async () => {
      const m = await createAccount(t.db, { role: 'manager', mustChangePassword: true });
      const agent = await loginAgent(t.app, m.email, m.password);
      await agent.get('/account/password').expect(200);
      await agent.get('/account/two-factor').expect(303).expect('location', '/account/password');
    });

    it('admins and end users are not held', async () => {
      const a = await createAccount(t.db, { role: 'admin' });
      await (await loginAgent(t.app, a.email, a.password)).get('/admin').expect(200);
      const u = await createAccount(t.db, { role: 'end_user' });
      await (await loginAgent(t.app, u.email, u.password)).get('/portal').expect(200);
    });

    it('a manager who logs out is not held at the login page', async () => {
      const m = await createAccount(t.db, { role: 'manager' });
      const agent = await loginAgent(t.app, m.email, m.password);
      const page = await agent.get('/account/two-factor').expect(200);
      await agent
        .post('/logout')
        .type('form')
        .send({ _csrf: csrfFrom(page.text) })
        .expect(303)
        .expect('location', '/login');
      await agent.get('/login').expect(200);
    });
  });

  // Runs after every test above, nested ones included.
  describe('afterwards', () => {
    it('the secret never appears in a log line, an audit row, the sessions table or the accounts table in clear', async () => {
      assert.ok(secretsShown.length >= 5);
      const logs = JSON.stringify(t.logs);
      const audit = JSON.stringify(await t.db('audit_events').select());
      const sessions = JSON.stringify(await t.db('sessions').select());
      const stored = JSON.stringify(await t.db('accounts').select('totp_secret'));
      for (const secret of secretsShown) {
        for (const [where, text] of [
          ['logs', logs],
          ['audit', audit],
          ['sessions', sessions],
          ['accounts', stored],
        ] as const) {
          assert.ok(!text.includes(secret), `secret found in ${where}`);
        }
      }
      assert.ok(t.logs.length > 0, 'the app did log its requests');
    });
  });
});
