import assert from 'node:assert/strict';
import request from 'supertest';
import { Client } from 'ldapts';
import {
  adminAgent,
  buildTestApp,
  countRows,
  createAccount,
  csrfFrom,
  loginAgent,
  submitForm,
  type TestApp,
} from '../helpers/app.ts';
import {
  ADMIN_GROUP,
  PASSWORDS,
  SERVICE_DN,
  SERVICE_PASSWORD,
  SUFFIX,
  slapdAvailable,
  startSlapd,
  type Slapd,
} from '../helpers/ldap.ts';
import { ConfigError, loadConfig } from '../../config/index.ts';
import { directoryLogin, userFilterFor, type LdapSettings } from '../../app/lib/ldap.ts';
import { findStoredLdap } from '../../app/models/ldap-settings.ts';
import { dataDirSecretBox } from '../../app/crypto/secret-box.ts';
import { BIND_PASSWORD_CONTEXT, checkDirectoryAccounts } from '../../app/services/ldap.ts';
import { enqueuePeriodicJobs, runDueJobs } from '../../app/lib/queue.ts';

/**
 * Console login of the vendor's staff through a real OpenLDAP server (Debian's slapd, started here
 * on 127.0.0.1:47201/47202 with a certificate made for the run; test/helpers/ldap.ts).
 */

type Agent = ReturnType<typeof request.agent>;

let slapd: Slapd;

const settingsFor = (s: Slapd, over: Partial<LdapSettings> = {}): LdapSettings => ({
  url: s.ldapsUrl,
  startTls: false,
  allowPlain: false,
  caPem: s.caPem,
  bindDn: SERVICE_DN,
  bindPassword: SERVICE_PASSWORD,
  userBase: `ou=people,${SUFFIX}`,
  userFilter: '(&(objectClass=person)(|(mail={login})(uid={login})))',
  adminGroup: ADMIN_GROUP,
  timeoutMs: 3000,
  ...over,
});

const formFor = (s: Slapd, over: Record<string, string | undefined> = {}) => {
  const fields: Record<string, string | undefined> = {
    ldap_enabled: 'on',
    ldap_url: s.ldapsUrl,
    ldap_ca_pem: s.caPem,
    ldap_bind_dn: SERVICE_DN,
    ldap_bind_password: SERVICE_PASSWORD,
    ldap_user_base: `ou=people,${SUFFIX}`,
    ldap_user_filter: '',
    ldap_admin_group: ADMIN_GROUP,
    ldap_timeout_seconds: '3',
    ...over,
  };
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Record<string, string>;
};

async function configure(agent: Agent, fields: Record<string, string>) {
  return submitForm(agent, '/admin/settings', '/admin/settings/ldap', fields);
}

/** One login through the real form, by a fresh client. */
async function login(app: TestApp['app'], email: string, password: string) {
  const agent = request.agent(app);
  const page = await agent.get('/login').expect(200);
  const res = await agent
    .post('/login')
    .type('form')
    .send({ _csrf: csrfFrom(page.text), email, password });
  return { agent, res };
}

async function lastFailure(db: TestApp['db']) {
  const row = await db('audit_events').where({ action: 'auth.login_failed' }).orderBy('id', 'desc').first();
  return row ? (JSON.parse(String(row.after_state)) as Record<string, unknown>) : null;
}

const accountRow = (db: TestApp['db'], email: string) => db('accounts').where({ email }).first();

