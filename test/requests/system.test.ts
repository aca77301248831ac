import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { buildTestApp, createAccount, csrfFrom, loginAgent, type TestApp } from '../helpers/app.ts';
import { keysDir } from '../../app/lib/key-files.ts';
import * as brandings from '../../app/models/brandings.ts';

describe('app shell: health, errors, headers, keys, logs', () => {
  let t: TestApp;
  before(async () => {
    t = await buildTestApp();
  });
  after(async () => t.close());

  it('answers /healthz and /readyz', async () => {
    await request(t.app).get('/healthz').expect(200, { status: 'ok' });
    await request(t.app).get('/readyz').expect(200, { status: 'ready' });
  });

  it('readyz says 503 while shutting down', async () => {
    t.app.locals.ctx.state.shuttingDown = true;
    try {
      await request(t.app).get('/readyz').expect(503);
    } finally {
      t.app.locals.ctx.state.shuttingDown = false;
    }
  });

  it('renders the 404 page in the visitor language with a request id', async () => {
    const res = await request(t.app).get('/no/such/page').set('Accept-Language', 'de-DE,de;q=0.9').expect(404);
    assert.match(res.text, /<html lang="de">/);
    const requestId = res.headers['x-request-id'];
    assert.ok(requestId);
    assert.ok(res.text.includes(requestId));
  });

  it('sends strict security headers on every page', async () => {
    const res = await request(t.app).get('/login').expect(200);
    const csp = res.headers['content-security-policy']!;
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['x-powered-by'], undefined);
    assert.doesNotMatch(
      res.text,
      /<script>|<script [^>]*>[^<]+<\/script>|\sonclick=|\sstyle="/i,
      'no inline script or style',
    );
    const cookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []).join(';');
    assert.match(cookie, /HttpOnly/i);
    assert.match(cookie, /SameSite=Lax/i);
  });

  it('a failing route gives the 500 page without a stack trace, and the server keeps serving', async () => {
    const { email, password } = await createAccount(t.db);
    // A real fault: the table the login service reads has gone away.
    await t.db.schema.renameTable('accounts', 'accounts_gone');
    try {
      const agent = request.agent(t.app);
      const page = await agent.get('/login').expect(200);
      const res = await agent
        .post('/login')
        .type('form')
        .send({ _csrf: csrfFrom(page.text), email, password })
        .expect(500);
      assert.match(res.text, /Something went wrong on our side/);
      assert.ok(res.text.includes(res.headers['x-request-id']!));
      assert.doesNotMatch(res.text, /at .*\.ts:\d+|Error:|SQLITE|ER_NO_SUCH_TABLE|accounts_gone|no such table/i);
      const logged = t.logs.find((l) => l.msg === 'request failed' && l.requestId === res.headers['x-request-id']);
      assert.ok(logged, 'the error is logged with its request id');
    } finally {
      await t.db.schema.renameTable('accounts_gone', 'accounts');
    }
    await request(t.app).get('/healthz').expect(200);
    await loginAgent(t.app, email, password);
  });

  it('answers 413 to an oversized form', async () => {
    await request(t.app)
      .post('/login')
      .type('form')
      .send({ email: 'a@b.c', password: 'x'.repeat(200_000) })
      .expect(413);
  });

  it('publishes the public signing keys; the private key file is 0600 and never served', async () => {
    const res = await request(t.app).get('/.well-known/portico-keys.json').expect(200);
    const [key] = res.body.keys;
    assert.equal(res.body.keys.length, 1);
    assert.equal(key.crv, 'Ed25519');
    assert.equal(key.status, 'active');
    const file = path.join(keysDir(t.dataDir), `${key.kid}.pem`);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.doesNotMatch(JSON.stringify(res.body), /PRIVATE/);
    // The published key verifies what the private key signs.
    const privateKey = crypto.createPrivateKey(fs.readFileSync(file));
    const signature = crypto.sign(null, Buffer.from('hello'), privateKey);
    assert.ok(crypto.verify(null, Buffer.from('hello'), crypto.createPublicKey(key.pem), signature));
    await request(t.app).get(`/static/../data/keys/${key.kid}.pem`).expect(404);
  });

  it('keeps secrets out of the logs: passwords, cookies, one-time links', async () => {
    const { email, password } = await createAccount(t.db);
    const agent = await loginAgent(t.app, email, password);
    await agent.get('/portal').expect(200);
    await request(t.app).get('/password/reset/SECRET-TOKEN-VALUE-123').expect(410);
    await request(t.app).get('/setup/ANOTHER-SECRET-456').expect(404);
    await request(t.app).get('/offline/download/OFFLINE-DOWNLOAD-789').expect(404);
    await request(t.app).get('/airgap/download/AIRGAP-DOWNLOAD-012').expect(404);
    const all = JSON.stringify(t.logs);
    assert.ok(!all.includes('OFFLINE-DOWNLOAD-789'), 'no offline download token');
    assert.ok(!all.includes('AIRGAP-DOWNLOAD-012'), 'no air-gap download token');
    assert.ok(all.includes('/offline/download/[REDACTED]') && all.includes('/airgap/download/[REDACTED]'));
    assert.ok(!all.includes(password), 'no password');
    assert.ok(!all.includes('SECRET-TOKEN-VALUE-123'), 'no reset token');
    assert.ok(!all.includes('ANOTHER-SECRET-456'), 'no setup token');
    assert.ok(!/portico\.sid=/.test(all), 'no session cookie');
    assert.ok(all.includes('/password/reset/[REDACTED]'));
  });

  it('audit events carry actor, ip and request id', async () => {
    const { email, password, id } = await createAccount(t.db);
    await loginAgent(t.app, email, password);
    const e = await t.db('audit_events').where({ action: 'auth.login', actor_account_id: id }).first();
    assert.equal(e.actor_label, email);
    assert.ok(e.request_id && e.ip);
  });
});

