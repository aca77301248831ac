import assert from 'node:assert/strict';
import request from 'supertest';
import { buildTestApp, createAccount, csrfFrom, loginAgent, submitForm, type TestApp } from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import * as catalog from '../../app/models/catalog.ts';
import { isCommonPassword } from '../../app/lib/passwords.ts';
import { ConfigError, loadConfig } from '../../config/index.ts';
import { RateLimiter } from '../../app/lib/rate-limiter.ts';
import { normaliseLicenseKey } from '../../app/lib/license-keys.ts';
import { AIRGAP_PER_LICENSE, AIRGAP_PER_LICENSE_AND_CLIENT } from '../../app/controllers/airgap.ts';
import { createAirgapRequest, createDeactivationCode } from '../../sdk/src/airgap.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;
type Agent = ReturnType<typeof request.agent>;

const cookieNamed = (res: request.Response, name: string) =>
  ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith(`${name}=`));
const TOO_COMMON = /This password is too common/;
const CSRF_PAGE = /This form has expired or was not sent from this site/;

describe('Hardening', function () {
  this.timeout(60_000);
  let t: TestApp;
  let w: World;

  before(async () => {
    t = await buildTestApp({ trustProxy: true });
    w = await portalWorld(t.db);
  });
  after(async () => t.close());

  describe('common passwords', () => {
    it('are recognised lower-cased and with digits and symbols at either end stripped; a passphrase is not', () => {
      for (const weak of ['password1234', 'Password123!', 'PASSWORD!!2024', '!!Dragon2024', 'qwertyuiop', '1234567890'])
        assert.ok(isCommonPassword(weak), weak);
      for (const strong of ['violet tractor harbour 42', 'correct horse 7 battery', 'ab93!#8271@%', 'Zr8!k2##99x'])
        assert.ok(!isCommonPassword(strong), strong);
    });

    it("are refused when a password is changed, with the message in the account's language; a strong one is accepted", async () => {
      const user = await createAccount(t.db);
      const agent = await loginAgent(t.app, user.email, user.password);
      for (const weak of ['password1234', 'Password123!']) {
        const res = await submitForm(agent, '/account/password', '/account/password', {
          current_password: user.password,
          password: weak,
          password_confirmation: weak,
        });
        assert.equal(res.status, 422, weak);
        assert.match(res.text, TOO_COMMON, weak);
      }
      const strong = 'violet tractor harbour 42';
      const ok = await submitForm(agent, '/account/password', '/account/password', {
        current_password: user.password,
        password: strong,
        password_confirmation: strong,
      });
      assert.equal(ok.status, 303);

      const german = await createAccount(t.db, { language: 'de' });
      const de = await loginAgent(t.app, german.email, german.password);
      const refused = await submitForm(de, '/account/password', '/account/password', {
        current_password: german.password,
        password: 'Password123!',
        password_confirmation: 'Password123!',
      });
      assert.equal(refused.status, 422);
      assert.match(refused.text, /Dieses Passwort ist zu verbreitet/);
    });

    it('are refused through a reset (or invitation) link, whose page is not cached', async () => {
      const user = await createAccount(t.db);
      await submitForm(request.agent(t.app), '/password/forgot', '/password/forgot', { email: user.email });
      const mail = await t.db('mail_outbox').where({ to_address: user.email }).orderBy('id', 'desc').first();
      const link = /http:\/\/portico\.test(\/password\/reset\/[\w-]+)/.exec(mail.text_body)![1]!;
      const agent = request.agent(t.app);
      const form = await agent.get(link).expect(200);
      assert.equal(form.headers['cache-control'], 'no-store');
      const res = await agent
        .post(link)
        .type('form')
        .send({ _csrf: csrfFrom(form.text), password: 'password1234', password_confirmation: 'password1234' });
      assert.equal(res.status, 422);
      assert.match(res.text, TOO_COMMON);
      assert.equal(res.headers['cache-control'], 'no-store');
    });
  });

  describe('Cache-Control: no-store', () => {
    it('on every page for a signed-in user (portal license page, console); not on static files or public pages', async () => {
      const manager = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
      const license = await manager.get(`/portal/licenses/${w.licenseA}`).expect(200);
      assert.match(license.text, /AAAA-AAAA/);
      assert.equal(license.headers['cache-control'], 'no-store');
      assert.equal((await manager.get('/portal').expect(200)).headers['cache-control'], 'no-store');

      const admin = await loginAgent(t.app, w.admin.email, w.admin.password);
      assert.equal((await admin.get(`/admin/licenses/${w.licenseA}`).expect(200)).headers['cache-control'], 'no-store');
      assert.equal((await admin.get('/admin').expect(200)).headers['cache-control'], 'no-store');

      const css = await admin.get('/static/css/app.css').expect(200);
      assert.notEqual(css.headers['cache-control'], 'no-store');
      assert.equal(
        (await admin.get('/branding.css').expect(200)).headers['cache-control'],
        'public, max-age=60',
        'a public resource keeps its own caching',
      );
      assert.equal((await request(t.app).get('/login').expect(200)).headers['cache-control'], undefined);
    });
  });

  describe('Origin and Sec-Fetch-Site on state-changing requests', () => {
    /** A visitor with a session and a valid CSRF token, posting the language switcher. */
    async function switchLanguage(headers: Record<string, string>, agent: Agent = request.agent(t.app)) {
      const page = await agent.get('/login').set('Host', 'licenses.example.net').expect(200);
      return agent
        .post('/language')
        .set('Host', 'licenses.example.net')
        .set(headers)
        .type('form')
        .send({ _csrf: csrfFrom(page.text), language: 'de' });
    }

    it('refuses a cross-site POST even with a valid token (403, the CSRF page)', async () => {
      for (const headers of <Record<string, string>[]>[
        { 'Sec-Fetch-Site': 'cross-site' },
        { Origin: 'https://evil.example' },
        { Origin: 'http://licenses.example.net.evil.example' },
        { Origin: 'https://licenses.example.net' }, // another scheme: another origin
        { Origin: 'not a url' },
        { Origin: 'null', 'Sec-Fetch-Site': 'cross-site' },
        { Origin: 'http://licenses.example.net', 'Sec-Fetch-Site': 'cross-site' },
      ]) {
        const res = await switchLanguage(headers);
        assert.equal(res.status, 403, JSON.stringify(headers));
        assert.match(res.text, CSRF_PAGE);
      }
    });

    it('lets same-origin, BASE_URL-origin and header-less POSTs through (to the CSRF check, which still applies)', async () => {
      for (const headers of <Record<string, string>[]>[
        { Origin: 'http://licenses.example.net', 'Sec-Fetch-Site': 'same-origin' },
        { Origin: 'http://licenses.example.net:80' },
        { Origin: 'http://portico.test', 'Sec-Fetch-Site': 'same-site' },
        { 'Sec-Fetch-Site': 'none' },
        { Origin: 'null', 'Sec-Fetch-Site': 'same-origin' }, // what a browser sends under Referrer-Policy: no-referrer
        { Origin: 'null' },
        {},
      ]) {
        assert.equal((await switchLanguage(headers)).status, 303, JSON.stringify(headers));
      }
      // Behind a trusted proxy the request's own origin is the proxy's scheme and host.
      assert.equal(
        (await switchLanguage({ 'X-Forwarded-Proto': 'https', Origin: 'https://licenses.example.net' })).status,
        303,
      );
      // Without a token a same-origin POST is still refused, by the CSRF check.
      const noToken = await request(t.app)
        .post('/language')
        .set('Host', 'licenses.example.net')
        .set('Origin', 'http://licenses.example.net')
        .type('form')
        .send({ language: 'de' });
      assert.equal(noToken.status, 403);
    });

    it('leaves the License API alone: applications call it from anywhere', async () => {
      const res = await request(t.app)
        .post('/api/v1/check')
        .set({ Origin: 'https://evil.example', 'Sec-Fetch-Site': 'cross-site' })
        .send({ request: 'not a request' });
      assert.notEqual(res.status, 403);
      assert.match(String(res.headers['content-type']), /json/);
      assert.notEqual(res.body.error?.code, 'csrf');
    });
  });

  it("sends a CSP with base-uri 'none'", async () => {
    const res = await request(t.app).get('/login').expect(200);
    assert.match(String(res.headers['content-security-policy']), /(^|;)base-uri 'none'(;|$)/);
  });

  describe('air-gap attempt limits', () => {
    const key = 'HARD-GAPP-GAPP-GAPP-GAPP-GAPP-GAPP';
    before(async () => {
      const now = t.clock.now();
      const order = await catalog.insertOrder(t.db, { orderRef: 'HARD-1', customerId: w.customer }, now);
      const product = await catalog.insertProduct(
        t.db,
        { name: 'Plant Control', code: 'plant', authorizationMethod: 'key' },
        now,
      );
      await catalog.insertLicense(
        t.db,
        {
          orderId: order,
          productId: product,
          policyId: null,
          licenseKey: key,
          entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, airgapped: true, maxActivations: 2, maxTransfers: 0 },
          startDate: now,
        },
        now,
      );
    });

    async function airgapPost(client: string, url: string, fields: Record<string, string>) {
      const agent = request.agent(t.app);
      const page = await agent.get('/airgap').set('X-Forwarded-For', client);
      return agent
        .post(url)
        .set('X-Forwarded-For', client)
        .type('form')
        .send({ _csrf: csrfFrom(page.text), ...fields });
    }
    const wrongDeactivation = (n: number) =>
      createDeactivationCode({ hardwareHash: 'ab'.repeat(5), secret: Buffer.alloc(10, n) }).code;

    it('a flood from one address on a key blocks that address, not another site using the same key', async () => {
      let status = 0;
      for (let n = 0; n <= AIRGAP_PER_LICENSE_AND_CLIENT.limit && status !== 429; n++) {
        status = (
          await airgapPost('198.51.100.66', '/airgap/deactivate', {
            license_key: key,
            deactivation_code: wrongDeactivation(n),
          })
        ).status;
      }
      assert.equal(status, 429, 'the flooding address is limited');
      const site = createAirgapRequest({ product: 'plant', hardwareId: 'SITE-Y', now: t.clock.now() });
      const res = await airgapPost('192.0.2.10', '/airgap/activate', { license_key: key, request_code: site.code });
      assert.equal(res.status, 200, "the key's own site still activates");
      assert.equal(
        (
          await airgapPost('198.51.100.66', '/airgap/activate', {
            license_key: key,
            request_code: createAirgapRequest({ product: 'plant', hardwareId: 'SITE-X', now: t.clock.now() }).code,
          })
        ).status,
        429,
      );
    });

    it("every address together runs into the key's ceiling", async () => {
      // As if many addresses had spent their attempts on this key in the current window.
      const ceiling = RateLimiter.key('airgap-license', normaliseLicenseKey(key));
      await t.db('rate_limits').where({ key: ceiling }).delete();
      await t.db('rate_limits').insert({
        key: ceiling,
        hits: AIRGAP_PER_LICENSE.limit,
        window_ends_ms: t.clock.now().getTime() + AIRGAP_PER_LICENSE.windowMs,
      });
      const res = await airgapPost('203.0.113.99', '/airgap/deactivate', {
        license_key: key,
        deactivation_code: wrongDeactivation(99),
      });
      assert.equal(res.status, 429);
      assert.ok(res.headers['retry-after']);
    });
  });

  describe('session cookie', () => {
    it('is portico.sid on plain http', async () => {
      const res = await request(t.app).get('/login').expect(200);
      assert.ok(cookieNamed(res, 'portico.sid'));
    });

    it('is __Host-portico.sid (Secure, Path=/, no Domain) when cookies are Secure, and the login works with it', async () => {
      const secure = await buildTestApp({
        baseUrl: 'https://licenses.example.com',
        cookieSecure: true,
        trustProxy: true,
      });
      try {
        const user = await createAccount(secure.db);
        const https = { 'X-Forwarded-Proto': 'https' };
        const page = await request(secure.app).get('/login').set(https).expect(200);
        const first = cookieNamed(page, '__Host-portico.sid')!;
        assert.ok(first, 'the prefixed cookie is set');
        assert.ok(!cookieNamed(page, 'portico.sid'));
        assert.match(first, /; Path=\/(;|$)/);
        assert.match(first, /; Secure(;|$)/);
        assert.match(first, /; HttpOnly(;|$)/);
        assert.doesNotMatch(first, /Domain=/i);
        const login = await request(secure.app)
          .post('/login')
          .set(https)
          .set('Cookie', first.split(';')[0]!)
          .type('form')
          .send({ _csrf: csrfFrom(page.text), email: user.email, password: user.password })
          .expect(303);
        const session = cookieNamed(login, '__Host-portico.sid')!.split(';')[0]!;
        await request(secure.app).get('/account').set(https).set('Cookie', session).expect(200);
      } finally {
        await secure.close();
      }
    });
  });

  // Last: it moves the app's clock.
  describe('absolute session lifetime', () => {
    it('SESSION_ABSOLUTE_HOURS: 12 by default, whole hours from 1 to 720, a bad value named in one line', () => {
      assert.equal(loadConfig({}).sessionAbsoluteMs, 12 * 3_600_000);
      assert.equal(loadConfig({ SESSION_ABSOLUTE_HOURS: '24' }).sessionAbsoluteMs, 24 * 3_600_000);
      for (const bad of ['0', '721', '1.5', 'soon']) {
        assert.throws(
          () => loadConfig({ SESSION_ABSOLUTE_HOURS: bad }),
          (err: Error) =>
            err instanceof ConfigError && /^Invalid configuration: SESSION_ABSOLUTE_HOURS must be/.test(err.message),
          bad,
        );
      }
    });

    it(`ends a login after SESSION_ABSOLUTE_HOURS however active it is, with a message, and brings the user back after the next login`, async () => {
      const user = await createAccount(t.db, { role: 'manager' });
      const agent = await loginAgent(t.app, user.email, user.password);
      const limitHours = t.config.sessionAbsoluteMs / 3_600_000;
      assert.equal(limitHours, 12, 'the default');
      for (let hour = 1; hour < limitHours; hour++) {
        t.clock.advance(3_600_000); // active every hour: the idle limit never applies
        await agent.get('/account').expect(200);
      }
      t.clock.advance(3_600_000);
      const ended = await agent.get('/account').expect(303);
      assert.equal(ended.headers.location, '/login');
      const login = await agent.get('/login').expect(200);
      assert.match(login.text, /a login lasts at most 12 hours/);
      assert.ok(
        !(await t.db('sessions').select('sess')).some((r: { sess: string }) =>
          String(r.sess).includes(`"user":${user.id}`),
        ),
        'the old session is gone',
      );

      await agent
        .post('/login')
        .type('form')
        .send({ _csrf: csrfFrom(login.text), email: user.email, password: user.password })
        .expect(303)
        .expect('location', '/account');
      await agent.get('/account').expect(200);
    });
  });
});