describe('LDAP login for the vendor staff (real slapd)', function () {
  this.timeout(60_000);

  before(async function () {
    if (!slapdAvailable()) {
      console.log(
        '      (skipped: /usr/sbin/slapd is not installed; apt-get install slapd ldap-utils, or set REQUIRE_LDAP=1 to fail)',
      );
      this.skip();
    }
    slapd = await startSlapd();
  });
  after(async () => slapd?.stop());

  describe('the directory conversation (lib/ldap.ts)', () => {
    it('a filter-injection attempt in the login is escaped: it matches no one, though the raw filter would', async () => {
      const settings = settingsFor(slapd);
      for (const login of ['*', 'alice*', '*)(uid=*))(|(uid=*', 'a*@example.com'])
        assert.deepEqual(await directoryLogin(settings, login, PASSWORDS.alice), { kind: 'unknown_user' }, login);
      assert.equal(
        userFilterFor(settings.userFilter, '*)(uid=*'),
        '(&(objectClass=person)(|(mail=\\2a\\29\\28uid=\\2a)(uid=\\2a\\29\\28uid=\\2a)))',
      );
      // The control: the same login put in unescaped finds alice (what the escaping prevents).
      const client = new Client({ url: slapd.ldapsUrl, tlsOptions: { ca: [slapd.caPem] } });
      await client.bind(SERVICE_DN, SERVICE_PASSWORD);
      const raw = await client.search(`ou=people,${SUFFIX}`, {
        scope: 'sub',
        filter: settings.userFilter.split('{login}').join('alice*'),
      });
      await client.unbind();
      assert.equal(raw.searchEntries.length, 1);
    });

    it('an empty password is never an (unauthenticated) bind', async () => {
      assert.deepEqual(await directoryLogin(settingsFor(slapd), 'alice@example.com', ''), { kind: 'wrong_password' });
    });

    it('finds, binds and checks the group over LDAPS and over StartTLS', async () => {
      for (const settings of [settingsFor(slapd), settingsFor(slapd, { url: slapd.ldapUrl, startTls: true })]) {
        const ok = await directoryLogin(settings, 'alice@example.com', PASSWORDS.alice);
        assert.deepEqual(ok, {
          kind: 'ok',
          dn: `uid=alice,ou=people,${SUFFIX}`,
          email: 'alice@example.com',
          name: 'Alice Admin',
          member: true,
        });
        const bob = await directoryLogin(settings, 'bob@example.com', PASSWORDS.bob);
        assert.equal(bob.kind === 'ok' && bob.member, false);
      }
    });

    it('TLS is required: an untrusted certificate, a wrong host name and plain LDAP without consent are refused', async () => {
      const untrusted = await directoryLogin(settingsFor(slapd, { caPem: null }), 'alice@example.com', PASSWORDS.alice);
      assert.equal(untrusted.kind, 'unavailable');
      const wrongName = await directoryLogin(
        settingsFor(slapd, { url: slapd.ldapsUrl.replace('127.0.0.1', '127.0.0.2') }),
        'alice@example.com',
        PASSWORDS.alice,
      );
      assert.equal(wrongName.kind, 'unavailable');
      assert.match((wrongName as { cause: string }).cause, /altnames|IP: 127\.0\.0\.2|ERR_TLS_CERT_ALTNAME/i);
      const plain = await directoryLogin(
        settingsFor(slapd, { url: slapd.ldapUrl, startTls: false }),
        'alice@example.com',
        PASSWORDS.alice,
      );
      assert.equal(plain.kind, 'unavailable');
      // Explicitly allowed (a lab): plain LDAP works.
      const lab = await directoryLogin(
        settingsFor(slapd, { url: slapd.ldapUrl, startTls: false, allowPlain: true }),
        'alice@example.com',
        PASSWORDS.alice,
      );
      assert.equal(lab.kind, 'ok');
    });

    it('the environment configuration refuses plain LDAP unless allowed, and names the variable', () => {
      const env = {
        NODE_ENV: 'test',
        LDAP_URL: slapd.ldapUrl,
        LDAP_STARTTLS: 'false',
        LDAP_BIND_DN: SERVICE_DN,
        LDAP_BIND_PASSWORD: SERVICE_PASSWORD,
        LDAP_USER_BASE: `ou=people,${SUFFIX}`,
        LDAP_ADMIN_GROUP: ADMIN_GROUP,
      };
      assert.throws(
        () => loadConfig(env),
        (e: Error) => e instanceof ConfigError && /LDAP_URL plain LDAP/.test(e.message),
      );
      assert.equal(loadConfig({ ...env, LDAP_ALLOW_PLAIN: 'true' }).ldap?.allowPlain, true);
      assert.equal(loadConfig({ ...env, LDAP_STARTTLS: 'true' }).ldap?.startTls, true);
      assert.throws(
        () => loadConfig({ ...env, LDAP_STARTTLS: 'true', LDAP_USER_FILTER: '(mail=x)' }),
        /LDAP_USER_FILTER must contain \{login\}/,
      );
    });
  });

  describe('configured in the console', () => {
    let t: TestApp;
    let admin: Agent;
    let breakGlass: { email: string; password: string };

    before(async () => {
      t = await buildTestApp();
      const a = await adminAgent(t);
      admin = a.agent;
      breakGlass = a.admin;
    });
    after(async () => t.close());

    it('plain LDAP without StartTLS is refused in the form with a clear message; nothing is saved', async () => {
      const res = await configure(admin, formFor(slapd, { ldap_url: slapd.ldapUrl }));
      assert.equal(res.status, 422);
      assert.match(res.text, /Plain LDAP sends passwords in clear/);
      assert.equal(await findStoredLdap(t.db), null);
      const bad = await configure(admin, formFor(slapd, { ldap_user_filter: '(mail=nobody)', ldap_admin_group: 'x' }));
      assert.equal(bad.status, 422);
      assert.match(bad.text, /valid LDAP filter that contains \{login\}/);
      assert.match(bad.text, /distinguished name/);
      assert.doesNotMatch(bad.text, new RegExp(SERVICE_PASSWORD));
      // Explicitly allowed (a lab): saved, and said so in the stored settings.
      const lab = await configure(admin, formFor(slapd, { ldap_url: slapd.ldapUrl, ldap_allow_plain: 'on' }));
      assert.equal(lab.status, 303);
      assert.equal((await findStoredLdap(t.db))!.allowPlain, true);
    });

    it('saves the settings with the bind password sealed (never in the page or the audit), keeping it when left empty', async () => {
      const res = await configure(admin, formFor(slapd));
      assert.equal(res.status, 303);
      const stored = (await findStoredLdap(t.db))!;
      assert.equal(stored.enabled, true);
      const raw = String((await t.db('settings').where({ key: 'ldap' }).first()).value);
      assert.doesNotMatch(raw, new RegExp(SERVICE_PASSWORD));
      assert.equal(
        dataDirSecretBox(t.dataDir).open(stored.bindPasswordSealed!, BIND_PASSWORD_CONTEXT),
        SERVICE_PASSWORD,
      );
      const page = await admin.get('/admin/settings').expect(200);
      assert.doesNotMatch(page.text, new RegExp(SERVICE_PASSWORD));
      assert.match(page.text, /A password is stored \(encrypted\)/);
      const again = await configure(admin, formFor(slapd, { ldap_bind_password: '' }));
      assert.equal(again.status, 303);
      assert.equal((await findStoredLdap(t.db))!.bindPasswordSealed, stored.bindPasswordSealed);
      const events = await t.db('audit_events').where({ action: 'settings.ldap_updated' }).orderBy('id');
      assert.equal(events.length, 3);
      for (const e of events) assert.doesNotMatch(`${e.before_state}${e.after_state}`, /service account secret|v1\./);
      assert.deepEqual(
        events.map((e: { after_state: string }) => JSON.parse(e.after_state).bindPasswordChanged),
        [true, true, false],
      );
    });

    it('the first directory login creates the admin account (no local password); the next one reuses it', async () => {
      const { agent, res } = await login(t.app, 'alice@example.com', PASSWORDS.alice);
      assert.equal(res.status, 303);
      assert.equal(res.headers.location, '/admin');
      await agent.get('/admin').expect(200);
      const row = await accountRow(t.db, 'alice@example.com');
      assert.equal(row.role, 'admin');
      assert.equal(row.password_hash, null);
      assert.equal(row.directory_dn, `uid=alice,ou=people,${SUFFIX}`);
      assert.equal(row.name, 'Alice Admin');
      const created = await t.db('audit_events').where({ action: 'account.created_from_directory' });
      assert.equal(created.length, 1);
      const logins = await t.db('audit_events').where({ action: 'auth.login', object_id: String(row.id) });
      assert.equal(JSON.parse(logins[0].after_state).via, 'ldap');

      // No local password to change: the account page says where it is managed, the form is not offered.
      assert.match((await agent.get('/account').expect(200)).text, /managed by your organisation/);
      const passwordPage = await agent.get('/account/password').expect(200);
      assert.doesNotMatch(passwordPage.text, /name="current_password"/);
      await agent
        .post('/account/password')
        .type('form')
        .send({
          _csrf: csrfFrom(passwordPage.text),
          current_password: 'a guess at a local password',
          password: 'a new local password 1',
          password_confirmation: 'a new local password 1',
        })
        .expect(409);
      assert.equal((await accountRow(t.db, 'alice@example.com')).password_hash, null);

      const second = await login(t.app, 'alice@example.com', PASSWORDS.alice);
      assert.equal(second.res.status, 303);
      assert.equal(await countRows(t.db, 'accounts', { email: 'alice@example.com' }), 1);
      assert.equal(
        created.length,
        (await t.db('audit_events').where({ action: 'account.created_from_directory' })).length,
      );
    });

    it('five first logins of one person at the same instant make one account (the unique e-mail decides)', async () => {
      // Five: the per-client-and-account budget counts each attempt before it is checked.
      const agents = [0, 1, 2, 3, 4].map(() => request.agent(t.app));
      const pages = await Promise.all(agents.map((a) => a.get('/login').expect(200)));
      const answers = await Promise.all(
        agents.map((a, i) =>
          a
            .post('/login')
            .type('form')
            .send({ _csrf: csrfFrom(pages[i]!.text), email: 'dave@example.com', password: PASSWORDS.dave }),
        ),
      );
      assert.deepEqual(
        answers.map((r) => r.status),
        agents.map(() => 303),
      );
      assert.equal(await countRows(t.db, 'accounts', { email: 'dave@example.com' }), 1);
      const created = await t.db('audit_events').where({ action: 'account.created_from_directory' });
      assert.equal(created.filter((e: { after_state: string }) => /dave@/.test(e.after_state)).length, 1);
    });

    it('a person outside the admin group is refused with a clear message and audited; no account is made', async () => {
      const { res } = await login(t.app, 'bob@example.com', PASSWORDS.bob);
      assert.equal(res.status, 403);
      assert.match(res.text, /may not use the console/);
      assert.equal(await accountRow(t.db, 'bob@example.com'), undefined);
      assert.deepEqual(await lastFailure(t.db), {
        email: 'bob@example.com',
        reason: 'ldap_not_in_group',
        via: 'ldap',
        dn: `uid=bob,ou=people,${SUFFIX}`,
      });
    });

    it('a wrong directory password and an unknown person get the same answer as a wrong local password, audited with why', async () => {
      const wrong = await login(t.app, 'alice@example.com', 'not her password');
      assert.equal(wrong.res.status, 401);
      assert.match(wrong.res.text, /The e-mail address or password is not correct/);
      assert.equal((await lastFailure(t.db))!.reason, 'ldap_wrong_password');
      const unknown = await login(t.app, 'nobody@example.com', 'whatever it is');
      assert.equal(unknown.res.status, 401);
      assert.equal(
        unknown.res.text.replace(/_csrf" value="[^"]+"|nobody@example.com/g, ''),
        wrong.res.text.replace(/_csrf" value="[^"]+"|alice@example.com/g, ''),
      );
      assert.equal((await lastFailure(t.db))!.reason, 'ldap_unknown_user');
      assert.equal(await accountRow(t.db, 'nobody@example.com'), undefined);
    });

    it('a local account is never sent to the directory, and a directory account gets no password-reset mail', async () => {
      // The break-glass admin signs in with its local password while LDAP is on.
      await loginAgent(t.app, breakGlass.email, breakGlass.password);
      const outbox = await countRows(t.db, 'mail_outbox');
      const agent = request.agent(t.app);
      const form = await agent.get('/password/forgot').expect(200);
      const asked = await agent
        .post('/password/forgot')
        .type('form')
        .send({ _csrf: csrfFrom(form.text), email: 'alice@example.com' });
      assert.ok(asked.status < 400, String(asked.status));
      assert.equal(await countRows(t.db, 'mail_outbox'), outbox);
      const event = await t
        .db('audit_events')
        .where({ action: 'auth.password_reset_requested' })
        .orderBy('id', 'desc')
        .first();
      assert.equal(JSON.parse(event.after_state).directory, true);
    });

    it('the throttles apply before any directory work: past the budget the answer is 429 even with the directory down', async () => {
      t.clock.advance(16 * 60_000);
      for (let i = 0; i < 5; i++) assert.equal((await login(t.app, 'carol@example.com', `wrong ${i}`)).res.status, 401);
      await configure(admin, formFor(slapd, { ldap_url: slapd.downUrl, ldap_bind_password: '' }));
      const sixth = await login(t.app, 'carol@example.com', PASSWORDS.carol);
      assert.equal(sixth.res.status, 429);
      await configure(admin, formFor(slapd, { ldap_bind_password: '' }));
      t.clock.advance(16 * 60_000);
    });

    it('two-factor still applies to a directory account that has it', async () => {
      const row = await accountRow(t.db, 'alice@example.com');
      await t.db('accounts').where({ id: row.id }).update({ totp_enabled_at: new Date(), totp_secret: 'v1.sealed' });
      const { res } = await login(t.app, 'alice@example.com', PASSWORDS.alice);
      assert.equal(res.status, 303);
      assert.equal(res.headers.location, '/login/two-factor');
      await t.db('accounts').where({ id: row.id }).update({ totp_enabled_at: null, totp_secret: null });
    });

    it('the directory down: a clear, non-leaking message, audited; the local break-glass admin still signs in', async () => {
      await configure(admin, formFor(slapd, { ldap_url: slapd.downUrl, ldap_bind_password: '' }));
      const { res } = await login(t.app, 'alice@example.com', PASSWORDS.alice);
      assert.equal(res.status, 503);
      assert.match(res.text, /staff directory could not be reached/);
      assert.doesNotMatch(res.text, /ECONNREFUSED|47203|127\.0\.0\.1/);
      assert.equal((await lastFailure(t.db))!.reason, 'ldap_unavailable');
      assert.ok(
        t.logs.some(
          (l) => /directory could not answer/.test(String(l.msg)) && /ECONNREFUSED|connect/i.test(String(l.cause)),
        ),
      );
      const agent = await loginAgent(t.app, breakGlass.email, breakGlass.password);
      await agent.get('/admin').expect(200);
      await configure(admin, formFor(slapd, { ldap_bind_password: '' }));
    });

    it('an untrusted certificate (no CA configured) is refused like an unreachable server', async () => {
      await configure(admin, formFor(slapd, { ldap_ca_pem: '', ldap_bind_password: '' }));
      const { res } = await login(t.app, 'alice@example.com', PASSWORDS.alice);
      assert.equal(res.status, 503);
      assert.ok(t.logs.some((l) => /self.signed|certificate/i.test(String(l.cause))));
      await configure(admin, formFor(slapd, { ldap_bind_password: '' }));
    });

    it('LDAP switched off: directory accounts cannot sign in (they have no local password)', async () => {
      await configure(admin, formFor(slapd, { ldap_enabled: undefined, ldap_bind_password: '' }));
      assert.equal((await login(t.app, 'alice@example.com', PASSWORDS.alice)).res.status, 401);
      await configure(admin, formFor(slapd, { ldap_bind_password: '' }));
      assert.equal((await login(t.app, 'alice@example.com', PASSWORDS.alice)).res.status, 303);
    });

    it('removed from the group: the next login is refused, the account disabled and its sessions ended (audited)', async () => {
      const carol = await login(t.app, 'carol@example.com', PASSWORDS.carol);
      assert.equal(carol.res.status, 303);
      await carol.agent.get('/admin').expect(200);
      await slapd.removeFromGroup('carol');
      const refused = await login(t.app, 'carol@example.com', PASSWORDS.carol);
      assert.equal(refused.res.status, 403);
      const row = await accountRow(t.db, 'carol@example.com');
      assert.equal(Boolean(row.disabled), true);
      const disabled = await t
        .db('audit_events')
        .where({ action: 'account.disabled_by_directory', object_id: String(row.id) });
      assert.equal(disabled.length, 1);
      assert.equal((await lastFailure(t.db))!.reason, 'ldap_not_in_group');
      // The session carol had before is over.
      const after = await carol.agent.get('/admin');
      assert.equal(after.status, 303);
      assert.match(after.headers.location, /^\/login/);
    });
  });

  describe('configured by the environment', () => {
    let t: TestApp;

    before(async () => {
      t = await buildTestApp({ ldap: settingsFor(slapd, { url: slapd.ldapUrl, startTls: true }) });
    });
    after(async () => t.close());

    it('wins over the console, which shows it read-only and refuses changes; staff sign in over StartTLS', async () => {
      const { agent } = await adminAgent(t);
      const page = await agent.get('/admin/settings').expect(200);
      assert.match(page.text, /come from the server environment/);
      assert.match(page.text, new RegExp(slapd.ldapUrl.replace(/[.:/]/g, '\\$&')));
      assert.doesNotMatch(page.text, /name="ldap_url"/);
      assert.doesNotMatch(page.text, new RegExp(SERVICE_PASSWORD));
      const refused = await agent
        .post('/admin/settings/ldap')
        .type('form')
        .send({ _csrf: csrfFrom(page.text), ...formFor(slapd) });
      assert.equal(refused.status, 409);
      assert.equal(await findStoredLdap(t.db), null);
      const { res } = await login(t.app, 'alice@example.com', PASSWORDS.alice);
      assert.equal(res.status, 303);
      assert.equal((await accountRow(t.db, 'alice@example.com')).role, 'admin');
    });

    it('a directory address that is a local manager account is never taken over', async () => {
      await createAccount(t.db, { email: 'bob@example.com', role: 'manager' });
      const { res } = await login(t.app, 'bob@example.com', PASSWORDS.bob);
      assert.equal(res.status, 401);
      assert.equal((await accountRow(t.db, 'bob@example.com')).role, 'manager');
    });
  });

  describe('the periodic directory check (job ldap.check)', () => {
    let t: TestApp;
    const ctxOf = () => t.app.locals.ctx;
    const checkJobs = () => t.db('jobs').where({ kind: 'ldap.check' }).select('state');

    before(async () => {
      t = await buildTestApp({ ldap: settingsFor(slapd) });
    });
    after(async () => t.close());

    it('is enqueued every five minutes only while LDAP is in use', async () => {
      const off = await buildTestApp();
      try {
        await enqueuePeriodicJobs(off.app.locals.ctx);
        assert.equal(await countRows(off.db, 'jobs', { kind: 'ldap.check' }), 0, 'no LDAP: no job rows');
      } finally {
        await off.close();
      }
      await enqueuePeriodicJobs(ctxOf());
      assert.equal((await checkJobs()).length, 1);
      t.clock.advance(5 * 60_000);
      await enqueuePeriodicJobs(ctxOf());
      assert.equal((await checkJobs()).length, 2);
    });

    it('ends the sessions of staff who left the admin group without waiting for their next login; members stay; audited', async () => {
      const alice = await login(t.app, 'alice@example.com', PASSWORDS.alice);
      const dave = await login(t.app, 'dave@example.com', PASSWORDS.dave);
      assert.deepEqual([alice.res.status, dave.res.status], [303, 303]);
      await dave.agent.get('/admin').expect(200);
      await slapd.removeFromGroup('dave');
      // dave's session lasts until the check runs (here: the job, run by the queue as a runner would).
      await dave.agent.get('/admin').expect(200);
      await runDueJobs(ctxOf(), { limit: 10 });
      assert.deepEqual(
        (await checkJobs()).map((j) => j.state),
        ['done', 'done'],
      );
      const row = await accountRow(t.db, 'dave@example.com');
      assert.equal(Boolean(row.disabled), true);
      const after = await dave.agent.get('/admin');
      assert.equal(after.status, 303);
      assert.match(after.headers.location, /^\/login/);
      await alice.agent.get('/admin').expect(200);
      assert.equal(Boolean((await accountRow(t.db, 'alice@example.com')).disabled), false);
      const audit = await t
        .db('audit_events')
        .where({ action: 'account.disabled_by_directory', object_id: String(row.id) });
      assert.equal(audit.length, 1);
      assert.equal(audit[0].actor_label, 'directory check');
      assert.deepEqual(JSON.parse(String(audit[0].after_state)), {
        disabled: true,
        dn: `uid=dave,ou=people,${SUFFIX}`,
        group: ADMIN_GROUP,
        via: 'check',
        standing: 'not_member',
      });
      // A second run finds nobody left to disable.
      assert.equal(await checkDirectoryAccounts(ctxOf()), 0);
    });

    it('an entry deleted from the directory is disabled as gone', async () => {
      const alice = await accountRow(t.db, 'alice@example.com');
      await t
        .db('accounts')
        .where({ id: alice.id })
        .update({ directory_dn: `uid=alice-left,ou=people,${SUFFIX}` });
      try {
        assert.equal(await checkDirectoryAccounts(ctxOf()), 1);
        const audit = await t
          .db('audit_events')
          .where({ action: 'account.disabled_by_directory', object_id: String(alice.id) })
          .first();
        assert.equal(JSON.parse(String(audit.after_state)).standing, 'gone');
      } finally {
        await t.db('accounts').where({ id: alice.id }).update({ directory_dn: alice.directory_dn, disabled: false });
      }
    });

    it('a directory that cannot answer disables nobody', async () => {
      const down = await buildTestApp({ ldap: settingsFor(slapd, { url: slapd.downUrl }) });
      try {
        await createAccount(down.db, { email: 'erin@example.com', role: 'admin' });
        await down
          .db('accounts')
          .where({ email: 'erin@example.com' })
          .update({ directory_dn: `uid=erin,ou=people,${SUFFIX}` });
        assert.equal(await checkDirectoryAccounts(down.app.locals.ctx), 0);
        assert.equal(Boolean((await accountRow(down.db, 'erin@example.com')).disabled), false);
      } finally {
        await down.close();
      }
    });
  });
});
