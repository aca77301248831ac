import assert from 'node:assert/strict';
import type { ParsedMail } from 'mailparser';
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
import { portalWorld } from '../helpers/portal.ts';
import { fromOf, replyToOf, startSmtp, toOf } from '../helpers/smtp.ts';
import * as brandings from '../../app/models/brandings.ts';
import * as catalog from '../../app/models/catalog.ts';
import { runDueJobs } from '../../app/lib/queue.ts';
import { MAIL_KINDS, SAMPLE_DATA, sendMail } from '../../app/services/mail.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;

const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);

describe('Branded, localized mail through a real SMTP server', function () {
  this.timeout(60_000);
  let t: TestApp;
  let w: World;
  let smtp: Awaited<ReturnType<typeof startSmtp>>;
  let brandingId: number;
  const USERS = 'users.northwind.test';

  before(async () => {
    smtp = await startSmtp();
    t = await buildTestApp({ smtpUrl: `smtp://127.0.0.1:${smtp.port}`, mailFrom: 'Portico <portal@vendor.example>' });
    w = await portalWorld(t.db);
    // The sender, reply-to and footer are set in the console's branding form.
    const { agent } = await adminAgent(t);
    const created = await submitForm(agent, '/admin/brandings/new', '/admin/brandings', {
      name: 'northwind',
      display_name: 'Northwind Licensing',
      primary_color: '#123456',
      accent_color: '#abcdef',
      support_email: 'support@northwind.test',
      default_language: 'de',
      show_powered_by: 'on',
      mail_from_name: 'Northwind Support',
      mail_reply_to: 'help@northwind.test',
      mail_footer: 'Northwind Ltd, 1 Harbour Road',
    });
    assert.equal(created.status, 303, created.text);
    brandingId = Number(created.headers.location!.split('/').pop());
    const now = new Date();
    await brandings.insertHost(t.db, brandingId, USERS, 'portal', now);
    await brandings.insertHost(t.db, brandingId, 'offline.northwind.test', 'offline', now);
    await brandings.insertHost(t.db, brandingId, 'northwind.test', null, now);
    await brandings.setLogo(t.db, brandingId, { data: PNG, mime: 'image/png' }, now);
    await smtp.take();
  });
  after(async () => {
    await t.close();
    await smtp.close();
  });

  /** Runs the queue and returns what the SMTP server received. */
  async function delivered(): Promise<ParsedMail[]> {
    await runDueJobs(t.app.locals.ctx);
    return smtp.take();
  }

  function assertBranded(m: ParsedMail) {
    assert.equal(fromOf(m)?.name, 'Northwind Support');
    assert.equal(fromOf(m)?.address, 'portal@vendor.example', 'the address stays MAIL_FROM');
    assert.equal(replyToOf(m), 'help@northwind.test');
    const html = String(m.html);
    assert.ok(html.includes(`src="http://${USERS}/branding/logo"`), 'the logo on a host of the branding');
    assert.ok(html.includes('#123456'), 'the branding colour');
    assert.ok(html.includes('Northwind Ltd, 1 Harbour Road') && m.text!.includes('Northwind Ltd, 1 Harbour Road'));
    for (const part of [html, m.text!]) {
      assert.ok(!part.includes('portico.test'), 'no link on BASE_URL');
      assert.ok(!/localhost/.test(part));
    }
  }

  it('a dispatch made on a bound host links to the branding’s offline and air-gap hosts, in the branding’s language', async () => {
    const manager = await loginAgent(t.app, w.managerAll.email, w.managerAll.password, { Host: USERS });
    const page = await manager.get(`/orders/${w.orderA}/dispatch`).set('Host', USERS).expect(200);
    await manager
      .post(`/orders/${w.orderA}/dispatch`)
      .set('Host', USERS)
      .type('form')
      .send({ _csrf: csrfFrom(page.text), [`email_${w.licenseA}`]: 'kim@example.com' })
      .expect(303);
    const [mail, ...more] = await delivered();
    assert.equal(more.length, 0);
    assert.equal(toOf(mail!), 'kim@example.com');
    assert.equal(mail!.subject, 'Ihre Lizenz für Acme CAD', 'no account: the branding’s default language (German)');
    assertBranded(mail!);
    const key = (await t.db('licenses').where({ id: w.licenseA }).first('license_key')).license_key as string;
    for (const part of [String(mail!.html), mail!.text!]) {
      assert.ok(part.includes(key), 'the key');
      assert.ok(part.includes('http://offline.northwind.test/'), 'the offline portal on its bound host, at /');
      assert.ok(part.includes('http://northwind.test/airgap'), 'the air-gap portal on the branding’s unbound host');
    }
    assert.ok(!mail!.text!.includes('<'), 'the plain-text part has no markup');
  });

  it('a password reset asked on a bound host: the account’s language, a link on that host that works', async () => {
    const { email } = await createAccount(t.db, { role: 'manager', language: 'fr', name: 'Zoé' });
    const agent = request.agent(t.app);
    const page = await agent.get('/password/forgot').set('Host', USERS).expect(200);
    await agent
      .post('/password/forgot')
      .set('Host', USERS)
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email })
      .expect(303);
    const [mail] = await delivered();
    assert.equal(mail!.subject, 'Réinitialiser votre mot de passe Northwind Licensing');
    assert.match(mail!.text!, /^Bonjour Zoé,/);
    assertBranded(mail!);
    const link = /http:\/\/users\.northwind\.test(\/password\/reset\/[\w-]+)/.exec(mail!.text!);
    assert.ok(link, mail!.text);
    assert.ok(String(mail!.html).includes(`href="${link[0]}"`), 'the same link in the HTML part');
    await request(t.app).get(link[1]!).set('Host', USERS).expect(200);
  });

  it('a forged Host header never gets into a link: an unknown host gets BASE_URL', async () => {
    const { email } = await createAccount(t.db, { role: 'manager', language: 'en' });
    const agent = request.agent(t.app);
    const page = await agent.get('/password/forgot').set('Host', 'evil.example').expect(200);
    await agent
      .post('/password/forgot')
      .set('Host', 'evil.example')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email })
      .expect(303);
    const [mail] = await delivered();
    assert.equal(mail!.subject, 'Reset your Portico password');
    assert.match(mail!.text!, /http:\/\/portico\.test\/password\/reset\/[\w-]+/);
    assert.ok(!mail!.text!.includes('evil.example') && !String(mail!.html).includes('evil.example'));
  });

  it('an invitation from the console: escaped names in HTML, the built-in sender, a German account gets German', async () => {
    const { agent } = await adminAgent(t);
    const invite = await submitForm(agent, '/admin/managers/new', '/admin/managers', {
      email: 'evil@reseller.example',
      name: '<script>alert(1)</script> & Co',
      language: 'de',
    });
    assert.equal(invite.status, 303, invite.text);
    const [mail] = await delivered();
    assert.equal(mail!.subject, 'Ihr Portico-Konto');
    assert.equal(fromOf(mail!)?.name, 'Portico', 'no branding on the console host: the built-in name');
    const html = String(mail!.html);
    assert.ok(!html.includes('<script>'), 'nothing unescaped');
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co'));
    assert.ok(mail!.text!.includes('Guten Tag <script>alert(1)</script> & Co,'), 'plain text as typed');
    assert.match(mail!.text!, /http:\/\/portico\.test\/password\/reset\/[\w-]+/);
  });

  it('a license-user invitation made on a bound host: the invitee’s language, the inviter, a link on that host', async () => {
    const now = t.clock.now();
    const licenseB = await catalog.insertLicense(
      t.db,
      {
        orderId: w.orderB,
        productId: w.userProduct,
        policyId: w.userPolicy,
        licenseKey: null,
        entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, maxActivations: 2 },
        startDate: now,
      },
      now,
    );
    const user = await createAccount(t.db, { role: 'end_user', language: 'de' });
    await catalog.assignLicenseUser(t.db, w.userLicense, user.id, 1, now);
    const b = await loginAgent(t.app, w.managerB.email, w.managerB.password, { Host: USERS });
    const page = await b.get('/account').set('Host', USERS).expect(200);
    await b
      .post(`/licenses/${licenseB}/users`)
      .set('Host', USERS)
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email: user.email, max_activations: '2' })
      .expect(303);
    const [mail] = await delivered();
    assert.equal(toOf(mail!), user.email);
    assert.equal(mail!.subject, 'Einladung zur Nutzung einer Lizenz von Acme Analytics');
    assertBranded(mail!);
    assert.match(mail!.text!, /http:\/\/users\.northwind\.test\/invitations\/[\w-]+/);
  });

  it('extra headers a sender asks for travel with the outbox row to SMTP', async () => {
    await sendMail(t.app.locals.ctx, 'reset', {
      to: 'headers@example.com',
      language: 'en',
      headers: { 'List-Unsubscribe': '<http://portico.test/unsubscribe/x>' },
      data: SAMPLE_DATA.reset,
    });
    const [mail] = await delivered();
    const line = mail!.headerLines.find((h) => h.key === 'list-unsubscribe')?.line;
    assert.equal(line, 'List-Unsubscribe: <http://portico.test/unsubscribe/x>');
  });

  it('the outbox keeps the rendered parts until SMTP takes the mail', async () => {
    const { email } = await createAccount(t.db, { role: 'manager', language: 'es' });
    const agent = request.agent(t.app);
    const page = await agent.get('/password/forgot').set('Host', USERS).expect(200);
    await agent
      .post('/password/forgot')
      .set('Host', USERS)
      .type('form')
      .send({ _csrf: csrfFrom(page.text), email });
    const row = await t.db('mail_outbox').where({ to_address: email }).first();
    assert.equal(row.reason, 'smtp_pending');
    assert.equal(row.from_name, 'Northwind Support');
    assert.equal(row.reply_to, 'help@northwind.test');
    assert.match(row.html_body, /<html lang="es">/);
    const job = await t.db('jobs').where({ kind: 'mail.send' }).orderBy('id', 'desc').first();
    assert.deepEqual(JSON.parse(job.payload), { outboxId: row.id }, 'the job carries the row id only');
    const [mail] = await delivered();
    assert.equal(mail!.subject, 'Restablecer su contraseña de Northwind Licensing');
  });
});

