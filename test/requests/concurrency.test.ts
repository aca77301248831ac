import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import request from 'supertest';
import type { Knex } from 'knex';
import { buildTestApp, createAccount, type TestApp } from '../helpers/app.ts';
import { createTestDatabase, usingMysql, type TestDatabase } from '../helpers/db.ts';
import { makeDevice } from '../helpers/device.ts';
import { runScript, waitFor } from '../helpers/process.ts';
import * as catalog from '../../app/models/catalog.ts';
import { generateLicenseKey } from '../../app/lib/license-keys.ts';
import { ensureSigningKey } from '../../app/services/signing-keys.ts';
import { HttpError } from '../../app/lib/errors.ts';
import { resetDevice, resetLicense } from '../../app/services/licenses.ts';
import { systemActor } from '../../app/services/context.ts';
import { injectSerializationFailures } from '../../app/lib/transaction.ts';
import { adminAgent } from '../helpers/app.ts';
import { decodeEnvelope } from '../../sdk/src/envelope.ts';

/**
 * Seat limits under real concurrency (ARCHITECTURE "Scale"): many requests at once over real HTTP,
 * against the real database (SQLite, or MariaDB/MySQL with DATABASE_URL=mysql://…), no mocks. The
 * rules hold through guarded updates and unique keys, so every count below must be exact.
 */

/** The SQLite driver itself (it ships no type declarations): a lock probe beside knex's pool. */
const SqliteDatabase = createRequire(import.meta.url)('better-sqlite3') as new (file: string, options: { timeout: number }) => { exec(sql: string): void; close(): void };

const PRODUCT = 'acme-cad';
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** One end user's browser on the offline portal: its session cookie and the upload URL with the CSRF token. */
interface Browser {
  cookie: string;
  action: string;
}

async function openBrowser(base: string): Promise<Browser> {
  const page = await request(base).get('/offline').expect(200);
  const action = /action="([^"]*\?_csrf=[^"]*)"/.exec(page.text)![1]!.replace(/&amp;/g, '&');
  const cookie = ([] as string[]).concat(page.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]).join('; ');
  assert.ok(cookie, 'the page opened a session (the CSRF token lives in it)');
  return { cookie, action };
}

/**
 * Uploads one request file as that browser, from its own client address (the portal allows 120
 * requests per address per 15 minutes; X-Forwarded-For is a header value only, trusted via TRUST_PROXY).
 */
function upload(base: string, browser: Browser, text: string, clientIp: string) {
  return request(base).post(browser.action).set('Cookie', browser.cookie).set('X-Forwarded-For', clientIp).attach('file', Buffer.from(text), 'activation-request.req');
}

/** server.ts as a real process (node itself with the tsx loader: SIGKILL reaches the server). */
type ServerProcess = ReturnType<typeof runScript>;
const serverProcess = (env: Record<string, string>): ServerProcess => runScript('server.ts', env);

async function stopProcess(child: ServerProcess, signal: NodeJS.Signals) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

