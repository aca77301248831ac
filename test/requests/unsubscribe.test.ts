import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import request from 'supertest';
import { SecretBox, dataDirSecretBox } from '../../app/crypto/secret-box.ts';
import { RateLimiter, clientOf } from '../../app/lib/rate-limiter.ts';
import { UNSUBSCRIBES_PER_CLIENT, unsubscribeToken } from '../../app/services/unsubscribe.ts';
import { buildTestApp, countRows, createAccount, csrfFrom, loginAgent, type TestApp } from '../helpers/app.ts';

const ONE_CLICK = 'List-Unsubscribe=One-Click';

/**
 * One-click unsubscribe (RFC 8058) and the account page's notification settings (docs/portal.md,
 * "Notifications"). Real HTTP, real database (SQLite, or MariaDB/MySQL with DATABASE_URL), no mocks.
 */
describe('Unsubscribing and notification preferences', function () {
  this.timeout(60_000);
  let t: TestApp;
  let box: SecretBox;
  const link = (email: string, kind: Parameters<typeof unsubscribeToken>[2]) =>
    `/unsubscribe/${encodeURIComponent(unsubscribeToken(box, email, kind))}`;
  const optouts = (email?: string) => countRows(t.db, 'notification_optouts', email ? { email } : {});
  const unsubscribedEvents = () => countRows(t.db, 'audit_events', { action: 'notification.unsubscribed' });

  before(async () => {
    t = await buildTestApp();
    box = dataDirSecretBox(t.dataDir);
  });
  after(async () => t.close());

  describe('the one-click link', () => {
    it('GET only asks: the page names the kind in words and the address, and changes nothing', async () => {
      const url = link('ann@example.com', 'license_expiring');
      const res = await request(t.app).get(url).expect(200);
      assert.match(res.text, /Turn “License expiring” e-mails off for ann@example\.com\?/);
      assert.match(res.text, /<form method="post" action="\/unsubscribe\/[^"]+">/);
      assert.ok(!res.text.replaceAll(url, '').includes('license_expiring'), 'words, not the code');
      assert.equal(await optouts(), 0);
      assert.equal(await unsubscribedEvents(), 0);
    });

    it('a mail client’s one-click POST, with no cookie and no CSRF token, turns the kind off: one row, audited as the address', async () => {
      const url = link('Bob@Example.com', 'maintenance_ending');
      const res = await request(t.app).post(url).type('form').send(ONE_CLICK).expect(200);
      assert.match(res.text, /“Maintenance ending” e-mails are now off for bob@example\.com\./);
      const rows = await t.db('notification_optouts').select('email', 'kind');
      assert.deepEqual(rows, [{ email: 'bob@example.com', kind: 'maintenance_ending' }]);
      const event = await t.db('audit_events').where({ action: 'notification.unsubscribed' }).first();
      assert.equal(event.actor_label, 'bob@example.com');
      assert.equal(event.actor_account_id, null);

      // Twice (a client retrying, a second click): still one row, one event, and a calm answer.
      const again = await request(t.app).post(url).type('form').send(ONE_CLICK).expect(200);
      assert.match(again.text, /were already off for bob@example\.com\. Nothing changed\./);
      assert.equal(await optouts('bob@example.com'), 1);
      assert.equal(await unsubscribedEvents(), 1);
    });

    it('works from another site too (a webmail posting cross-site), and only this route skips the CSRF and Origin checks', async () => {
      await request(t.app)
        .post(link('cara@example.com', 'lease_ending'))
        .set('Origin', 'https://mail.example.net')
        .set('Sec-Fetch-Site', 'cross-site')
        .type('form')
        .send(ONE_CLICK)
        .expect(200);
      assert.equal(await optouts('cara@example.com'), 1);
      // Any other POST still needs its token and a same-site origin.
      await request(t.app).post('/language').type('form').send({ language: 'de' }).expect(403);
      await request(t.app)
        .post('/language')
        .set('Sec-Fetch-Site', 'cross-site')
        .type('form')
        .send({ language: 'de' })
        .expect(403);
    });

    it('the page’s button posts the same form (no token in it) and says what it did', async () => {
      const agent = request.agent(t.app);
      const url = link('dan@example.com', 'manager_digest');
      const page = await agent.get(url).expect(200);
      assert.ok(!/name="_csrf"[^>]*>\s*<button/.test(page.text));
      const res = await agent.post(url).type('form').send({}).expect(200);
      assert.match(res.text, /“Daily digest of my orders” e-mails are now off for dan@example\.com\./);
      assert.equal(await optouts('dan@example.com'), 1);
    });

    it('a forged token (another address with a real tag), a changed kind or a damaged token: 404 with a clear message, no row', async () => {
      const token = unsubscribeToken(box, 'eve@example.com', 'license_expiring');
      const [, kind, tag] = token.split('.');
      const forged = `${Buffer.from('victim@example.com').toString('base64url')}.${kind}.${tag}`;
      const before = await optouts();
      for (const bad of [forged, token.replace('license_expiring', 'staff_digest'), `${token}x`, 'nonsense']) {
        const get = await request(t.app)
          .get(`/unsubscribe/${encodeURIComponent(bad)}`)
          .expect(404);
        assert.match(get.text, /This unsubscribe link is not valid/);
        const post = await request(t.app)
          .post(`/unsubscribe/${encodeURIComponent(bad)}`)
          .type('form')
          .send(ONE_CLICK);
        assert.equal(post.status, 404);
        assert.match(post.text, /This unsubscribe link is not valid/);
      }
      assert.equal(await optouts(), before);
      assert.equal(await optouts('victim@example.com'), 0);
    });

    it('a link made by another installation (another secret box key): 404, no row', async () => {
      const foreign = new SecretBox(() => crypto.randomBytes(32));
      const token = unsubscribeToken(foreign, 'fay@example.com', 'license_expiring');
      await request(t.app).post(`/unsubscribe/${token}`).type('form').send(ONE_CLICK).expect(404);
      await request(t.app).get(`/unsubscribe/${token}`).expect(404);
      assert.equal(await optouts('fay@example.com'), 0);
    });

    it('the link’s token (it names the address) is never logged nor cached', async () => {
      const token = unsubscribeToken(box, 'ivy@example.com', 'license_expiring');
      const get = await request(t.app).get(`/unsubscribe/${token}`).expect(200);
      assert.equal(get.headers['cache-control'], 'no-store');
      assert.equal(get.headers['referrer-policy'], 'no-referrer');
      const post = await request(t.app).post(`/unsubscribe/${token}`).type('form').send(ONE_CLICK).expect(200);
      assert.equal(post.headers['cache-control'], 'no-store');
      const all = JSON.stringify(t.logs);
      assert.ok(!all.includes(token.split('.')[0]!) && !all.includes(token.split('.')[2]!), 'no part of the token');
      assert.ok(all.includes('/unsubscribe/[REDACTED]'));
    });

    it('two one-click POSTs at the same instant leave one row and one audit event', async () => {
      const url = link('gil@example.com', 'seats_high');
      const answers = await Promise.all([0, 1, 2, 3].map(() => request(t.app).post(url).type('form').send(ONE_CLICK)));
      assert.deepEqual(
        answers.map((a) => a.status),
        [200, 200, 200, 200],
      );
      assert.equal(await optouts('gil@example.com'), 1);
      assert.equal(
        await countRows(t.db, 'audit_events', { action: 'notification.unsubscribed', actor_label: 'gil@example.com' }),
        1,
      );
    });

    it('an address with an account is told where to turn it back on; one without is not', async () => {
      const { email } = await createAccount(t.db, { role: 'end_user' });
      const withAccount = await request(t.app).post(link(email, 'license_expiring')).type('form').send(ONE_CLICK);
      assert.match(withAccount.text, /href="\/account#notifications"/);
      const without = await request(t.app)
        .post(link('nobody@example.com', 'license_expiring'))
        .type('form')
        .send(ONE_CLICK);
      assert.ok(!without.text.includes('/account#notifications'));
    });
  });

  describe('the account page', () => {
    const boxes = (html: string) => [...html.matchAll(/name="notify_(\w+)"( checked)?/g)].map((m) => [m[1], !!m[2]]);

    it('shows the kinds of the account’s role, in words, all on at first', async () => {
      const cases: [string, string[]][] = [
        ['end_user', ['license_expiring', 'maintenance_ending', 'lease_ending']],
        [
          'manager',
          ['license_expiring', 'maintenance_ending', 'lease_ending', 'seats_high', 'refusals_spike', 'manager_digest'],
        ],
        [
          'admin',
          [
            'license_expiring',
            'maintenance_ending',
            'lease_ending',
            'seats_high',
            'refusals_spike',
            'manager_digest',
            'staff_digest',
          ],
        ],
      ];
      for (const [role, kinds] of cases) {
        const a = await createAccount(t.db, { role: role as 'admin' | 'manager' | 'end_user' });
        const agent = await loginAgent(t.app, a.email, a.password);
        const page = await agent.get('/account').expect(200);
        assert.deepEqual(
          boxes(page.text),
          kinds.map((k) => [k, true]),
          role,
        );
        assert.match(page.text, /<legend>Send me these e-mails<\/legend>/);
        assert.match(page.text, /<label for="field-notify_license_expiring">License expiring<\/label>/);
      }
    });

    it('saves the own address’s opt-outs in one go, audited; a link’s opt-out shows there; ticking turns it back on', async () => {
      const me = await createAccount(t.db, { role: 'manager' });
      const agent = await loginAgent(t.app, me.email, me.password);
      // Turned off by a mail's link first: the page shows it off.
      await request(t.app).post(link(me.email, 'seats_high')).type('form').send(ONE_CLICK).expect(200);
      let page = await agent.get('/account').expect(200);
      assert.deepEqual(
        boxes(page.text).find(([k]) => k === 'seats_high'),
        ['seats_high', false],
      );
      // Keep only license_expiring and seats_high (ticked again).
      const saved = await agent
        .post('/account/notifications')
        .type('form')
        .send({ _csrf: csrfFrom(page.text), notify_license_expiring: 'on', notify_seats_high: 'on' })
        .expect(303);
      assert.equal(saved.headers.location, '/account#notifications');
      const off = (await t
        .db('notification_optouts')
        .where({ email: me.email })
        .orderBy('kind')
        .pluck('kind')) as string[];
      assert.deepEqual(off, ['lease_ending', 'maintenance_ending', 'manager_digest', 'refusals_spike']);
      const event = await t
        .db('audit_events')
        .where({ action: 'notification.preferences_changed' })
        .orderBy('id', 'desc')
        .first();
      assert.equal(Number(event.actor_account_id), me.id);
      assert.deepEqual(JSON.parse(event.after_state).off, [
        'maintenance_ending',
        'lease_ending',
        'refusals_spike',
        'manager_digest',
      ]);
      assert.deepEqual(JSON.parse(event.before_state).off, ['seats_high']);
      page = await agent.get('/account').expect(200);
      assert.match(page.text, /Your notification settings have been saved\./);
      assert.deepEqual(boxes(page.text), [
        ['license_expiring', true],
        ['maintenance_ending', false],
        ['lease_ending', false],
        ['seats_high', true],
        ['refusals_spike', false],
        ['manager_digest', false],
      ]);
      // Saving the same again changes nothing and writes no event.
      const events = await countRows(t.db, 'audit_events', { action: 'notification.preferences_changed' });
      await agent
        .post('/account/notifications')
        .type('form')
        .send({ _csrf: csrfFrom(page.text), notify_license_expiring: 'on', notify_seats_high: 'on' })
        .expect(303);
      assert.equal(await countRows(t.db, 'audit_events', { action: 'notification.preferences_changed' }), events);
    });

    it('only ever the own address: a manager cannot reach another account’s settings, and a kind outside the role stays as it is', async () => {
      const victim = await createAccount(t.db, { role: 'end_user' });
      const me = await createAccount(t.db, { role: 'end_user' });
      const agent = await loginAgent(t.app, me.email, me.password);
      const page = await agent.get('/account').expect(200);
      // The admin-only staff digest was turned off by a link; an end user's form does not offer it.
      await request(t.app).post(link(me.email, 'staff_digest')).type('form').send(ONE_CLICK).expect(200);
      await agent
        .post('/account/notifications')
        .type('form')
        .send({
          _csrf: csrfFrom(page.text),
          email: victim.email,
          account_id: String(victim.id),
          notify_staff_digest: 'on',
        })
        .expect(303);
      assert.equal(await optouts(victim.email), 0, 'nothing written for the other address');
      const mine = (await t
        .db('notification_optouts')
        .where({ email: me.email })
        .orderBy('kind')
        .pluck('kind')) as string[];
      assert.deepEqual(mine, ['lease_ending', 'license_expiring', 'maintenance_ending', 'staff_digest']);

      const manager = await createAccount(t.db, { role: 'manager' });
      const m = await loginAgent(t.app, manager.email, manager.password);
      const mPage = await m.get('/account').expect(200);
      await m
        .post(`/account/notifications?account=${victim.id}`)
        .type('form')
        .send({ _csrf: csrfFrom(mPage.text), email: victim.email })
        .expect(303);
      assert.equal(await optouts(victim.email), 0);
      assert.equal(await optouts(manager.email), 6, 'the manager’s own kinds, all off');
    });

    it('needs a login and a CSRF token', async () => {
      const res = await request(t.app).post('/account/notifications').type('form').send({});
      assert.ok(res.status === 403 || res.status === 303, String(res.status));
      const me = await createAccount(t.db, { role: 'manager' });
      const agent = await loginAgent(t.app, me.email, me.password);
      await agent.post('/account/notifications').type('form').send({}).expect(403);
      assert.equal(await optouts(me.email), 0);
      await request(t.app).get('/account').expect(303);
    });
  });

  // Last (mocha runs a suite's own tests before its child suites): it spends this client's budget.
  describe('limits', () => {
    it('an anonymous flood is refused before any work: 429 even for a valid link, no row', async () => {
      const key = RateLimiter.key('unsubscribe', clientOf('::ffff:127.0.0.1'));
      const state = await t.app.locals.ctx.limiter.hit(key, UNSUBSCRIBES_PER_CLIENT);
      for (let i = state.hits; i < UNSUBSCRIBES_PER_CLIENT.limit; i++)
        await t.app.locals.ctx.limiter.hit(key, UNSUBSCRIBES_PER_CLIENT);
      const res = await request(t.app).post(link('hal@example.com', 'license_expiring')).type('form').send(ONE_CLICK);
      assert.equal(res.status, 429);
      assert.ok(res.headers['retry-after']);
      await request(t.app).get(link('hal@example.com', 'license_expiring')).expect(429);
      assert.equal(await optouts('hal@example.com'), 0);
    });
  });
});
