import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { adminAgent, buildTestApp, createAccount, csrfFrom, loginAgent, type TestApp } from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import * as catalog from '../../app/models/catalog.ts';
import type { Config } from '../../config/index.ts';
import { PERMISSIONS } from '../../app/policies/permissions.ts';
import { runDueJobs } from '../../app/lib/queue.ts';
import { MAIL_ATTEMPTS } from '../../app/lib/mailer.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;
type Agent = Awaited<ReturnType<typeof loginAgent>>;

/** A real SMTP server on loopback; `close` it first to have a port where nothing listens. */
async function startSmtp() {
  const received: string[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData(stream, session, callback) {
      stream.on('data', () => {});
      stream.on('end', () => {
        received.push(...session.envelope.rcptTo.map((r) => r.address));
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return { port, received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Honest feedback: messages say whether mail went out or waits in the outbox, in plural forms; managers see their own mails' fate. */
describe('Mail delivery, said honestly', function () {
  this.timeout(60_000);

  async function world(overrides: Partial<Config> = {}) {
    const t = await buildTestApp(overrides);
    const w = await portalWorld(t.db);
    const now = new Date();
    const keyed = [w.licenseA];
    for (const c of ['C', 'D']) {
      keyed.push(
        await catalog.insertLicense(
          t.db,
          {
            orderId: w.orderA,
            productId: w.product,
            policyId: w.policy,
            licenseKey: Array(7).fill(c.repeat(4)).join('-'),
            entitlements: catalog.DEFAULT_ENTITLEMENTS,
            startDate: now,
          },
          now,
        ),
      );
    }
    return { t, w, keyed };
  }

  /** POSTs with a CSRF token and follows the redirect: the page that shows the flash messages. */
  async function submit(agent: Agent, url: string, fields: Record<string, unknown>) {
    const token = csrfFrom((await agent.get('/account')).text);
    const res = await agent
      .post(url)
      .type('form')
      .send({ _csrf: token, ...fields });
    assert.equal(res.status, 303, res.text);
    return (await agent.get(res.headers.location!).expect(200)).text;
  }

  const dispatch = (agent: Agent, w: World, items: Record<number, string>) =>
    submit(
      agent,
      `/portal/orders/${w.orderA}/dispatch`,
      Object.fromEntries(Object.entries(items).map(([id, email]) => [`email_${id}`, email])),
    );

  describe('without SMTP', () => {
    let t: TestApp;
    let w: World;
    let keyed: number[];
    before(async () => {
      ({ t, w, keyed } = await world());
    });
    after(async () => t.close());

    it('a dispatch says the licenses are queued for e-mail, with the right plural, in the manager’s language', async () => {
      const all = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
      const two = await dispatch(all, w, { [keyed[0]!]: 'ann@example.com', [keyed[1]!]: 'bob@example.com' });
      assert.ok(two.includes('2 licenses queued for e-mail'), two);
      assert.ok(!two.includes('sent.'));
      const one = await dispatch(all, w, { [keyed[2]!]: 'cid@example.com' });
      assert.ok(one.includes('1 license queued for e-mail: the mail waits in the outbox'));

      const german = await createAccount(t.db, { role: 'manager', language: 'de' });
      await catalog.assignManager(t.db, german.id, w.orderA, new Date());
      await catalog.grantPermissions(t.db, german.id, PERMISSIONS);
      const de = await loginAgent(t.app, german.email, german.password);
      const page = await dispatch(de, w, { [keyed[0]!]: 'dora@example.com' });
      assert.ok(page.includes('1 Lizenz zum Versand vorgemerkt'), page);
    });

    it('a manager sees the mails they caused and their state; another manager sees none of them (404 for one)', async () => {
      const all = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
      const list = await all.get('/portal/mail').expect(200);
      for (const to of ['ann@example.com', 'bob@example.com', 'cid@example.com'])
        assert.ok(list.text.includes(to), `${to} listed`);
      assert.ok(!list.text.includes('dora@example.com'), 'another manager’s mail is not listed');
      assert.ok(list.text.includes('Queued in the outbox'));
      const mail = await t.db('mail_outbox').where({ to_address: 'ann@example.com' }).first();
      const one = await all.get(`/portal/mail/${mail.id}`).expect(200);
      assert.ok(one.text.includes('ann@example.com'));
      assert.ok(!one.text.includes(mail.text_body), 'the text (the key, a link) is not shown');

      const other = await loginAgent(t.app, w.managerB.email, w.managerB.password);
      assert.ok(!(await other.get('/portal/mail').expect(200)).text.includes('ann@example.com'));
      await other.get(`/portal/mail/${mail.id}`).expect(404);
      const endUser = await loginAgent(t.app, w.endUser.email, w.endUser.password);
      await endUser.get(`/portal/mail/${mail.id}`).expect(404);
    });

    it('invitations say they are queued: a new manager invited to an order, a manager invited in the console', async () => {
      const all = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
      const role = await t.db('roles').where({ builtin: 'viewer' }).first();
      const page = await submit(all, `/portal/orders/${w.orderA}/managers`, {
        email: 'newbie@example.com',
        name: 'Newbie',
        role_id: role.id,
      });
      assert.ok(page.includes('the invitation to newbie@example.com is queued'), page);
      assert.ok((await all.get('/portal/mail').expect(200)).text.includes('newbie@example.com'));

      const { agent: admin } = await adminAgent(t, 'fr');
      const invited = await submit(admin, '/admin/managers', {
        email: 'chef@example.com',
        name: 'Chef',
        language: 'fr',
      });
      assert.ok(invited.includes('L’invitation à chef@example.com est en attente'), invited);
      assert.ok(!invited.includes('a été envoyée'));
    });
  });

  describe('with SMTP (sent by the job queue)', () => {
    it('"being sent" until the queue hands it over; then "Sent" for its causer, without its text, and not in the outbox', async () => {
      const smtp = await startSmtp();
      const { t, w, keyed } = await world({ smtpUrl: `smtp://127.0.0.1:${smtp.port}` });
      try {
        const all = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
        const one = await dispatch(all, w, { [keyed[0]!]: 'eve@example.com' });
        assert.ok(one.includes('1 license is being sent by e-mail.'), one);
        assert.ok(!one.includes('license sent.'), 'the request does not claim what SMTP has not yet accepted');
        const two = await dispatch(all, w, { [keyed[1]!]: 'fay@example.com', [keyed[2]!]: 'gus@example.com' });
        assert.ok(two.includes('2 licenses are being sent by e-mail.'));
        assert.deepEqual(smtp.received, [], 'the requests did not wait on SMTP');
        const before = (await all.get('/portal/mail').expect(200)).text;
        assert.ok(before.includes('Being sent (waiting for the mail server)'), before);
        const job = await t.db('jobs').where({ kind: 'mail.send' }).first();
        assert.deepEqual(Object.keys(JSON.parse(job.payload)), ['outboxId'], 'the job carries the mail’s id only');
        assert.equal(await runDueJobs(t.app.locals.ctx), 3);
        assert.deepEqual(smtp.received.sort(), ['eve@example.com', 'fay@example.com', 'gus@example.com']);
        const list = (await all.get('/portal/mail').expect(200)).text;
        assert.ok(list.includes('eve@example.com') && list.includes('>Sent<'), list);
        const kept = await t.db('mail_outbox').where({ to_address: 'eve@example.com' }).first();
        assert.equal(kept.text_body, '');
        const { agent: admin } = await adminAgent(t);
        const outbox = (await admin.get('/admin/outbox').expect(200)).text;
        assert.ok(!outbox.includes('eve@example.com'), 'a sent mail is not waiting in the outbox');
        await admin.get(`/admin/outbox/${kept.id}`).expect(404);
      } finally {
        await t.close();
        await smtp.close();
      }
    });

    it('SMTP refused: retried with backoff, and after the last attempt the manager sees it was not delivered', async () => {
      const smtp = await startSmtp();
      await smtp.close(); // nothing listens there now
      const { t, w, keyed } = await world({ smtpUrl: `smtp://127.0.0.1:${smtp.port}` });
      try {
        const all = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
        const page = await dispatch(all, w, { [keyed[0]!]: 'hal@example.com' });
        assert.ok(page.includes('1 license is being sent by e-mail.'));
        const ctx = t.app.locals.ctx;
        assert.equal(await runDueJobs(ctx), 1);
        const retrying = await t.db('mail_outbox').where({ to_address: 'hal@example.com' }).first();
        assert.equal(retrying.reason, 'smtp_pending', 'still being sent: it will be tried again');
        assert.ok(retrying.error, 'the error shows meanwhile');
        assert.ok((await all.get('/portal/mail').expect(200)).text.includes('Being sent'));
        for (let attempt = 2; attempt <= MAIL_ATTEMPTS; attempt++) {
          t.clock.advance(3600_000);
          assert.equal(await runDueJobs(ctx), 1, `attempt ${attempt}`);
        }
        const job = await t.db('jobs').where({ kind: 'mail.send' }).first();
        assert.equal(job.state, 'failed');
        const mail = await t.db('mail_outbox').where({ to_address: 'hal@example.com' }).first();
        assert.equal(mail.reason, 'smtp_failed');
        assert.ok(mail.text_body.length > 0, 'kept with its text for the administrator');
        const list = (await all.get('/portal/mail').expect(200)).text;
        assert.ok(list.includes('Not delivered: kept in the outbox'));
      } finally {
        await t.close();
      }
    });
  });
});
