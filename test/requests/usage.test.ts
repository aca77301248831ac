import assert from 'node:assert/strict';
import request from 'supertest';
import { auditOf, buildTestApp, countRows, createAccount, csrfFrom, loginAgent, type TestApp } from '../helpers/app.ts';
import { makeDevice } from '../helpers/device.ts';
import * as catalog from '../../app/models/catalog.ts';
import { PERMISSIONS } from '../../app/policies/permissions.ts';
import { verifyEnvelope } from '../../sdk/src/envelope.ts';
import { trustedKeyMap } from '../../app/services/signer.ts';
import { enqueuePeriodicJobs, runDueJobs } from '../../app/lib/queue.ts';
import { addDays, dayOf, raiseFloatingPeak } from '../../app/models/usage.ts';
import { snapshotDay, snapshotPreviousDay } from '../../app/services/usage.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;

/**
 * Usage history and pages (issue: "usage the customer can see"): a month of activity through the
 * real License API with a manual clock, the daily snapshot job run day by day, and the snapshots,
 * the pages' tables, the chart data and the CSV checked against figures computed by hand below.
 *
 * Licenses: L1 (order A) 3 seats; L2 (order A) floating, 2 concurrent users, 30-minute slots;
 * L3 (order B) 1 seat. Floating slots are held for 36 hours after the last check-in. Actions happen at
 * 10:00 UTC of their day unless said; the job runs at 00:00.
 *   D0   L1: dev1, dev2 activated. L2: f1, f2 take the two slots; f3 refused (no_seats). L3: g1.
 *   D1   L1: dev3 activated, dev4 refused (no_seats). L2 at 23:00: f1 and f2 have lapsed (22:00): f3
 *        takes a slot (frees both: running peak 1), f4 takes the other (2); f5 refused (no_seats).
 *   D2…D29  dev1 checks in daily; dev3 on D11 and D21; f3 checks in daily; f4 never again.
 *   D10  L2: f5 activates (frees f4's slot, lapsed on D3), f6 refused (no_seats).
 *   D11…D15  f5 checks in daily; on D15 it deactivates itself at 12:00.
 */
