import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import type { Knex } from 'knex';
import { buildTestApp, countRows, createAccount, type TestApp } from './app.ts';
import { makeDevice } from './device.ts';
import { keyedOrder } from './catalog.ts';
import * as catalog from '../../app/models/catalog.ts';
import { generateLicenseKey } from '../../app/lib/license-keys.ts';
import { HttpError } from '../../app/lib/errors.ts';
import { resetDevice, resetLicense } from '../../app/services/licenses.ts';
import { systemActor } from '../../app/services/context.ts';
import { generateVouchers } from '../../app/services/vouchers.ts';
import * as accounts from '../../app/models/accounts.ts';

/**
 * Seat limits and single-use codes under real concurrency (ARCHITECTURE "Scale"): many requests at once over real HTTP,
 * against the real database (SQLite, or MariaDB/MySQL with DATABASE_URL=mysql://…), no mocks. The
 * rules hold through guarded updates and unique keys, so every count below must be exact.
 *
 * Shared by three tiers: test/requests/concurrency.test.ts (one round of each scenario, in npm test),
 * test/stress/concurrency.test.ts (the long rounds, npm run test:stress) and
 * test/e2e/concurrency-processes.test.ts (server.ts processes sharing one database, npm run test:e2e).
 */

export const PRODUCT = 'acme-cad';
export const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** One end user's browser on the offline portal: its session cookie and the upload URL with the CSRF token. */
export interface Browser {
  cookie: string;
  action: string;
}

export async function openBrowser(base: string): Promise<Browser> {
  const page = await request(base).get('/offline').expect(200);
  const action = /action="([^"]*\?_csrf=[^"]*)"/.exec(page.text)![1]!.replace(/&amp;/g, '&');
  const cookie = ([] as string[])
    .concat(page.headers['set-cookie'] ?? [])
    .map((c) => c.split(';')[0])
    .join('; ');
  assert.ok(cookie, 'the page opened a session (the CSRF token lives in it)');
  return { cookie, action };
}

/**
 * Uploads one request file as that browser, from its own client address (the portal allows 120
 * requests per address per 15 minutes; X-Forwarded-For is a header value only, trusted via TRUST_PROXY).
 */
export function upload(base: string, browser: Browser, text: string, clientIp: string) {
  return request(base)
    .post(browser.action)
    .set('Cookie', browser.cookie)
    .set('X-Forwarded-For', clientIp)
    .attach('file', Buffer.from(text), 'activation-request.req');
}

/** Real server.ts processes: test/helpers/process.ts (re-exported for the importers of this file). */
export { stopProcess, type ServerProcess } from './process.ts';