describe('roles and white-label hosts', () => {
  let t: TestApp;
  before(async () => {
    t = await buildTestApp();
    const now = new Date();
    const acme = await brandings.insert(
      t.db,
      {
        name: 'acme',
        displayName: 'ACME Licensing',
        primaryColor: '#112233',
        accentColor: '#445566',
        supportEmail: 'help@acme.example',
        defaultLanguage: 'fr',
      },
      now,
    );
    await brandings.insertHost(t.db, acme, 'users.acme.example', 'portal', now);
    await brandings.insertHost(t.db, acme, 'portal.acme.example', null, now);
    const offline = await brandings.insert(t.db, { name: 'offline', displayName: 'ACME Offline' }, now);
    await brandings.insertHost(t.db, offline, 'offline.acme.example', 'offline', now);
  });
  after(async () => t.close());

  it('only admins reach /admin; everyone else gets 404, anonymous visitors the login page', async () => {
    await request(t.app).get('/admin').expect(303).expect('location', '/login');
    await request(t.app).get('/admin/outbox').expect(303).expect('location', '/login');
    for (const role of ['manager', 'end_user'] as const) {
      const a = await createAccount(t.db, { role });
      const agent = await loginAgent(t.app, a.email, a.password);
      await agent.get('/admin').expect(404);
      await agent.get('/admin/outbox').expect(404);
      await agent.get('/admin/outbox/1').expect(404);
    }
    const admin = await createAccount(t.db, { role: 'admin' });
    const agent = await loginAgent(t.app, admin.email, admin.password);
    await agent.get('/admin').expect(200);
  });

  it('an admin reads the mail outbox', async () => {
    await t.db('mail_outbox').insert({
      to_address: 'someone@example.com',
      subject: 'Hello <b>there</b>',
      text_body: 'Body text',
      reason: 'no_smtp',
      created_at: new Date(),
    });
    const admin = await createAccount(t.db, { role: 'admin' });
    const agent = await loginAgent(t.app, admin.email, admin.password);
    const list = await agent.get('/admin/outbox').expect(200);
    assert.match(list.text, /Hello &lt;b&gt;there&lt;\/b&gt;/, 'escaped');
    const id = (await t.db('mail_outbox').first()).id;
    const mail = await agent.get(`/admin/outbox/${id}`).expect(200);
    assert.match(mail.text, /Body text/);
    await agent.get('/admin/outbox/999999').expect(404);
    await agent.get('/admin/outbox/abc').expect(404);
  });

  it('a host bound to the User Portal serves it at / with its branding and language', async () => {
    const a = await createAccount(t.db, { role: 'manager' });
    const agent = request.agent(t.app);
    const login = await agent.get('/login').set('Host', 'users.acme.example').expect(200);
    assert.match(login.text, /ACME Licensing/);
    assert.match(login.text, /<html lang="fr">/, 'the branding default language applies');
    await agent
      .post('/login')
      .set('Host', 'users.acme.example')
      .type('form')
      .send({ _csrf: csrfFrom(login.text), email: a.email, password: a.password })
      .expect(303)
      .expect('location', '/');
    const dash = await agent.get('/').set('Host', 'users.acme.example').expect(200);
    assert.match(dash.text, /href="\/account"/);
    await agent.get('/portal').set('Host', 'users.acme.example').expect(200);
    await agent.get('/admin').set('Host', 'users.acme.example').expect(404);
    const css = await request(t.app).get('/branding.css').set('Host', 'users.acme.example').expect(200);
    assert.match(css.text, /--brand-primary:#112233/);
    assert.match(css.type, /css/);
  });

  it('an unbound branded host serves every part under its path; unknown hosts get the default look', async () => {
    const res = await request(t.app).get('/login').set('Host', 'portal.acme.example').expect(200);
    assert.match(res.text, /ACME Licensing/);
    await request(t.app).get('/portal').set('Host', 'portal.acme.example').expect(303).expect('location', '/login');
    const plain = await request(t.app).get('/login').set('Host', 'unknown.example').expect(200);
    assert.match(plain.text, /<span>Portico<\/span>/);
  });

  it('a host bound to another portal does not serve the User Portal or the console', async () => {
    await request(t.app).get('/portal').set('Host', 'offline.acme.example').expect(404);
    await request(t.app).get('/admin').set('Host', 'offline.acme.example').expect(404);
  });
});

/**
 * The thin path (docs/performance.md, "Thin path"): health, keys and the License API run before the
 * session. A request carrying a signed-in session cookie reads no session and no account there, and
 * no route of it sets a cookie.
 */
describe('the thin path: public routes and the License API skip the session', () => {
  let t: TestApp;
  before(async () => {
    t = await buildTestApp();
  });
  after(async () => t.close());

  /** The SQL statements run while `work` runs (knex's query event on the app's database). */
  const statementsDuring = async (work: () => Promise<unknown>) => {
    const seen: string[] = [];
    const listener = (q: { sql: string }) => seen.push(q.sql);
    t.db.on('query', listener);
    try {
      await work();
    } finally {
      t.db.removeListener('query', listener);
    }
    return seen;
  };

  it('with a signed-in cookie: /healthz runs no SQL, the keys and the API never touch sessions or accounts, and nothing sets a cookie', async () => {
    const user = await createAccount(t.db, { role: 'manager' });
    const agent = await loginAgent(t.app, user.email, user.password);
    const page = await statementsDuring(() => agent.get('/account').expect(200));
    assert.ok(
      page.some((sql) => /sessions/.test(sql)),
      'a page loads its session',
    );

    const health = await statementsDuring(async () => {
      const res = await agent.get('/healthz').expect(200);
      assert.equal(res.headers['set-cookie'], undefined);
    });
    assert.deepEqual(health, []);
    for (const call of [
      () => agent.get('/.well-known/portico-keys.json').expect(200),
      () => agent.get('/branding.css').expect(200),
      () => agent.post('/api/v1/check').send({}).expect(400),
      () => agent.post('/api/v1/nowhere').send({}).expect(404),
    ]) {
      const sql = await statementsDuring(async () => {
        const res = await call();
        assert.equal(res.headers['set-cookie'], undefined);
      });
      assert.deepEqual(
        sql.filter((s) => /sessions|accounts/.test(s)),
        [],
      );
    }
  });

  it('the License API needs no CSRF token and its errors stay JSON', async () => {
    const res = await request(t.app).post('/api/v1/activate').send({ request: 'not a request' });
    assert.notEqual(res.status, 403);
    assert.equal(res.type, 'application/json');
    assert.ok(res.body.error.code);
  });
});