describe('usage history and usage pages', function () {
  this.timeout(180_000);
  let t: TestApp;
  let d0: number;
  const ctx = () => t.app.locals.ctx;
  const goTo = (day: number, hour = 10) => {
    const target = d0 + day * DAY + hour * HOUR;
    t.clock.advance(target - t.clock.now().getTime());
  };
  const dayName = (day: number) => dayOf(new Date(d0 + day * DAY));
  const key = (c: string) => Array(7).fill(c.repeat(4)).join('-');
  let orderA: number;
  let orderB: number;
  let l1: number;
  let l2: number;
  let l3: number;
  const api = (path: string, body: object) => request(t.app).post(`/api/v1/${path}`).send(body);
  type Ref = { product: string; licenseId: number; activationId: number; requestNonce: string };
  const refs = new Map<string, { device: ReturnType<typeof makeDevice>; ref: Ref }>();
  const activate = async (name: string, licenseKey: string, status = 200) => {
    const device = makeDevice(name);
    const text = device.activationRequest({ product: 'cad', licenseKey }).text;
    const res = await api('activate', { request: text }).expect(status);
    if (status !== 200) return res;
    const p = verifyEnvelope(res.body.license, { expectedType: 'license', trustedKeys: await trustedKeyMap(t.db) })
      .payload as Ref;
    refs.set(name, {
      device,
      ref: { product: 'cad', licenseId: p.licenseId, activationId: p.activationId, requestNonce: p.requestNonce },
    });
    return res;
  };
  const check = async (name: string) => {
    const { device, ref } = refs.get(name)!;
    await api('check', { request: device.checkRequest(ref) }).expect(200);
  };
  const deviceId = (name: string) => refs.get(name)!.ref.activationId;
  const deviceRow = (name: string) =>
    t
      .db('devices')
      .where({ id: deviceId(name) })
      .first();
  /** The instant `hour`:00 UTC of day `day`, as an ISO string. */
  const isoAt = (day: number, hour: number) => new Date(d0 + day * DAY + hour * HOUR).toISOString();
  const lastSeen = async (name: string) => new Date((await deviceRow(name)).last_seen_at).toISOString();
  /** POSTs the release form at `url` with the CSRF token of the page it came from; confirmed unless `fields` say. */
  const release = (
    agent: ReturnType<typeof request.agent>,
    url: string,
    from: { text: string },
    fields: Record<string, string> = { confirmed: '1' },
  ) =>
    agent
      .post(url)
      .type('form')
      .send({ _csrf: csrfFrom(from.text), ...fields });
  /** The job as the runners do it: enqueued for the period (day) now begun, run when due. */
  const runDailyJob = async () => {
    await enqueuePeriodicJobs(ctx());
    await runDueJobs(ctx());
  };
  const row = (licenseId: number, day: number) =>
    t
      .db('license_usage_days')
      .where({ license_id: licenseId, day: dayName(day) })
      .first();
  let managerA: Awaited<ReturnType<typeof createAccount>>;
  let viewerA: Awaited<ReturnType<typeof createAccount>>;
  let managerB: Awaited<ReturnType<typeof createAccount>>;
  let endUser: Awaited<ReturnType<typeof createAccount>>;
  let admin: Awaited<ReturnType<typeof createAccount>>;

  before(async () => {
    t = await buildTestApp();
    // Day 0 starts at the next midnight UTC.
    d0 = Math.ceil((t.clock.now().getTime() + 1) / DAY) * DAY;
    goTo(0, 1);
    const now = t.clock.now();
    const product = await catalog.insertProduct(
      t.db,
      { name: 'Acme CAD', code: 'cad', authorizationMethod: 'key' },
      now,
    );
    const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Globex' }, now);
    orderA = await catalog.insertOrder(t.db, { orderRef: 'U-A', customerId: customer }, now);
    orderB = await catalog.insertOrder(t.db, { orderRef: 'U-B', customerId: customer }, now);
    const base = { ...catalog.DEFAULT_ENTITLEMENTS, maxTransfers: 0 };
    const floating = { ...base, maxActivations: 2, floating: true, floatingUsers: 2, floatingTimeoutMinutes: 36 * 60 };
    const lic = (orderId: number, licenseKey: string, entitlements: typeof base) =>
      catalog.insertLicense(
        t.db,
        { orderId, productId: product, policyId: null, licenseKey, entitlements, startDate: now },
        now,
      );
    l1 = await lic(orderA, key('A'), { ...base, maxActivations: 3 });
    l2 = await lic(orderA, key('F'), floating);
    l3 = await lic(orderB, key('B'), { ...base, maxActivations: 1 });
    managerA = await createAccount(t.db, { role: 'manager' });
    viewerA = await createAccount(t.db, { role: 'manager' });
    managerB = await createAccount(t.db, { role: 'manager' });
    endUser = await createAccount(t.db, { role: 'end_user' });
    admin = await createAccount(t.db, { role: 'admin' });
    await catalog.assignManager(t.db, managerA.id, orderA, now);
    await catalog.assignManager(t.db, viewerA.id, orderA, now, 'viewer');
    await catalog.assignManager(t.db, managerB.id, orderB, now);
    await catalog.grantPermissions(t.db, managerA.id, PERMISSIONS);
    await catalog.grantPermissions(t.db, managerB.id, PERMISSIONS);

    // D0
    goTo(0);
    await activate('dev1', key('A'));
    await activate('dev2', key('A'));
    await activate('f1', key('F'));
    await activate('f2', key('F'));
    await activate('f3-refused', key('F'), 409);
    await activate('g1', key('B'));
    for (let day = 1; day <= 30; day++) {
      goTo(day, 0);
      await runDailyJob();
      if (day === 30) break;
      goTo(day);
      if (day === 1) {
        await activate('dev3', key('A'));
        await activate('dev4', key('A'), 409);
        goTo(day, 23);
        await activate('f3', key('F'));
        await activate('f4', key('F'));
        await activate('f5-refused', key('F'), 409);
      } else {
        await check('dev1');
        await check('f3');
        if (day === 11 || day === 21) await check('dev3');
        if (day >= 11 && day <= 15) await check('f5');
      }
      if (day === 10) {
        await activate('f5', key('F'));
        await activate('f6', key('F'), 409);
      }
      if (day === 15) {
        goTo(day, 12);
        const { device, ref } = refs.get('f5')!;
        const off = await api('deactivate', { request: device.deactivationRequest(ref).text });
        assert.equal(off.status, 200, JSON.stringify(off.body));
      }
    }
    goTo(30);
  });
  after(async () => t.close());

  it('an online check and an activation record "last seen"', async () => {
    assert.equal(await lastSeen('dev1'), isoAt(29, 10));
    assert.equal(await lastSeen('dev2'), isoAt(0, 10), 'never checked in');
    assert.equal(await lastSeen('dev3'), isoAt(21, 10));
    // An activation of a machine that is active already (the device fetching its license anew, a new
    // request from the same device key) counts as seen too.
    assert.equal(await lastSeen('g1'), isoAt(0, 10));
    goTo(30, 11);
    const again = await api('activate', {
      request: refs.get('g1')!.device.activationRequest({ product: 'cad', licenseKey: key('B') }).text,
    }).expect(200);
    assert.equal(again.body.repeated, true);
    assert.equal(await lastSeen('g1'), isoAt(30, 11));
  });

  it('writes one row per license per day with the hand-computed figures', async () => {
    assert.equal(await countRows(t.db, 'license_usage_days'), 3 * 30, 'three licenses, thirty days');
    const pick = (r: Record<string, unknown>) => ({
      used: Number(r.seats_used),
      bought: r.seats_bought === null ? null : Number(r.seats_bought),
      peak: r.floating_peak === null ? null : Number(r.floating_peak),
      act: Number(r.activations),
      ref: Number(r.refusals),
      reasons: JSON.parse(String(r.refusal_reasons)),
      seen: [r.devices_7d, r.devices_30d, r.devices_90d, r.devices_older].map(Number),
    });
    type Figures = ReturnType<typeof pick>;
    // [license, day, its figures]
    const expected: [number, number, Figures][] = [
      [l1, 0, { used: 2, bought: 3, peak: null, act: 2, ref: 0, reasons: {}, seen: [2, 0, 0, 0] }],
      [l2, 0, { used: 2, bought: 2, peak: 2, act: 2, ref: 1, reasons: { no_seats: 1 }, seen: [2, 0, 0, 0] }],
      [l3, 0, { used: 1, bought: 1, peak: null, act: 1, ref: 0, reasons: {}, seen: [1, 0, 0, 0] }],
      [l1, 1, { used: 3, bought: 3, peak: null, act: 1, ref: 1, reasons: { no_seats: 1 }, seen: [3, 0, 0, 0] }],
      // f1 and f2 held their slots at the start of D1 (until f3 freed them); f3 and f4 at its end.
      [l2, 1, { used: 2, bought: 2, peak: 2, act: 2, ref: 1, reasons: { no_seats: 1 }, seen: [2, 0, 0, 0] }],
      [l2, 10, { used: 2, bought: 2, peak: 2, act: 1, ref: 1, reasons: { no_seats: 1 }, seen: [2, 0, 0, 0] }],
      // D15: f5 left at noon: one slot at the end, two at the start.
      [l2, 15, { used: 1, bought: 2, peak: 2, act: 0, ref: 0, reasons: {}, seen: [1, 0, 0, 0] }],
      [l2, 16, { used: 1, bought: 2, peak: 1, act: 0, ref: 0, reasons: {}, seen: [1, 0, 0, 0] }],
      // D29: dev1 seen that day; dev2 29 d 14 h ago, dev3 8 d 14 h ago.
      [l1, 29, { used: 3, bought: 3, peak: null, act: 0, ref: 0, reasons: {}, seen: [1, 2, 0, 0] }],
    ];
    for (const [license, day, figures] of expected)
      assert.deepEqual(pick(await row(license, day)), figures, `license ${license}, day ${day}`);
    // D6: dev2 last seen 6 d 14 h before the day's end; D7: 7 d 14 h (the ≤ 30 days bucket).
    assert.deepEqual(pick(await row(l1, 6)).seen, [3, 0, 0, 0]);
    assert.deepEqual(pick(await row(l1, 7)).seen, [2, 1, 0, 0]);
    const running = await t.db('floating_peaks').where({ license_id: l2 }).orderBy('day').select('day', 'peak');
    assert.deepEqual(
      running.map((r: { day: string; peak: number }) => [r.day, Number(r.peak)]),
      [
        [dayName(0), 2],
        [dayName(1), 2],
        [dayName(10), 2],
      ],
    );
  });

  it('the running floating peak only ever goes up, whatever arrives at the same instant', async () => {
    const day = dayName(40);
    await Promise.all([3, 1, 5, 2, 4].map((n) => raiseFloatingPeak(t.db, l2, day, n)));
    await raiseFloatingPeak(t.db, l2, day, 2);
    const rows = await t.db('floating_peaks').where({ license_id: l2, day });
    assert.deepEqual(
      rows.map((r: { peak: number }) => Number(r.peak)),
      [5],
    );
    await t.db('floating_peaks').where({ license_id: l2, day }).delete();
  });

  it('portal: the license page shows the same figures in its table and chart data, and the CSV', async () => {
    const agent = await loginAgent(t.app, managerA.email, managerA.password);
    const page = await agent.get(`/portal/licenses/${l1}/usage`).expect(200);
    const tr = new RegExp(`<tr data-day="${dayName(1)}">([\\s\\S]*?)</tr>`).exec(page.text)![1]!;
    const cells = [...tr.matchAll(/<t[hd][^>]*>([^<]*)<\/t[hd]>/g)].map((m) => m[1]);
    assert.deepEqual(cells, [dayName(1), '3', '3', '—', '1', '1', '3', '0', '0', '0']);
    assert.match(page.text, /<tr data-reason="no_seats">[\s\S]*?<td[^>]*>1<\/td>/, 'refusals by reason over the range');
    const attribute = /<div id="usage-data" data-chart="([^"]*)" hidden>/.exec(page.text)![1]!;
    const json = JSON.parse(
      attribute
        .replace(/&#34;|&quot;/g, '"')
        .replace(/&#39;/g, "'")
        .replace(/&lt;/g, '<')
        .replace(/&gt;/g, '>')
        .replace(/&amp;/g, '&'),
    );
    assert.equal(json.labels.length, 30);
    assert.equal(json.labels[0], dayName(0));
    assert.equal(json.labels[29], dayName(29));
    assert.deepEqual(json.series.seatsUsed.slice(0, 3), [2, 3, 3]);
    assert.deepEqual(json.series.seatsBought.slice(0, 2), [3, 3]);
    assert.deepEqual(json.series.refusals.slice(0, 3), [0, 1, 0]);
    assert.match(page.text, /src="\/static\/vendor\/chart.umd.min.js"/);

    const csv = await agent.get(`/portal/licenses/${l1}/usage.csv?days=30`).expect(200);
    assert.match(String(csv.headers['content-type']), /^text\/csv/);
    const lines = csv.text.trimEnd().split('\r\n');
    assert.equal(lines.length, 31);
    assert.equal(
      lines[0],
      'day,seats_used,seats_bought,floating_peak,activations,refusals,refusal_reasons,devices_seen_7d,devices_seen_30d,devices_seen_90d,devices_seen_older',
    );
    assert.equal(lines[1], `${dayName(0)},2,3,,2,0,,2,0,0,0`);
    assert.equal(lines[2], `${dayName(1)},3,3,,1,1,no_seats:1,3,0,0,0`);
    assert.equal(lines[30], `${dayName(29)},3,3,,0,0,,1,2,0,0`);

    // 90 and 365 days: the days before the license existed are zero rows; other values fall back to 30.
    const long = await agent.get(`/portal/licenses/${l1}/usage.csv?days=90`).expect(200);
    assert.equal(long.text.trimEnd().split('\r\n').length, 91);
    const odd = await agent.get(`/portal/licenses/${l1}/usage.csv?days=7000`).expect(200);
    assert.equal(odd.text.trimEnd().split('\r\n').length, 31);
  });

  it('portal: the order page sums its licenses per day', async () => {
    const agent = await loginAgent(t.app, viewerA.email, viewerA.password);
    const csv = await agent.get(`/portal/orders/${orderA}/usage.csv`).expect(200);
    const lines = csv.text.trimEnd().split('\r\n');
    // D0: L1 2 + L2 2 used, 3 + 2 bought, peak 2 (L2's), 4 activations, L2's refusal.
    assert.equal(lines[1], `${dayName(0)},4,5,2,4,1,no_seats:1,4,0,0,0`);
    assert.equal(lines[2], `${dayName(1)},5,5,2,3,2,no_seats:2,5,0,0,0`);
    assert.equal(lines[30], `${dayName(29)},4,5,1,0,0,,2,2,0,0`);
    const page = await agent.get(`/portal/orders/${orderA}/usage?days=90&idle=7`).expect(200);
    const tr = new RegExp(`<tr data-day="${dayName(10)}">([\\s\\S]*?)</tr>`).exec(page.text)![1]!;
    const cells = [...tr.matchAll(/<t[hd][^>]*>([^<]*)<\/t[hd]>/g)].map((m) => m[1]);
    // D10: L1 3 used (dev1, dev2, dev3: dev2 idle 10 d 14 h, dev3 9 d 14 h), L2 f3 and f5.
    assert.deepEqual(cells, [dayName(10), '5', '5', '2', '1', '1', '3', '2', '0', '0']);
    // Idle for 7 days: dev2 and dev3 of L1; a viewer sees them but may not release them.
    const idle = [...page.text.matchAll(/<tr data-device="(\d+)">/g)].map((m) => Number(m[1]));
    assert.deepEqual(idle.sort(), [deviceId('dev2'), deviceId('dev3')].sort());
    assert.doesNotMatch(page.text, /usage\/devices\/\d+\/release/);
  });

  it('scope: a manager of another order and an end user get 404 on pages and CSV', async () => {
    const other = await loginAgent(t.app, managerB.email, managerB.password);
    for (const url of [
      `/portal/licenses/${l1}/usage`,
      `/portal/licenses/${l1}/usage.csv`,
      `/portal/orders/${orderA}/usage`,
      `/portal/orders/${orderA}/usage.csv`,
    ])
      await other.get(url).expect(404);
    await other.get(`/portal/licenses/${l3}/usage`).expect(200);
    const page = await other.get(`/portal/licenses/${l3}/usage`).expect(200);
    await release(other, `/portal/licenses/${l1}/usage/devices/${deviceId('dev2')}/release`, page).expect(404);
    const user = await loginAgent(t.app, endUser.email, endUser.password);
    await user.get(`/portal/licenses/${l3}/usage`).expect(404);
    await user.get(`/portal/orders/${orderB}/usage.csv`).expect(404);
    // The console is for admins only.
    await other.get('/admin/usage').expect(404);
    assert.equal((await deviceRow('dev2')).deactivated_at, null);
  });

  it('release: asks first, needs CSRF and reset_device, resets the device and audits it', async () => {
    const url = `/portal/licenses/${l1}/usage/devices/${deviceId('dev2')}/release`;
    const viewer = await loginAgent(t.app, viewerA.email, viewerA.password);
    const vpage = await viewer.get(`/portal/licenses/${l1}/usage?idle=7`).expect(200);
    await release(viewer, url, vpage).expect(403);

    const agent = await loginAgent(t.app, managerA.email, managerA.password);
    const page = await agent.get(`/portal/licenses/${l1}/usage?idle=7`).expect(200);
    assert.match(page.text, new RegExp(`action="${url}"`));
    await agent.post(url).type('form').send({ confirmed: '1' }).expect(403); // no CSRF token
    const ask = await release(agent, url, page, {}).expect(200);
    assert.match(ask.text, /Release dev2 \(dev2.example\)\?/);
    assert.equal((await deviceRow('dev2')).deactivated_at, null, 'asking changes nothing');
    const done = await release(agent, url, ask).expect(303);
    assert.equal(done.headers.location, `/portal/licenses/${l1}/usage`);
    const dev2 = await deviceRow('dev2');
    assert.notEqual(dev2.deactivated_at, null);
    assert.equal(dev2.deactivation_reason, 'reset');
    assert.equal(Number((await t.db('licenses').where({ id: l1 }).first()).times_activated), 2);
    const audit = (await auditOf(t.db, 'device', deviceId('dev2'))).filter((a) => a.action === 'device.reset');
    assert.equal(audit.length, 1);
    assert.equal(audit[0]!.actor, managerA.id);
    const after = await agent.get(`/portal/licenses/${l1}/usage?idle=7`).expect(200);
    assert.match(after.text, /dev2 was released/);
    // Again: the device is no longer active (a clear message, nothing changes).
    await release(agent, url, after).expect(303);
    assert.equal(
      (await auditOf(t.db, 'device', deviceId('dev2'))).filter((a) => a.action === 'device.reset').length,
      1,
    );
  });

  it('console: overview, order and license pages, CSV and release', async () => {
    const agent = await loginAgent(t.app, admin.email, admin.password);
    const csv = await agent.get('/admin/usage.csv').expect(200);
    const lines = csv.text.trimEnd().split('\r\n');
    // Everything on D1: L1 3 + L2 2 + L3 1 used of 3 + 2 + 1.
    assert.equal(lines[2], `${dayName(1)},6,6,2,3,2,no_seats:2,6,0,0,0`);
    const overview = await agent.get('/admin/usage?days=365').expect(200);
    assert.equal([...overview.text.matchAll(/<tr data-day=/g)].length, 365);
    await agent.get(`/admin/orders/${orderB}/usage`).expect(200);
    const orderCsv = await agent.get(`/admin/orders/${orderB}/usage.csv`).expect(200);
    assert.equal(orderCsv.text.trimEnd().split('\r\n')[1], `${dayName(0)},1,1,,1,0,,1,0,0,0`);
    const page = await agent.get(`/admin/licenses/${l1}/usage?idle=7`).expect(200);
    const url = `/admin/licenses/${l1}/usage/devices/${deviceId('dev3')}/release`;
    assert.match(page.text, new RegExp(`action="${url}"`));
    const ask = await release(agent, url, page, {}).expect(200);
    await release(agent, url, ask).expect(303);
    assert.notEqual((await deviceRow('dev3')).deactivated_at, null);
    await agent.get('/admin/licenses/999999/usage').expect(404);
  });

  it('the job: once per day across two runners at the same instant; a re-run overwrites the day', async () => {
    const jobs = await t.db('jobs').where({ kind: 'usage.snapshot' }).select('unique_key');
    assert.equal(jobs.length, 30, 'one job per day');
    // Two runners at the same instant: one job for the period, one row per license.
    const other = { ...ctx() };
    goTo(31, 0);
    await Promise.all([enqueuePeriodicJobs(ctx()), enqueuePeriodicJobs(other)]);
    assert.equal(await countRows(t.db, 'jobs', { kind: 'usage.snapshot' }), 31);
    await Promise.all([runDueJobs(ctx(), { workerId: 'a' }), runDueJobs(other, { workerId: 'b' })]);
    assert.equal(await countRows(t.db, 'license_usage_days', { day: dayName(30) }), 3);
    // The same day snapshotted twice at once (two processes, or an operator's re-run): still one row each.
    const at = t.clock.now();
    await Promise.all([snapshotDay(t.db, dayName(30), at), snapshotDay(t.db, dayName(30), at)]);
    assert.equal(await countRows(t.db, 'license_usage_days', { day: dayName(30) }), 3);
    // A re-run sees what the history holds now: a refusal recorded late for D30 is counted, in place.
    await t.db('activation_history').insert({
      license_id: l1,
      event: 'refused',
      channel: 'online',
      detail: 'expired',
      occurred_at: new Date(d0 + 30 * DAY + 5 * HOUR),
    });
    await snapshotDay(t.db, dayName(30), at);
    assert.equal(await countRows(t.db, 'license_usage_days', { day: dayName(30) }), 3);
    const r = await row(l1, 30);
    assert.equal(Number(r.refusals), 1);
    assert.deepEqual(JSON.parse(r.refusal_reasons), { expired: 1 });
  });

  it('days missed while no process ran at midnight are filled in by the next run, a week back at most', async () => {
    // Days 26 and 27 lost (no process at their midnight); day 20 is older than the catch-up reaches.
    await t
      .db('license_usage_days')
      .whereIn('day', [dayName(20), dayName(26), dayName(27)])
      .delete();
    goTo(32, 0);
    await enqueuePeriodicJobs(ctx());
    await runDueJobs(ctx(), { workerId: 'a' });
    assert.equal(await countRows(t.db, 'license_usage_days', { day: dayName(31) }), 3);
    assert.equal(await countRows(t.db, 'license_usage_days', { day: dayName(26) }), 3);
    assert.equal(await countRows(t.db, 'license_usage_days', { day: dayName(27) }), 3);
    assert.equal(await countRows(t.db, 'license_usage_days', { day: dayName(20) }), 0);
  });

  it('an installation without history (just upgraded) starts it on its first day: no week of catch-up', async () => {
    await t.db('license_usage_days').delete();
    goTo(33, 0);
    await snapshotPreviousDay(t.db, t.clock, {});
    const days = (await t.db('license_usage_days').distinct('day')).map((r: { day: string }) => r.day);
    assert.deepEqual(days, [dayName(32)]);
  });

  it('the charting library is served from our own origin', async () => {
    const res = await request(t.app).get('/static/vendor/chart.umd.min.js').expect(200);
    assert.match(String(res.headers['content-type']), /javascript/);
    assert.match(res.text, /Chart/);
    await request(t.app).get('/static/js/usage.js').expect(200);
  });

  it('day arithmetic is UTC', () => {
    assert.equal(addDays('2026-02-28', 1), '2026-03-01');
    assert.equal(addDays('2026-03-01', -1), '2026-02-28');
    assert.equal(dayOf(new Date('2026-11-30T23:59:59.999Z')), '2026-11-30');
  });
});