describe('Console → Mail templates (preview)', function () {
  this.timeout(60_000);
  let t: TestApp;
  let w: World;
  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
  });
  after(async () => t.close());

  it('lists every kind and renders each for every language, for the built-in look and a branding', async () => {
    const { agent } = await adminAgent(t);
    const list = await agent.get('/admin/mail-templates').expect(200);
    for (const kind of MAIL_KINDS) assert.ok(list.text.includes(`/admin/mail-templates/${kind}`), kind);
    const id = await brandings.insert(
      t.db,
      { name: 'acme', displayName: 'Acme <Licensing>', mailFromName: 'Acme Sender' },
      new Date(),
    );
    for (const kind of MAIL_KINDS)
      for (const language of ['en', 'de', 'fr', 'es'])
        for (const branding of ['', String(id)]) {
          const page = await agent.get(`/admin/mail-templates/${kind}`).query({ language, branding }).expect(200);
          assert.match(page.text, /<iframe[^>]*sandbox=""[^>]*srcdoc="&lt;!doctype html&gt;/, `${kind} ${language}`);
          assert.ok(page.text.includes(`&lt;html lang=&#34;${language}&#34;&gt;`), `${kind} in ${language}`);
          assert.match(page.text, /<pre class="mail-preview-text"/);
          if (branding) assert.ok(page.text.includes('Acme Sender'));
          if (branding) assert.ok(!page.text.includes('<Licensing>'), 'nothing unescaped');
        }
  });

  it('the branding form refuses a bad reply-to address and an overlong footer (422, field errors)', async () => {
    const { agent } = await adminAgent(t);
    const fields = {
      name: 'bad-mail',
      display_name: 'Bad',
      primary_color: '#123456',
      accent_color: '#abcdef',
      default_language: 'en',
    };
    const bad = await submitForm(agent, '/admin/brandings/new', '/admin/brandings', {
      ...fields,
      mail_reply_to: 'not an address',
      mail_footer: 'x'.repeat(501),
    });
    assert.equal(bad.status, 422);
    assert.match(bad.text, /id="field-mail_reply_to"[^>]*aria-invalid="true"/);
    assert.match(bad.text, /id="field-mail_footer"[^>]*aria-invalid="true"/);
    assert.equal(await t.db('brandings').where({ name: 'bad-mail' }).first(), undefined);
  });

  it('is for admins only; an unknown kind, branding or language is a 404', async () => {
    const manager = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    await manager.get('/admin/mail-templates').expect(404);
    await manager.get('/admin/mail-templates/dispatch').expect(404);
    await request(t.app).get('/admin/mail-templates').expect(303);
    const { agent } = await adminAgent(t);
    await agent.get('/admin/mail-templates/nothing').expect(404);
    await agent.get('/admin/mail-templates/dispatch?branding=999999').expect(404);
    await agent.get('/admin/mail-templates/dispatch?language=xx').expect(404);
  });
});