async function listen(t: TestApp): Promise<{ server: Server; base: string }> {
  const server = t.app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function stopServer(server: Server | undefined) {
  if (!server) return;
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** A vendor with one offline-capable product and an order to issue licenses into. */
async function seedVendor(db: Knex, now: Date) {
  const product = await catalog.insertProduct(db, { name: 'Acme CAD', code: PRODUCT, authorizationMethod: 'key' }, now);
  const customer = await catalog.insertCustomer(db, { kind: 'company', name: 'Globex' }, now);
  const order = await catalog.insertOrder(db, { orderRef: 'O-CONC', customerId: customer }, now);
  return async (over: Partial<catalog.Entitlements>) => {
    const licenseKey = generateLicenseKey();
    const startDate = new Date(now.getTime() - 86_400_000);
    const id = await catalog.insertLicense(db, { orderId: order, productId: product, policyId: null, licenseKey, entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, allowOffline: true, ...over }, startDate }, now);
    return { id, licenseKey };
  };
}

async function licenseRow(db: Knex, id: number) {
  const row = await db('licenses').where({ id }).first('times_activated', 'transfer_count');
  return { timesActivated: Number(row.times_activated), transferCount: Number(row.transfer_count) };
}

async function activeDevices(db: Knex, licenseId: number): Promise<{ id: number; hardwareId: string }[]> {
  const rows = await db('devices').where({ license_id: licenseId }).whereNull('deactivated_at').orderBy('id').select('id', 'hardware_id');
  return rows.map((r: { id: number; hardware_id: string }) => ({ id: Number(r.id), hardwareId: String(r.hardware_id) }));
}

async function licenseAudit(db: Knex, licenseId: number) {
  const rows = await db('audit_events').where({ object_type: 'license', object_id: String(licenseId) }).orderBy('id').select('action', 'after_state');
  return rows.map((r: { action: string; after_state: string | null }) => ({ action: String(r.action), after: r.after_state ? (JSON.parse(String(r.after_state)) as Record<string, unknown>) : null }));
}

/** What the page told the user: its status and the refusal's first line, or the page heading. */
function told(res: { status: number; text: string }): string {
  const headline = /role="alert">\s*<p><strong>([^<]*)</.exec(res.text)?.[1] ?? /<h1>([^<]*)<\/h1>/.exec(res.text)?.[1] ?? '';
  return `${res.status} ${headline.replace(/&#39;/g, "'")}`;
}
const GRANTED = '200 License activated';
const NO_SEATS = '409 No activations are left on this license.';

/** How often each value occurs ({ 200: 5, 409: 45 }): readable assertion messages. */
function tally(values: (number | string)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

/** The seat rules after a burst: exactly `seats` active devices, all counted, each with its nonce, audited once. */
async function assertFullLicense(db: Knex, licenseId: number, seats: number, attempts: number, grantedHardwareIds: string[], label: string) {
  const active = await activeDevices(db, licenseId);
  assert.equal(active.length, seats, `${label}: active devices`);
  assert.equal(Number((await db('devices').where({ license_id: licenseId }).count({ n: '*' }).first())!.n), seats, `${label}: no device rows besides the granted ones`);
  assert.deepEqual(active.map((d) => d.hardwareId).sort(), [...grantedHardwareIds].sort(), `${label}: the devices in the database are the ones told "activated"`);
  assert.deepEqual(await licenseRow(db, licenseId), { timesActivated: seats, transferCount: 0 }, `${label}: times_activated / transfer_count`);
  assert.equal(Number((await db('request_nonces').where({ license_id: licenseId }).count({ n: '*' }).first())!.n), seats, `${label}: one nonce per granted request`);
  const audit = await licenseAudit(db, licenseId);
  assert.equal(audit.length, attempts, `${label}: one audit event per request`);
  assert.equal(audit.filter((e) => e.action === 'activation.granted').length, seats, `${label}: granted events`);
  const refused = audit.filter((e) => e.action === 'activation.refused');
  assert.equal(refused.length, attempts - seats, `${label}: refused events`);
  assert.deepEqual(tally(refused.map((e) => String(e.after?.code))), { no_seats: attempts - seats }, `${label}: every refusal says no seats are left`);
}

describe('Seat limits under concurrency (real HTTP, real database)', function () {
  this.timeout(120_000);

  describe('one server', () => {
    let t: TestApp;
    let server: Server;
    let base: string;
    let addLicense: Awaited<ReturnType<typeof seedVendor>>;
    const deps = () => ({ db: t.db, clock: t.clock });
    const actor = systemActor('concurrency-test');

    before(async () => {
      // Every simultaneous upload gets a slot: the seat rules are under test here, the slots in upload-limits.test.ts.
      t = await buildTestApp({ trustProxy: true, logLevel: 'warn', offlineUploadSlots: 100 });
      ({ server, base } = await listen(t));
      addLicense = await seedVendor(t.db, t.clock.now());
    });
    after(async () => {
      await stopServer(server);
      await t?.close();
    });

    it('50 simultaneous activations of a 5-seat license leave exactly 5 devices, 5 granted and 45 "no seats" events — 20 rounds', async function () {
      const SEATS = 5;
      const DEVICES = 50;
      const ROUNDS = 20;
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
    });

    it('50 racing activations on 5 seats while every transaction meets serialization failures: 5 granted, 45 "no seats", no 500', async function () {
      // The transaction helper must absorb conflicts (deadlock, lock wait, Galera certification, SQLite
      // busy): here every transaction fails its first two attempts after doing its work.
      const { id, licenseKey } = await addLicense({ maxActivations: 5, maxTransfers: 0 });
      const browsers = await Promise.all(range(50).map(() => openBrowser(base)));
      const devices = range(50).map((i) => makeDevice(`HW-CONFLICT-${i}`));
      const injected = injectSerializationFailures(t.db, 2);
      try {
        const responses = await Promise.all(devices.map((d, i) => upload(base, browsers[i]!, d.activationRequest({ product: PRODUCT, licenseKey }).text, `10.240.${i}.1`)));
        assert.deepEqual(tally(responses.map(told)), { [GRANTED]: 5, [NO_SEATS]: 45 });
        assert.ok(injected.failures() >= 10, `each of the 5 grants met 2 injected failures (${injected.failures()} in all)`);
        const granted = responses.flatMap((r, i) => (r.status === 200 ? [devices[i]!.hardwareId] : []));
        await assertFullLicense(t.db, id, 5, 50, granted, 'with injected conflicts');
      } finally {
        injected.stop();
      }
    });

    it('50 online checks and 50 console refreshes of one device at the same moment: 100 distinct counters, no 500', async function () {
      const { id, licenseKey } = await addLicense({ maxActivations: 1 });
      const device = makeDevice('HW-COUNTER');
      const browser = await openBrowser(base);
      assert.equal((await upload(base, browser, device.activationRequest({ product: PRODUCT, licenseKey }).text, '10.241.0.1')).status, 200);
      const activationId = (await activeDevices(t.db, id))[0]!.id;
      const admin = (await adminAgent(t)).agent;
      const check = (i: number) => request(base).post('/api/v1/check').set('X-Forwarded-For', `10.242.${i}.1`).send({ request: device.checkRequest({ product: PRODUCT, licenseId: id, activationId }) });
      const refresh = () => admin.get(`/admin/licenses/${id}/devices/${activationId}/refresh`).buffer(true);
      const answers = await Promise.all(range(100).map((i) => (i % 2 ? check(i) : refresh())));
      assert.deepEqual(tally(answers.map((a) => a.status)), { 200: 100 });
      const counters = answers.map((a) => {
        const text = a.body?.license ?? a.text;
        return Number(JSON.parse(decodeEnvelope(text).payloadBytes.toString('utf8')).counter);
      });
      assert.deepEqual([...counters].sort((a, b) => a - b), range(100).map((i) => i + 1), 'every counter once, 1 to 100');
      assert.equal(Number((await t.db('devices').where({ id: activationId }).first('license_counter')).license_counter), 100);
    });

    it('60 simultaneous activations of 30 different licenses (two each) are all granted: none fails on another license\'s locks', async function () {
      // Under MySQL's REPEATABLE READ the seat checks took gap locks between the devices of
      // neighbouring licenses, and concurrent activations of different licenses deadlocked (HTTP 500).
      const LICENSES = 30;
      const licensesMade = await Promise.all(range(LICENSES).map(() => addLicense({ maxActivations: 2, maxTransfers: 0 })));
      const browsers = await Promise.all(range(LICENSES * 2).map(() => openBrowser(base)));
      const devices = range(LICENSES * 2).map((i) => makeDevice(`HW-MANY-${i}`));
      const responses = await Promise.all(devices.map((d, i) => upload(base, browsers[i]!, d.activationRequest({ product: PRODUCT, licenseKey: licensesMade[i % LICENSES]!.licenseKey }).text, `10.200.${i}.1`)));
      assert.deepEqual(tally(responses.map(told)), { [GRANTED]: LICENSES * 2 });
      for (const { id } of licensesMade) {
        assert.equal((await activeDevices(t.db, id)).length, 2);
        assert.deepEqual(await licenseRow(t.db, id), { timesActivated: 2, transferCount: 0 });
      }
    });

    it('floating license: checks of lapsed devices and new online activations at the same time free and take slots without a server error, and seats = active devices', async function () {
      const SLOTS = 3;
      const { id, licenseKey } = await addLicense({ floating: true, floatingUsers: SLOTS, floatingTimeoutMinutes: 10, maxActivations: 1000 });
      const api = (action: string, body: object, i: number) => request(base).post(`/api/v1/${action}`).set('X-Forwarded-For', `10.250.${i}.1`).send(body);
      for (let round = 0; round < 4; round++) {
        // Fill the slots, let them lapse, then everyone at once: the old devices check in, new ones activate.
        const holders = range(SLOTS).map((i) => makeDevice(`HW-FLOAT-${round}-OLD-${i}`));
        const refs = [];
        for (const [i, d] of holders.entries()) {
          const active = (await activeDevices(t.db, id)).length;
          if (active >= SLOTS) break;
          const res = await api('activate', { request: d.activationRequest({ product: PRODUCT, licenseKey }).text }, i).expect(200);
          refs.push({ device: d, ref: { product: PRODUCT, licenseId: id, activationId: Number(res.body.activationId) } });
        }
        t.clock.advance(11 * 60_000);
        const newcomers = range(8).map((i) => makeDevice(`HW-FLOAT-${round}-NEW-${i}`));
        const answers = await Promise.all([
          ...refs.map(({ device, ref }, i) => api('check', { request: device.checkRequest(ref) }, 100 + i)),
          ...newcomers.map((d, i) => api('activate', { request: d.activationRequest({ product: PRODUCT, licenseKey }).text }, 200 + i)),
        ]);
        const statuses = answers.map((a) => a.status);
        assert.ok(statuses.every((s) => [200, 409, 410].includes(s)), `round ${round + 1}: only granted, no seats or lapsed, got ${JSON.stringify(tally(statuses))}`);
        const active = await activeDevices(t.db, id);
        assert.ok(active.length <= SLOTS, `round ${round + 1}: ${active.length} active devices on ${SLOTS} slots`);
        assert.equal((await licenseRow(t.db, id)).timesActivated, active.length, `round ${round + 1}: times_activated = active devices`);
        assert.equal(answers.slice(refs.length).filter((a) => a.status === 200).length + answers.slice(0, refs.length).filter((a) => a.status === 200).length, active.length, `round ${round + 1}: every 200 holds a slot`);
        t.clock.advance(11 * 60_000);
      }
    });

    it('activations, device resets, license resets and deactivation uploads at the same time keep times_activated = active devices ≤ seats, and count transfers exactly', async function () {
      const SEATS = 3;
      const ROUNDS = 6;
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
        const activations = [...fresh.map((d) => ({ device: d, req: d.activationRequest({ product: PRODUCT, licenseKey }) })), ...(returning ? [{ device: returning.device, req: returning.device.activationRequest({ product: PRODUCT, licenseKey }) }] : [])];
        activations.forEach((a, i) => http.push(upload(base, browsers[i]!, a.req.text, nextIp()).then((r) => r.status)));
        // The device holding the oldest seat deactivates itself with a signed request; the next one is reset from the portal.
        const [deactivating, resetting, ...rest] = before;
        if (deactivating) {
          const k = known.get(deactivating.hardwareId)!;
          const d = k.device.deactivationRequest({ product: PRODUCT, licenseId: id, activationId: deactivating.id, requestNonce: k.nonce });
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
        const errors = () => JSON.stringify(t.logs.filter((l) => Number(l.level) >= 50).map((l) => (l.err as { message?: string } | undefined)?.message ?? l.msg));
        for (const s of statuses) assert.ok(s === 200 || s === 409, `${label}: HTTP ${s} (${JSON.stringify(tally(statuses))}) ${errors()}`);
        for (const [i, a] of activations.entries()) if (statuses[i] === 200) known.set(a.device.hardwareId, { device: a.device, nonce: a.req.nonce });

        const active = await activeDevices(t.db, id);
        const row = await licenseRow(t.db, id);
        assert.equal(row.timesActivated, active.length, `${label}: times_activated must equal the active devices (${JSON.stringify(tally(statuses))})`);
        assert.ok(active.length <= SEATS, `${label}: ${active.length} active devices on ${SEATS} seats`);
        assert.equal(new Set(active.map((d) => d.hardwareId)).size, active.length, `${label}: one active device per machine`);
        // SPEC §1: once every seat has served a machine, each further new machine is one transfer.
        const machines = Number((await t.db('devices').where({ license_id: id }).countDistinct({ n: 'hardware_id' }).first())!.n);
        assert.equal(row.transferCount, Math.max(0, machines - SEATS), `${label}: transfer_count for ${machines} machines on ${SEATS} seats`);
      }
    });

    it('MySQL: a connection killed in the middle of an activation leaves no half-written rows; the same request then succeeds', async function () {
      if (!usingMysql) this.skip();
      const { id, licenseKey } = await addLicense({ maxActivations: 2 });
      const browser = await openBrowser(base);
      const device = makeDevice('HW-KILLED');
      const req = device.activationRequest({ product: PRODUCT, licenseKey });
      // Hold an uncommitted row with this request's nonce: the activation takes its seat and writes its
      // device row, then waits on the nonce's primary key — mid-transaction, with writes to undo. Its
      // connection is killed there, and only then is the blocking row released.
      const blocker = await t.db.transaction();
      try {
        const blockerId = Number((await blocker.raw('SELECT CONNECTION_ID() AS id'))[0][0].id);
        // (No license_id: its foreign key would share-lock the license row and stop the activation earlier, at its seat.)
        await blocker('request_nonces').insert({ nonce: req.nonce, kind: 'activation', license_id: null, device_id: null, created_at: t.clock.now() });
        const pending = upload(base, browser, req.text, '10.250.0.1').then((r) => r);
        let victim: number | null = null;
        for (const started = Date.now(); victim === null; await new Promise((r) => setTimeout(r, 10))) {
          assert.ok(Date.now() - started < 15_000, 'the activation never reached its nonce insert');
          const [rows] = await t.db.raw("SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> ? AND INFO LIKE 'insert into `request_nonces`%' AND INSTR(INFO, ?) > 0", [blockerId, req.nonce]);
          if (rows.length) victim = Number(rows[0].id);
        }
        // Its device row exists, uncommitted: proof that the kill lands after writes.
        const [locks] = await t.db.raw('SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = ? AND trx_rows_modified >= 2', [victim]);
        assert.equal(Number(locks[0].n), 1, 'the activation had written its seat and device row when killed');
        await t.db.raw('KILL CONNECTION ?', [victim]);
        const killed = await pending;
        assert.equal(killed.status, 500, 'the request whose connection died fails plainly');
      } finally {
        await blocker.rollback();
      }
      assert.equal(await t.db('devices').where({ license_id: id }).count({ n: '*' }).first().then((r) => Number(r!.n)), 0, 'no device row');
      assert.equal(await t.db('request_nonces').where({ nonce: req.nonce }).count({ n: '*' }).first().then((r) => Number(r!.n)), 0, 'no nonce row');
      assert.deepEqual(await licenseRow(t.db, id), { timesActivated: 0, transferCount: 0 }, 'the seat was given back');
      assert.equal(await t.db('activation_history').where({ license_id: id }).count({ n: '*' }).first().then((r) => Number(r!.n)), 0, 'no history row');
      assert.deepEqual(await licenseAudit(t.db, id), [], 'no audit event for a change that never happened');

      // The pool replaced the dead connection, and the very same request now activates.
      const again = await upload(base, browser, req.text, '10.250.0.2');
      assert.equal(again.status, 200, again.text);
      assert.match(again.text, /License activated/);
      assert.deepEqual((await activeDevices(t.db, id)).map((d) => d.hardwareId), ['HW-KILLED']);
      assert.deepEqual(await licenseRow(t.db, id), { timesActivated: 1, transferCount: 0 });
      assert.equal(await t.db('request_nonces').where({ nonce: req.nonce, license_id: id }).count({ n: '*' }).first().then((r) => Number(r!.n)), 1);
      assert.deepEqual((await licenseAudit(t.db, id)).map((e) => e.action), ['activation.granted']);
    });
  });

  describe('server.ts processes sharing one database', () => {
    let database: TestDatabase;
    let dataDir: string;
    const children: ServerProcess[] = [];
    let addLicense: Awaited<ReturnType<typeof seedVendor>>;

    const start = async () => {
      // Every simultaneous upload gets a slot: the seat rules are under test here, the slots in upload-limits.test.ts.
      const child = serverProcess({ PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, DATABASE_URL: database.url, TRUST_PROXY: 'true', LOG_LEVEL: 'warn', NODE_ENV: 'test', OFFLINE_UPLOAD_SLOTS: '100' });
      children.push(child);
      const [, url] = await waitFor(child, /listening on (http:\/\/\S+)/);
      return { child, base: url!.replace('localhost', '127.0.0.1') };
    };

    before(async () => {
      database = await createTestDatabase();
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-conc-'));
      // The signing key exists before the processes start (they share it through DATA_DIR), and an admin
      // exists, so no process prints a setup link.
      await ensureSigningKey(database.db, dataDir, new Date());
      await createAccount(database.db, { role: 'admin' });
      addLicense = await seedVendor(database.db, new Date());
    });
    after(async () => {
      await Promise.all(children.map((c) => stopProcess(c, 'SIGKILL')));
      await database?.drop();
      if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    });

    it('two processes: 50 simultaneous activations split across both leave exactly 5 devices', async function () {
      // On SQLite too: its transactions begin IMMEDIATE (db/knexfile.ts), so the two processes queue for
      // the file's write lock (busy_timeout) instead of failing with "database is locked".
      const SEATS = 5;
      const DEVICES = 50;
      const servers = await Promise.all([start(), start()]);
      try {
        const { id, licenseKey } = await addLicense({ maxActivations: SEATS, maxTransfers: 0 });
        // Each browser opens its session on one process and uploads to the other: sessions, CSRF tokens and rate limits live in the database.
        const browsers = await Promise.all(range(DEVICES).map((i) => openBrowser(servers[i % 2]!.base)));
        const devices = range(DEVICES).map((i) => makeDevice(`HW-P${i}`));
        const files = devices.map((d) => d.activationRequest({ product: PRODUCT, licenseKey }).text);
        const responses = await Promise.all(files.map((text, i) => upload(servers[(i + 1) % 2]!.base, browsers[i]!, text, `10.100.${i}.1`)));
        assert.deepEqual(tally(responses.map(told)), { [GRANTED]: SEATS, [NO_SEATS]: DEVICES - SEATS }, servers.map((s) => s.child.output()).join('\n').slice(-3000));
        const granted = responses.flatMap((r, i) => (r.status === 200 ? [devices[i]!.hardwareId] : []));
        await assertFullLicense(database.db, id, SEATS, DEVICES, granted, 'two processes');
      } finally {
        await Promise.all(servers.map((s) => stopProcess(s.child, 'SIGTERM')));
      }
      for (const s of servers) assert.equal(s.child.exitCode, 0, s.child.output());
      assert.doesNotMatch(servers.map((s) => s.child.output()).join('\n'), /"level":(50|60)/, 'no errors logged');
    });

    it('SQLite: a process killed in the middle of an activation leaves no half-written rows; after a restart the same request succeeds', async function () {
      if (usingMysql) this.skip();
      const { id, licenseKey } = await addLicense({ maxActivations: 2 });
      const device = makeDevice('HW-CRASH');
      const req = device.activationRequest({ product: PRODUCT, licenseKey });
      const file = database.url.slice('sqlite:'.length);
      // A slow step inside the transaction, in the test database only: after the activation has taken
      // its seat and written its device and nonce rows, inserting this nonce runs a query that never ends.
      await database.db.raw('CREATE TABLE test_spin (x INTEGER)');
      await database.db.raw('INSERT INTO test_spin (x) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) SELECT x FROM c');
      await database.db.raw(`CREATE TRIGGER test_hang AFTER INSERT ON request_nonces WHEN NEW.nonce = '${req.nonce}' BEGIN SELECT count(*) FROM test_spin a, test_spin b, test_spin c, test_spin d; END`);

      const first = await start();
      const browser = await openBrowser(first.base);
      const pending = upload(first.base, browser, req.text, '10.150.0.1').then(
        (r) => r.status,
        () => 'connection lost',
      );
      // The process holds the write lock without letting go only while it is inside that transaction.
      const probe = new SqliteDatabase(file, { timeout: 0 });
      try {
        let lockedSince: number | null = null;
        for (const started = Date.now(); lockedSince === null || Date.now() - lockedSince < 200; await new Promise((r) => setTimeout(r, 10))) {
          assert.ok(Date.now() - started < 15_000, 'the activation never got stuck in its transaction');
          try {
            probe.exec('BEGIN IMMEDIATE');
            probe.exec('ROLLBACK');
            lockedSince = null;
          } catch (err) {
            assert.equal((err as { code?: string }).code, 'SQLITE_BUSY');
            lockedSince ??= Date.now();
          }
        }
      } finally {
        probe.close();
      }
      await stopProcess(first.child, 'SIGKILL');
      assert.equal(first.child.signalCode, 'SIGKILL');
      assert.equal(await pending, 'connection lost');

      assert.equal(Number((await database.db('devices').where({ license_id: id }).count({ n: '*' }).first())!.n), 0, 'no device row');
      assert.equal(Number((await database.db('request_nonces').where({ nonce: req.nonce }).count({ n: '*' }).first())!.n), 0, 'no nonce row');
      assert.deepEqual(await licenseRow(database.db, id), { timesActivated: 0, transferCount: 0 }, 'no seat taken');
      assert.equal(Number((await database.db('activation_history').where({ license_id: id }).count({ n: '*' }).first())!.n), 0, 'no history row');
      assert.deepEqual(await licenseAudit(database.db, id), [], 'no audit event');
      await database.db.raw('DROP TRIGGER test_hang');

      const second = await start();
      try {
        const res = await upload(second.base, await openBrowser(second.base), req.text, '10.150.0.2');
        assert.equal(res.status, 200, res.text);
        assert.match(res.text, /License activated/);
        assert.deepEqual((await activeDevices(database.db, id)).map((d) => d.hardwareId), ['HW-CRASH']);
        assert.deepEqual(await licenseRow(database.db, id), { timesActivated: 1, transferCount: 0 });
        assert.deepEqual((await licenseAudit(database.db, id)).map((e) => e.action), ['activation.granted']);
      } finally {
        await stopProcess(second.child, 'SIGTERM');
      }
      assert.equal(second.child.exitCode, 0, second.child.output());
    });
  });
});