export async function listen(t: TestApp): Promise<{ server: Server; base: string }> {
  const server = t.app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export async function stopServer(server: Server | undefined) {
  if (!server) return;
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** A vendor with one offline-capable product and an order to issue licenses into (licenses started yesterday). */
export async function seedVendor(db: Knex, now: Date) {
  const vendor = await keyedOrder(db, { now: () => now }, { orderRef: 'O-CONC', startedDaysAgo: 1 });
  return async (over: Partial<catalog.Entitlements>) => {
    const licenseKey = generateLicenseKey();
    return { id: await vendor.license(licenseKey, { allowOffline: true, ...over }), licenseKey };
  };
}

export async function licenseRow(db: Knex, id: number) {
  const row = await db('licenses').where({ id }).first('times_activated', 'transfer_count');
  return { timesActivated: Number(row.times_activated), transferCount: Number(row.transfer_count) };
}

export async function activeDevices(db: Knex, licenseId: number): Promise<{ id: number; hardwareId: string }[]> {
  const rows = await db('devices')
    .where({ license_id: licenseId })
    .whereNull('deactivated_at')
    .orderBy('id')
    .select('id', 'hardware_id');
  return rows.map((r: { id: number; hardware_id: string }) => ({
    id: Number(r.id),
    hardwareId: String(r.hardware_id),
  }));
}

export async function licenseAudit(db: Knex, licenseId: number) {
  const rows = await db('audit_events')
    .where({ object_type: 'license', object_id: String(licenseId) })
    .orderBy('id')
    .select('action', 'after_state');
  return rows.map((r: { action: string; after_state: string | null }) => ({
    action: String(r.action),
    after: r.after_state ? (JSON.parse(String(r.after_state)) as Record<string, unknown>) : null,
  }));
}

/** What the page told the user: its status and the refusal's first line, or the page heading. */
export function told(res: { status: number; text: string }): string {
  const headline =
    /role="alert">\s*<p><strong>([^<]*)</.exec(res.text)?.[1] ?? /<h1>([^<]*)<\/h1>/.exec(res.text)?.[1] ?? '';
  return `${res.status} ${headline.replace(/&#39;/g, "'")}`;
}
export const GRANTED = '200 License activated';
export const NO_SEATS = '409 No activations are left on this license.';

/** How often each value occurs ({ 200: 5, 409: 45 }): readable assertion messages. */
export function tally(values: (number | string)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

/** The seat rules after a burst: exactly `seats` active devices, all counted, each with its nonce, audited once. */
export async function assertFullLicense(
  db: Knex,
  licenseId: number,
  seats: number,
  attempts: number,
  grantedHardwareIds: string[],
  label: string,
) {
  const active = await activeDevices(db, licenseId);
  assert.equal(active.length, seats, `${label}: active devices`);
  assert.equal(
    Number((await db('devices').where({ license_id: licenseId }).count({ n: '*' }).first())!.n),
    seats,
    `${label}: no device rows besides the granted ones`,
  );
  assert.deepEqual(
    active.map((d) => d.hardwareId).sort(),
    [...grantedHardwareIds].sort(),
    `${label}: the devices in the database are the ones told "activated"`,
  );
  assert.deepEqual(
    await licenseRow(db, licenseId),
    { timesActivated: seats, transferCount: 0 },
    `${label}: times_activated / transfer_count`,
  );
  assert.equal(
    Number((await db('request_nonces').where({ license_id: licenseId }).count({ n: '*' }).first())!.n),
    seats,
    `${label}: one nonce per granted request`,
  );
  const audit = await licenseAudit(db, licenseId);
  assert.equal(audit.length, attempts, `${label}: one audit event per request`);
  assert.equal(audit.filter((e) => e.action === 'activation.granted').length, seats, `${label}: granted events`);
  const refused = audit.filter((e) => e.action === 'activation.refused');
  assert.equal(refused.length, attempts - seats, `${label}: refused events`);
  assert.deepEqual(
    tally(refused.map((e) => String(e.after?.code))),
    { no_seats: attempts - seats },
    `${label}: every refusal says no seats are left`,
  );
}

/** One test app serving on loopback with one offline-capable product: the fixture of the one-server scenarios. */
export interface OneServer {
  t: TestApp;
  server: Server;
  base: string;
  addLicense: Awaited<ReturnType<typeof seedVendor>>;
}

/** Registers the suite's hooks for a OneServer; read its fields inside tests, after `before` ran. */
export function useOneServer(): OneServer {
  const s = {} as OneServer;
  before(async () => {
    // Every simultaneous upload gets a slot: the seat rules are under test here, the slots in upload-limits.test.ts.
    s.t = await buildTestApp({ trustProxy: true, logLevel: 'warn', offlineUploadSlots: 100 });
    ({ server: s.server, base: s.base } = await listen(s.t));
    s.addLicense = await seedVendor(s.t.db, s.t.clock.now());
  });
  after(async () => {
    await stopServer(s.server);
    await s.t?.close();
  });
  return s;
}

/**
 * Rounds of 50 simultaneous activations of a new 5-seat license each: exactly 5 devices, 5 granted and
 * 45 "no seats" events every round. Round r uses max_transfers [0, 3, -1][r % 3].
 */
export async function activationBurstRounds({ base, t, addLicense }: OneServer, rounds: number) {
  const SEATS = 5;
  const DEVICES = 50;
  const ROUNDS = rounds;
  const browsers = await Promise.all(range(DEVICES).map(() => openBrowser(base)));
  for (let round = 0; round < ROUNDS; round++) {
    // Transfers unlimited, a limit not yet used, or none at all: with every seat taken the answer is
    // "no seats" whatever the transfers (offline.test.ts has the "no transfers" case of a free seat).
    const maxTransfers = [0, 3, -1][round % 3]!;
    const { id, licenseKey } = await addLicense({ maxActivations: SEATS, maxTransfers });
    const devices = range(DEVICES).map((i) => makeDevice(`HW-R${round}-D${i}`));
    const files = devices.map((d) => d.activationRequest({ product: PRODUCT, licenseKey }).text);
    const responses = await Promise.all(files.map((text, i) => upload(base, browsers[i]!, text, `10.${round}.${i}.1`)));
    const label = `round ${round + 1} (max_transfers ${maxTransfers})`;
    assert.deepEqual(tally(responses.map(told)), { [GRANTED]: SEATS, [NO_SEATS]: DEVICES - SEATS }, label);
    const granted = responses.flatMap((r, i) => (r.status === 200 ? [devices[i]!.hardwareId] : []));
    await assertFullLicense(t.db, id, SEATS, DEVICES, granted, label);
  }
}

/**
 * Rounds on one floating license: its slots are filled, they lapse, then the lapsed devices check in
 * while new devices activate online, all at once.
 */
export async function floatingRounds({ base, t, addLicense }: OneServer, rounds: number) {
  const SLOTS = 3;
  const { id, licenseKey } = await addLicense({
    floating: true,
    floatingUsers: SLOTS,
    floatingTimeoutMinutes: 10,
    maxActivations: 1000,
  });
  const api = (action: string, body: object, i: number) =>
    request(base).post(`/api/v1/${action}`).set('X-Forwarded-For', `10.250.${i}.1`).send(body);
  for (let round = 0; round < rounds; round++) {
    // Fill the slots, let them lapse, then everyone at once: the old devices check in, new ones activate.
    const holders = range(SLOTS).map((i) => makeDevice(`HW-FLOAT-${round}-OLD-${i}`));
    const refs = [];
    for (const [i, d] of holders.entries()) {
      const active = (await activeDevices(t.db, id)).length;
      if (active >= SLOTS) break;
      const res = await api(
        'activate',
        { request: d.activationRequest({ product: PRODUCT, licenseKey }).text },
        i,
      ).expect(200);
      refs.push({ device: d, ref: { product: PRODUCT, licenseId: id, activationId: Number(res.body.activationId) } });
    }
    t.clock.advance(11 * 60_000);
    const newcomers = range(8).map((i) => makeDevice(`HW-FLOAT-${round}-NEW-${i}`));
    const answers = await Promise.all([
      ...refs.map(({ device, ref }, i) => api('check', { request: device.checkRequest(ref) }, 100 + i)),
      ...newcomers.map((d, i) =>
        api('activate', { request: d.activationRequest({ product: PRODUCT, licenseKey }).text }, 200 + i),
      ),
    ]);
    const statuses = answers.map((a) => a.status);
    assert.ok(
      statuses.every((s) => [200, 409, 410].includes(s)),
      `round ${round + 1}: only granted, no seats or lapsed, got ${JSON.stringify(tally(statuses))}`,
    );
    const active = await activeDevices(t.db, id);
    assert.ok(active.length <= SLOTS, `round ${round + 1}: ${active.length} active devices on ${SLOTS} slots`);
    assert.equal(
      (await licenseRow(t.db, id)).timesActivated,
      active.length,
      `round ${round + 1}: times_activated = active devices`,
    );
    assert.equal(
      answers.slice(refs.length).filter((a) => a.status === 200).length +
        answers.slice(0, refs.length).filter((a) => a.status === 200).length,
      active.length,
      `round ${round + 1}: every 200 holds a slot`,
    );
    t.clock.advance(11 * 60_000);
  }
}

/**
 * Rounds of activations, device resets, a license reset (odd rounds) and deactivation uploads at the
 * same time on one 3-seat license: times_activated = active devices ≤ seats, transfers counted exactly.
 */
export async function mixedRounds({ base, t, addLicense }: OneServer, rounds: number) {
  const deps = () => ({ db: t.db, clock: t.clock });
  const actor = systemActor('concurrency-test');
  const SEATS = 3;
  const ROUNDS = rounds;
  const NEW_PER_ROUND = 6;
  const { id, licenseKey } = await addLicense({ maxActivations: SEATS, maxTransfers: 0 });
  type Known = { device: ReturnType<typeof makeDevice>; nonce: string };
  const known = new Map<string, Known>();
  const browsers = await Promise.all(range(NEW_PER_ROUND + 3).map(() => openBrowser(base)));
  // Start with one seat taken, so the first round crosses from "fresh seats" into transfers.
  const first = makeDevice('HW-MIX-START');
  const firstReq = first.activationRequest({ product: PRODUCT, licenseKey });
  assert.equal((await upload(base, browsers[0]!, firstReq.text, '10.200.0.1')).status, 200);
  known.set(first.hardwareId, { device: first, nonce: firstReq.nonce });

  for (let round = 0; round < ROUNDS; round++) {
    const label = `round ${round + 1}`;
    const before = await activeDevices(t.db, id);
    const ops: Promise<unknown>[] = [];
    let ip = 0;
    const nextIp = () => `10.${201 + round}.${ip++}.1`;
    const http: Promise<number>[] = [];
    // New machines (transfers once every seat has served a machine) and one machine the license knew.
    const fresh = range(NEW_PER_ROUND).map((i) => makeDevice(`HW-MIX-${round}-${i}`));
    const returning = [...known.values()].find((k) => !before.some((d) => d.hardwareId === k.device.hardwareId));
    const activations = [
      ...fresh.map((d) => ({ device: d, req: d.activationRequest({ product: PRODUCT, licenseKey }) })),
      ...(returning
        ? [{ device: returning.device, req: returning.device.activationRequest({ product: PRODUCT, licenseKey }) }]
        : []),
    ];
    activations.forEach((a, i) => {
      http.push(upload(base, browsers[i]!, a.req.text, nextIp()).then((r) => r.status));
    });
    // The device holding the oldest seat deactivates itself with a signed request; the next one is reset from the portal.
    const [deactivating, resetting, ...rest] = before;
    if (deactivating) {
      const k = known.get(deactivating.hardwareId)!;
      const d = k.device.deactivationRequest({
        product: PRODUCT,
        licenseId: id,
        activationId: deactivating.id,
        requestNonce: k.nonce,
      });
      http.push(upload(base, browsers[NEW_PER_ROUND + 1]!, d.text, nextIp()).then((r) => r.status));
    }
    if (resetting) ops.push(resetDevice(deps(), actor, id, resetting.id));
    // Every other round the whole license is reset while all of the above runs; otherwise a second device reset.
    if (round % 2 === 1) ops.push(resetLicense(deps(), actor, id));
    else if (rest[0]) ops.push(resetDevice(deps(), actor, id, rest[0].id));

    const results = await Promise.allSettled([...http, ...ops]);
    for (const r of results) {
      if (r.status === 'rejected') {
        // A reset that lost the race to another reset or a deactivation of the same device is refused, nothing else is.
        assert.ok(r.reason instanceof HttpError && r.reason.status === 409, `${label}: ${r.reason?.stack ?? r.reason}`);
      }
    }
    const statuses = results.slice(0, http.length).map((r) => (r.status === 'fulfilled' ? (r.value as number) : -1));
    const errors = () =>
      JSON.stringify(
        t.logs
          .filter((l) => Number(l.level) >= 50)
          .map((l) => (l.err as { message?: string } | undefined)?.message ?? l.msg),
      );
    for (const s of statuses)
      assert.ok(s === 200 || s === 409, `${label}: HTTP ${s} (${JSON.stringify(tally(statuses))}) ${errors()}`);
    for (const [i, a] of activations.entries())
      if (statuses[i] === 200) known.set(a.device.hardwareId, { device: a.device, nonce: a.req.nonce });

    const active = await activeDevices(t.db, id);
    const row = await licenseRow(t.db, id);
    assert.equal(
      row.timesActivated,
      active.length,
      `${label}: times_activated must equal the active devices (${JSON.stringify(tally(statuses))})`,
    );
    assert.ok(active.length <= SEATS, `${label}: ${active.length} active devices on ${SEATS} seats`);
    assert.equal(
      new Set(active.map((d) => d.hardwareId)).size,
      active.length,
      `${label}: one active device per machine`,
    );
    // Once every seat has served a machine, each further new machine is one transfer.
    const machines = Number(
      (await t.db('devices').where({ license_id: id }).countDistinct({ n: 'hardware_id' }).first())!.n,
    );
    assert.equal(
      row.transferCount,
      Math.max(0, machines - SEATS),
      `${label}: transfer_count for ${machines} machines on ${SEATS} seats`,
    );
  }
}

/**
 * Rounds of 50 simultaneous redemptions of one new code through the License API, each from its own
 * device and client address: exactly one is answered with a license, 49 with `voucher_used`; the
 * order gains exactly one license, with one device, and the code one `voucher.redeemed` event.
 */
export async function voucherRaceRounds({ base, t }: OneServer, rounds: number) {
  const now = t.clock.now();
  const product = Number((await t.db('products').where({ code: PRODUCT }).first('id')).id);
  const policyId = await catalog.insertPolicy(
    t.db,
    {
      productId: product,
      name: 'Vouchers',
      isDefault: false,
      entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, allowOffline: true },
    },
    now,
  );
  const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Voucher Race' }, now);
  const orderId = await catalog.insertOrder(t.db, { orderRef: 'O-VOUCHERS', customerId: customer }, now);
  const admin = (await accounts.findById(t.db, (await createAccount(t.db, { role: 'admin' })).id))!;
  const deps = { db: t.db, clock: t.clock };
  for (let round = 0; round < rounds; round++) {
    const label = `round ${round + 1}`;
    const {
      codes: [code],
    } = await generateVouchers(deps, systemActor('voucher-race'), admin, orderId, { policyId, count: 1, days: 30 });
    const refusedBefore = await countRows(t.db, 'audit_events', { action: 'voucher.refused' });
    const responses = await Promise.all(
      range(50).map((i) =>
        request(base)
          .post('/api/v1/redeem')
          .set('X-Forwarded-For', `10.${100 + (round % 100)}.${i}.7`)
          .send({
            request: makeDevice(`HW-V${round}-${i}`).activationRequest({ product: PRODUCT, voucher: code }).text,
          }),
      ),
    );
    assert.deepEqual(
      tally(responses.map((r) => `${r.status} ${r.body?.error?.code ?? 'license'}`)),
      { '200 license': 1, '409 voucher_used': 49 },
      label,
    );
    assert.equal(await countRows(t.db, 'licenses', { order_id: orderId }), round + 1, `${label}: one license more`);
    const voucher = await t.db('vouchers').orderBy('id', 'desc').first();
    assert.equal(await countRows(t.db, 'devices', { license_id: voucher.license_id }), 1, `${label}: one device`);
    assert.equal(
      await countRows(t.db, 'audit_events', { action: 'voucher.redeemed', object_id: String(voucher.id) }),
      1,
      `${label}: redeemed once`,
    );
    assert.equal(
      (await countRows(t.db, 'audit_events', { action: 'voucher.refused' })) - refusedBefore,
      49,
      `${label}: every refusal audited`,
    );
  }
}
