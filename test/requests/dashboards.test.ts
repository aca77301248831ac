import assert from 'node:assert/strict';
import { buildTestApp, adminAgent, createAccount, loginAgent, type TestApp } from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import * as catalog from '../../app/models/catalog.ts';
import { RateLimiter } from '../../app/lib/rate-limiter.ts';
import { recordRefusal, type RefusalCode, type RefusalRecord } from '../../app/services/refusals.ts';
import { recordAudit } from '../../app/services/audit.ts';
import { LIVE_SEATS_LIMIT, ORDER_SEATS_MAX_AGE_MS, recentActivity } from '../../app/services/dashboards.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;
type Agent = Awaited<ReturnType<typeof loginAgent>>;

const DAY = 24 * 60 * 60 * 1000;

/** The license ids a filtered list page links to (the rows of its table). */
const licenseIdsOn = (html: string, base: '/portal/licenses/' | '/admin/licenses/') =>
  [...html.matchAll(new RegExp(`href="${base}(\\d+)"`, 'g'))].map((m) => Number(m[1])).sort((a, b) => a - b);

/** The decoded href of the link whose aria-label starts with `label`. */
const hrefLabelled = (html: string, label: RegExp) => {
  for (const m of html.matchAll(/<a href="([^"]+)" aria-label="([^"]+)"/g))
    if (label.test(m[2]!)) return m[1]!.replaceAll('&amp;', '&');
  return undefined;
};

