import assert from 'node:assert/strict';
import type { ParsedMail } from 'mailparser';
import request from 'supertest';
import { buildTestApp, countRows, type TestApp } from '../helpers/app.ts';
import { startSmtp } from '../helpers/smtp.ts';
import * as brandings from '../../app/models/brandings.ts';
import { runDueJobs } from '../../app/lib/queue.ts';
import { SAMPLE_DATA, sendMail } from '../../app/services/mail.ts';

/** The URL in a `List-Unsubscribe: <url>` header line, as a mail client reads it. */
function listUnsubscribeUrl(mail: ParsedMail): URL {
  const line = mail.headerLines.find((h) => h.key === 'list-unsubscribe')?.line;
  const match = /^List-Unsubscribe:\s*<([^>]+)>$/i.exec(line ?? '');
  assert.ok(match, `a List-Unsubscribe header: ${line}`);
  return new URL(match[1]!);
}

/**
 * A notification carries the one-click unsubscribe (RFC 2369 / RFC 8058) on its branding's host, and
 * the link a mail client takes from the received header works with no session. Real SMTP server,
 * real HTTP, real database.
 */
describe('Unsubscribe links in mail received over SMTP', function () {
  this.timeout(60_000);
  let t: TestApp;
  let smtp: Awaited<ReturnType<typeof startSmtp>>;
  let brandingId: number;
  const USERS = 'users.northwind.test';

  before(async () => {
    smtp = await startSmtp();
    t = await buildTestApp({ smtpUrl: `smtp://127.0.0.1:${smtp.port}`, mailFrom: 'Portico <portal@vendor.example>' });
    const now = new Date();
    brandingId = await brandings.insert(
      t.db,
      {
        name: 'northwind',
        displayName: 'Northwind Licensing',
        primaryColor: '#123456',
        accentColor: '#abcdef',
        defaultLanguage: 'en',
      },
      now,
    );
    await brandings.insertHost(t.db, brandingId, USERS, 'portal', now);
    await brandings.insertHost(t.db, brandingId, 'northwind.test', null, now);
  });
  after(async () => {
    await t.close();
    await smtp.close();
  });

  async function delivered(): Promise<ParsedMail[]> {
    await runDueJobs(t.app.locals.ctx);
    return smtp.take();
  }

  it('a job’s mail for an order of a branding: headers and footer link on the branding’s host; POSTing the header’s URL with no session turns the kind off', async () => {
    // A job (no request): the order's branding brands it (MailDeps.brandingId).
    await sendMail({ ...t.app.locals.ctx, brandingId }, 'renewal-state', {
      to: 'Kim@Example.com',
      language: 'en',
      data: SAMPLE_DATA['renewal-state'],
      unsubscribe: 'license_expiring',
    });
    const [mail, ...more] = await delivered();
    assert.equal(more.length, 0);
    const url = listUnsubscribeUrl(mail!);
    assert.equal(url.origin, 'http://northwind.test', 'the branding’s (unbound) host, not BASE_URL');
    assert.match(url.pathname, /^\/unsubscribe\/[^/]+$/);
    const post = mail!.headerLines.find((h) => h.key === 'list-unsubscribe-post')?.line;
    assert.equal(post, 'List-Unsubscribe-Post: List-Unsubscribe=One-Click');
    assert.ok(String(mail!.html).includes(`href="${url.href}"`), 'the footer link in the HTML part');
    assert.ok(mail!.text!.includes(url.href), 'the footer link in the plain-text part');
    assert.match(mail!.text!, /Turn these e-mails off/);

    // The mail client's one-click POST: the URL from the header, its host, the RFC 8058 body, no cookie.
    const res = await request(t.app)
      .post(url.pathname)
      .set('Host', url.host)
      .type('form')
      .send('List-Unsubscribe=One-Click')
      .expect(200);
    assert.match(res.text, /Northwind Licensing/, 'the page carries the branding of the host');
    assert.deepEqual(await t.db('notification_optouts').select('email', 'kind'), [
      { email: 'kim@example.com', kind: 'license_expiring' },
    ]);
  });

  it('a mail made from a request on the branding’s portal host links there; GET of that link only asks', async () => {
    await sendMail({ ...t.app.locals.ctx, origin: USERS }, 'renewal-state', {
      to: 'lee@example.com',
      language: 'en',
      data: SAMPLE_DATA['renewal-state'],
      unsubscribe: 'manager_digest',
    });
    const [mail] = await delivered();
    const url = listUnsubscribeUrl(mail!);
    assert.equal(url.host, USERS);
    const page = await request(t.app).get(url.pathname).set('Host', url.host).expect(200);
    assert.match(page.text, /Turn “Daily digest of my orders” e-mails off for lee@example\.com\?/);
    assert.equal(await countRows(t.db, 'notification_optouts', { email: 'lee@example.com' }), 0);
    await request(t.app)
      .post(url.pathname)
      .set('Host', url.host)
      .type('form')
      .send('List-Unsubscribe=One-Click')
      .expect(200);
    assert.equal(
      await countRows(t.db, 'notification_optouts', { email: 'lee@example.com', kind: 'manager_digest' }),
      1,
    );
  });

  it('a mail without `unsubscribe` (a password reset) has no unsubscribe header and no footer link', async () => {
    await sendMail(t.app.locals.ctx, 'reset', { to: 'max@example.com', language: 'en', data: SAMPLE_DATA.reset });
    const [mail] = await delivered();
    assert.equal(
      mail!.headerLines.find((h) => h.key === 'list-unsubscribe'),
      undefined,
    );
    assert.ok(!mail!.text!.includes('/unsubscribe/'));
  });
});