describe('Dashboards', function () {
  this.timeout(60_000);
  let t: TestApp;
  let w: World;
  let managerA: Agent;
  let managerB: Agent;
  let admin: Agent;
  const expiring: Record<string, number> = {};
  let staleA: number;

  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    const now = t.clock.now();
    const issue = async (orderId: number, days: number | null, enabled = true) => {
      const id = await catalog.insertLicense(
        t.db,
        {
          orderId,
          productId: w.product,
          policyId: w.policy,
          licenseKey: null,
          entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, maxActivations: 2 },
          startDate: now,
        },
        now,
      );
      await t
        .db('licenses')
        .where({ id })
        .update({ enabled, expires_at: days === null ? null : new Date(now.getTime() + days * DAY) });
      return id;
    };
    // Order A: expiring in 10, 45 and 80 days, one in 200, one already expired, one disabled in 10.
    expiring.a10 = await issue(w.orderA, 10);
    expiring.a45 = await issue(w.orderA, 45);
    expiring.a80 = await issue(w.orderA, 80);
    await issue(w.orderA, 200);
    await issue(w.orderA, -3);
    await issue(w.orderA, 10, false);
    // Order B: one expiring in 5 days (never shown to A's manager).
    expiring.b5 = await issue(w.orderB, 5);
    // Devices: A's license has one not seen for 120 days, B's too; A's user device was seen today.
    await t.db('devices').update({ last_seen_at: now });
    await t
      .db('devices')
      .where({ id: w.deviceA })
      .update({ last_seen_at: new Date(now.getTime() - 120 * DAY) });
    await t
      .db('devices')
      .where({ id: w.deviceB })
      .update({ last_seen_at: new Date(now.getTime() - 120 * DAY) });
    staleA = w.licenseA;
    // Refusals as the services record them: A's license refused no_seats online (twice) and
    // expired offline; B's refused blacklisted; a forged request of no known license.
    const limiter = new RateLimiter(t.db, t.clock);
    const deps = { db: t.db, clock: t.clock, limiter };
    const actor = { accountId: null, label: null, ip: '203.0.113.9', requestId: null };
    const refuse = (r: Partial<RefusalRecord>, code: RefusalCode) =>
      recordRefusal(
        deps,
        actor,
        { action: 'activation.refused', channel: 'online', requestHash: null, hardwareId: 'HW-X', ...r },
        code,
      );
    await refuse({ licenseId: w.licenseA, orderId: w.orderA }, 'no_seats');
    await refuse({ licenseId: w.licenseA, orderId: w.orderA }, 'no_seats');
    await refuse({ licenseId: w.licenseA, orderId: w.orderA, channel: 'offline' }, 'expired');
    await refuse({ licenseId: w.licenseB, orderId: w.orderB, hardwareId: 'HW-SECRET-B' }, 'blacklisted');
    await refuse({ channel: 'offline' }, 'signature');
    // An activation of A's license on the air-gap channel, and failed sign-ins.
    await t.db('activation_history').insert({
      license_id: w.licenseA,
      event: 'activated',
      channel: 'airgap',
      hardware_id: 'HW-AG',
      occurred_at: now,
    });
    for (let i = 0; i < 3; i++)
      await recordAudit(t.db, { ...actor, label: 'mallory@example.com' }, now, {
        action: 'auth.login_failed',
        after: { email: 'mallory@example.com', reason: 'unknown_email' },
      });
    // A quota used up.
    await t.db('manager_quotas').where({ account_id: w.managerB.id, product_id: w.product }).update({ issued: 5 });

    managerA = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    managerB = await loginAgent(t.app, w.managerB.email, w.managerB.password);
    admin = (await adminAgent(t)).agent;
  });
  after(async () => t.close());

  describe("the manager's dashboard", () => {
    it("shows seats, expiries, stale devices and refusals of the manager's orders only", async () => {
      const page = (await managerA.get('/portal').expect(200)).text;
      // Seats of A: licenseA (3 seats, 1 used), the user license (2, 1 used), four enabled unexpired
      // licenses of 2 seats (the expired and the disabled ones do not count).
      assert.match(page, /2 \/ 13 seats in use/);
      assert.match(page, /A-1: 1 license expiring within 30 days/);
      assert.match(page, /A-1: 2 licenses expiring within 60 days/);
      assert.match(page, /A-1: 3 licenses expiring within 90 days/);
      assert.match(page, /A-1: 1 device not seen for 90 days/);
      // Refusals with readable reasons, linking to the license.
      assert.match(page, /no activations left/);
      assert.match(page, /the license has expired/);
      assert.match(page, new RegExp(`href="/portal/licenses/${w.licenseA}"`));
      // Nothing of order B: its number, its refusal, its machine.
      assert.doesNotMatch(page, /B-1/);
      assert.doesNotMatch(page, /the machine is blocked for this license/);
      assert.doesNotMatch(page, /blacklisted/);
      assert.doesNotMatch(page, new RegExp(`/portal/licenses/${w.licenseB}"`));
    });

    it('the other manager sees only order B', async () => {
      const page = (await managerB.get('/portal').expect(200)).text;
      assert.match(page, /B-1: 1 license expiring within 30 days/);
      assert.match(page, /the machine is blocked for this license/);
      assert.doesNotMatch(page, /A-1/);
      assert.doesNotMatch(page, /no activations left/);
    });

    it('each figure links to the order page filtered to exactly those licenses', async () => {
      const page = (await managerA.get('/portal').expect(200)).text;
      const expect = {
        30: [expiring.a10!],
        60: [expiring.a10!, expiring.a45!],
        90: [expiring.a10!, expiring.a45!, expiring.a80!],
      };
      for (const [days, ids] of Object.entries(expect)) {
        const href = hrefLabelled(page, new RegExp(`^A-1: \\d+ licenses? expiring within ${days} days`));
        assert.equal(href, `/portal/orders/${w.orderA}?expiring=${days}`);
        const list = (await managerA.get(href!).expect(200)).text;
        assert.deepEqual(
          licenseIdsOn(list, '/portal/licenses/'),
          ids.sort((a, b) => a - b),
          `${days} days`,
        );
      }
      const staleHref = hrefLabelled(page, /^A-1: 1 device not seen/)!;
      assert.deepEqual(licenseIdsOn((await managerA.get(staleHref).expect(200)).text, '/portal/licenses/'), [staleA]);
      const seatsHref = hrefLabelled(page, /^A-1: 2 \/ 13 seats/)!;
      assert.deepEqual(
        licenseIdsOn((await managerA.get(seatsHref).expect(200)).text, '/portal/licenses/'),
        [w.licenseA, w.userLicense].sort((a, b) => a - b),
      );
      // The filters stay inside the scope: B's order stays 404.
      await managerA.get(`/portal/orders/${w.orderB}?expiring=30`).expect(404);
    });

    it('says so when there is nothing to show', async () => {
      const lone = await createAccount(t.db, { role: 'manager' });
      const page = (await (await loginAgent(t.app, lone.email, lone.password)).get('/portal').expect(200)).text;
      assert.match(page, /No activation was refused in your orders/);
      assert.doesNotMatch(page, /seats in use/);
    });
  });

  describe('figures kept for a while', () => {
    it("a large order's seats are counted at most every ten minutes, and say as of when", async () => {
      await t
        .db('orders')
        .where({ id: w.orderA })
        .update({ license_count: LIVE_SEATS_LIMIT + 1 });
      try {
        assert.match((await managerA.get('/portal').expect(200)).text, /2 \/ 13 seats in use/);
        await t.db('licenses').where({ id: w.licenseA }).update({ times_activated: 2 });
        t.clock.advance(60_000);
        const kept = (await managerA.get('/portal').expect(200)).text;
        assert.match(kept, /2 \/ 13 seats in use/, 'the kept count');
        assert.match(kept, /as of \d\d:\d\d UTC/);
        assert.match(kept, /A-1: 1 license expiring within 30 days/, 'expiries are counted on every view');
        assert.ok(
          await t
            .db('dashboard_figures')
            .where({ key: `status-counts:${w.managerAll.id}` })
            .first(),
          'the counts by status of a large scope are kept too',
        );
        t.clock.advance(ORDER_SEATS_MAX_AGE_MS);
        const recounted = (await managerA.get('/portal').expect(200)).text;
        assert.match(recounted, /3 \/ 13 seats in use/);
        assert.doesNotMatch(recounted, /as of \d\d:\d\d UTC/);
      } finally {
        await t.db('orders').where({ id: w.orderA }).update({ license_count: 2 });
        await t.db('licenses').where({ id: w.licenseA }).update({ times_activated: 1 });
      }
    });

    it("past days' activity is counted once and kept; today's on every view", async () => {
      const now = t.clock.now();
      const fresh = await buildTestApp();
      try {
        const past = new Date(now.getTime() - 5 * DAY);
        const row = (channel: string, event: string, at: Date) => ({
          license_id: 1,
          event,
          channel,
          occurred_at: at,
        });
        const catalogWorld = await portalWorld(fresh.db);
        await fresh.db('activation_history').insert([
          { ...row('offline', 'activated', past), license_id: catalogWorld.licenseA },
          { ...row('offline', 'activated', past), license_id: catalogWorld.licenseA },
          { ...row('online', 'activated', new Date(now.getTime() - 40 * DAY)), license_id: catalogWorld.licenseA },
        ]);
        const first = await recentActivity(fresh.db, now);
        assert.equal(first.activity.offline.activated, 2);
        assert.equal(first.activity.online.activated, 0, '40 days ago is outside');
        // Another event of that past day (a late write) is not counted again: the day is kept.
        await fresh
          .db('activation_history')
          .insert({ ...row('offline', 'activated', past), license_id: catalogWorld.licenseA });
        await fresh
          .db('activation_history')
          .insert({ ...row('airgap', 'refused', now), license_id: catalogWorld.licenseA });
        const second = await recentActivity(fresh.db, new Date(now.getTime() + 1));
        assert.equal(second.activity.offline.activated, 2);
        assert.equal(second.activity.airgap.refused, 1, 'today is counted live');
        assert.ok(Number((await fresh.db('dashboard_figures').count({ n: '*' }).first())!.n) >= 28);
      } finally {
        await fresh.close();
      }
    });
  });

  describe("the vendor's overview", () => {
    it('shows activity by channel, expiring licenses, orders and quotas that need attention, security events', async () => {
      const page = (await admin.get('/admin').expect(200)).text;
      assert.match(page, /Online: 0 activations/);
      assert.match(page, /Air-gapped codes: 1 activation/);
      assert.match(page, /Online: 3 refusals/);
      assert.match(page, /Offline file: 1 refusal/, 'the forged request has no license: not in the chart');
      assert.match(page, /<meter[^>]*max="3"[^>]*value="3"/);
      // Expiring (enabled, after now): A's 10/45/80 and B's 5 days.
      assert.match(page, /href="\/admin\/licenses\?expiring=30"><span class="stat-value">2</);
      assert.match(page, /href="\/admin\/licenses\?expiring=60"><span class="stat-value">3</);
      assert.match(page, /href="\/admin\/licenses\?expiring=90"><span class="stat-value">4</);
      // Seats: A-1 had two no_seats refusals.
      assert.match(
        page,
        new RegExp(`href="/admin/orders/${w.orderA}\\?seats=full">A-1</a></th><td[^>]*>Globex</td><td[^>]*>2<`),
      );
      assert.match(page, new RegExp(`href="/admin/managers/${w.managerB.id}">Other Order</a>`));
      // Security: three failed sign-ins and the forged request.
      assert.match(page, /Sign-in failed<\/a>: 3/);
      assert.match(page, /the request was changed after it was made/);
    });

    it('its links lead to exactly those licenses and events', async () => {
      const list = (await admin.get('/admin/licenses?expiring=30').expect(200)).text;
      assert.deepEqual(
        licenseIdsOn(list, '/admin/licenses/'),
        [expiring.a10!, expiring.b5!].sort((a, b) => a - b),
      );
      const full = (await admin.get(`/admin/orders/${w.orderA}?seats=full`).expect(200)).text;
      assert.deepEqual(licenseIdsOn(full, '/admin/licenses/'), []);
      assert.doesNotMatch(
        full,
        new RegExp(`/admin/orders/${w.orderA}/delete"`),
        'an order with licenses offers no delete, whatever the filter shows',
      );
      await t.db('licenses').where({ id: w.licenseA }).update({ times_activated: 3 });
      const nowFull = (await admin.get(`/admin/orders/${w.orderA}?seats=full`).expect(200)).text;
      assert.deepEqual(licenseIdsOn(nowFull, '/admin/licenses/'), [w.licenseA]);
      await t.db('licenses').where({ id: w.licenseA }).update({ times_activated: 1 });
      const day = t.clock.now().getTime() - 30 * DAY;
      const audit = (
        await admin.get(`/admin/audit?action=auth.login_failed&from=${new Date(day).toISOString().slice(0, 10)}`)
      ).text;
      assert.equal([...audit.matchAll(/mallory@example\.com/g)].length >= 3, true);
    });

    it('has empty states on a fresh install', async () => {
      const fresh = await buildTestApp();
      try {
        const { agent } = await adminAgent(fresh);
        const page = (await agent.get('/admin').expect(200)).text;
        assert.match(page, /No activation was refused for want of a seat/);
        assert.match(page, /No manager has used up a quota/);
        assert.match(page, /No security event in this time/);
      } finally {
        await fresh.close();
      }
    });
  });
});
