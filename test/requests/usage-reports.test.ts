import assert from 'node:assert/strict';
import request from 'supertest';
import { buildTestApp, countRows, loginAgent, type TestApp } from '../helpers/app.ts';
import { makeDevice } from '../helpers/device.ts';
import { download, upload, uploadReport } from '../helpers/offline.ts';
import { portalWorld } from '../helpers/portal.ts';
import * as catalog from '../../app/models/catalog.ts';
import { nextUsageEntry } from '../../sdk/src/usage.ts';
import type { UsageLogEntry } from '../../sdk/src/payloads.ts';
import { verifyEnvelope } from '../../sdk/src/envelope.ts';
import { trustedKeyMap } from '../../app/services/signer.ts';
import { MAX_REQUEST_BYTES } from '../../app/services/offline.ts';

/** A usage log as the SDK keeps it: each entry chained to the one before. */
/** The response, after checking its status (supertest's expect is not there on a request built by an async helper). */
async function expectStatus(res: Promise<request.Response>, status: number): Promise<request.Response> {
  const r = await res;
  assert.equal(r.status, status, r.text.slice(0, 2000));
  return r;
}

function log(inputs: [UsageLogEntry['kind'], string | null, number][], at = new Date()): UsageLogEntry[] {
  const out: UsageLogEntry[] = [];
  for (const [kind, feature, amount] of inputs) out.push(nextUsageEntry(out.at(-1), { kind, feature, amount }, at));
  return out;
}

describe('Offline portal: signed usage reports', function () {
  this.timeout(90_000);
  let t: TestApp;
  let world: Awaited<ReturnType<typeof portalWorld>>;
  let render: number;
  let n = 0;

  /** An offline license of order A with `render` (consumption, 100 a month), activated offline by a new device whose license file was downloaded. */
  async function offlineDevice() {
    const key = Array(7).fill('CDEFGHJKMNPQRSTVWXYZ'[n++]!.repeat(4)).join('-');
    const now = t.clock.now();
    const licenseId = await catalog.insertLicense(
      t.db,
      {
        orderId: world.orderA,
        productId: world.product,
        policyId: null,
        licenseKey: key,
        entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, allowOffline: true, maxActivations: 5 },
        startDate: now,
      },
      now,
    );
    await t.db('license_features').insert({
      license_id: licenseId,
      feature_id: render,
      max_consumption: 100,
      consumption_period: 'month',
      total_consumption: 0,
    });
    const device = makeDevice();
    const agent = request.agent(t.app);
    const req = device.activationRequest({ product: 'cad', licenseKey: key });
    const page = await upload(agent, req.text);
    assert.equal(page.status, 200, page.text);
    assert.equal((await download(agent, page.text)).status, 200);
    const row = await t.db('devices').where({ license_id: licenseId, hardware_id: device.hardwareId }).first();
    const ref = { product: 'cad', licenseId, activationId: Number(row.id), requestNonce: req.nonce };
    return { licenseId, device, ref, deviceId: Number(row.id) };
  }

  const refusalsOf = async (licenseId: number | null, code: string) =>
    (await t.db('audit_events').where({ action: 'usage_report.refused' })).filter(
      (e: Record<string, unknown>) =>
        JSON.parse(String(e.after_state)).code === code &&
        (licenseId === null ? e.object_id === null : String(e.object_id) === String(licenseId)),
    ).length;

  before(async () => {
    t = await buildTestApp();
    world = await portalWorld(t.db);
    render = await catalog.insertFeature(
      t.db,
      { productId: world.product, code: 'render', name: 'Render minutes', type: 'consumption' },
      t.clock.now(),
    );
  });
  after(async () => t.close());

  it('accepts a chained report once: records consumption, peak seats and feature use; a replay is refused and audited', async () => {
    const { licenseId, device, ref, deviceId } = await offlineDevice();
    const entries = log([
      ['consumption', 'render', 30],
      ['seats', null, 3],
      ['feature', 'render', 2],
      ['consumption', 'render', 12],
      ['seats', null, 2],
    ]);
    const report = device.usageReport(ref, entries);
    const agent = request.agent(t.app);
    const accepted = await expectStatus(uploadReport(agent, report), 200);
    assert.match(accepted.text, /Usage report accepted/);
    assert.match(accepted.text, /entries 1 to 5/);
    assert.doesNotMatch(accepted.text, /offline\/download\//, 'the license did not change: no file comes back');
    const row = await t.db('usage_reports').where({ device_id: deviceId }).first();
    assert.deepEqual(
      [row.first_counter, row.last_counter, row.peak_seats, JSON.parse(row.consumption), JSON.parse(row.features_used)],
      [1, 5, 3, { render: 42 }, { render: 2 }],
    );
    assert.equal(Number((await t.db('consumption_usage').where({ license_id: licenseId }).first()).used), 42);
    assert.equal(
      Number((await t.db('license_features').where({ license_id: licenseId }).first()).total_consumption),
      42,
    );
    assert.equal(
      await countRows(t.db, 'audit_events', { action: 'usage_report.accepted', object_id: String(deviceId) }),
      1,
    );
    assert.equal(await countRows(t.db, 'activation_history', { license_id: licenseId, event: 'usage_reported' }), 1);

    const replay = await expectStatus(uploadReport(agent, report), 409);
    assert.match(replay.text, /already accepted/);
    assert.equal(await countRows(t.db, 'usage_reports', { device_id: deviceId }), 1);
    assert.equal(Number((await t.db('consumption_usage').where({ license_id: licenseId }).first()).used), 42);
    assert.equal(await refusalsOf(licenseId, 'report_replayed'), 1);
  });

  it('refuses edited, rolled-back and out-of-order reports with a clear message, each audited; the next good report is accepted', async () => {
    const { licenseId, device, ref, deviceId } = await offlineDevice();
    const agent = request.agent(t.app);
    const full = log([
      ['consumption', 'render', 1],
      ['consumption', 'render', 2],
      ['consumption', 'render', 3],
      ['consumption', 'render', 4],
      ['consumption', 'render', 5],
    ]);
    await expectStatus(uploadReport(agent, device.usageReport(ref, full.slice(0, 2))), 200);

    // Edited: an entry changed after it was written (its hash no longer matches).
    const changed = full.slice(2).map((e) => ({ ...e }));
    changed[0]!.amount = 1;
    const edited = await expectStatus(uploadReport(agent, device.usageReport(ref, changed)), 422);
    assert.match(edited.text, /do not chain/);
    assert.equal(await refusalsOf(licenseId, 'report_chain_broken'), 1);

    // Edited and re-chained: entry 2 rewritten (and every hash after it): the report does not continue the accepted one.
    const rewritten = log([
      ['consumption', 'render', 1],
      ['consumption', 'render', 0],
      ['consumption', 'render', 3],
    ]);
    const mismatch = await expectStatus(uploadReport(agent, device.usageReport(ref, rewritten.slice(2))), 409);
    assert.match(mismatch.text, /does not continue/);
    assert.equal(await refusalsOf(licenseId, 'report_chain_mismatch'), 1);

    // Rolled back: the log restored from before the last report, entries 1… made again.
    const rolled = await expectStatus(
      uploadReport(agent, device.usageReport(ref, log([['consumption', 'render', 9]]))),
      409,
    );
    assert.match(rolled.text, /expects entry 3 next/);
    assert.equal(await refusalsOf(licenseId, 'report_rolled_back'), 1);

    // Out of order: entries 4–5 before 3.
    const gap = await expectStatus(uploadReport(agent, device.usageReport(ref, full.slice(3))), 409);
    assert.match(gap.text, /expects entry 3 next/);
    assert.match(gap.text, /usage report --from 3/);
    assert.equal(await refusalsOf(licenseId, 'report_out_of_order'), 1);

    assert.equal(await countRows(t.db, 'usage_reports', { device_id: deviceId }), 1);
    assert.equal(Number((await t.db('consumption_usage').where({ license_id: licenseId }).first()).used), 3);
    await expectStatus(uploadReport(agent, device.usageReport(ref, full.slice(2))), 200);
    assert.equal(Number((await t.db('consumption_usage').where({ license_id: licenseId }).first()).used), 15);
    assert.equal(
      await countRows(t.db, 'activation_history', { license_id: licenseId, event: 'usage_report_refused' }),
      4,
    );
  });

  it("refuses another device's key, a tampered signature, an oversize file and nothing at all", async () => {
    const a = await offlineDevice();
    const b = await offlineDevice();
    const agent = request.agent(t.app);
    const entries = log([['seats', null, 1]]);
    // b signs a report naming a's activation: not the key on record.
    const stranger = await expectStatus(uploadReport(agent, b.device.usageReport(a.ref, entries)), 422);
    assert.match(stranger.text, /does not come from a machine on record/);
    assert.equal(await refusalsOf(null, 'report_device_unknown'), 1);
    // a's own report with one character of its signature changed.
    const text = a.device.usageReport(a.ref, entries);
    const lines = text.split('\n');
    const i = lines.length - 3;
    lines[i] = lines[i]!.replace(/[A-Za-z0-9]/, (c) => (c === 'A' ? 'B' : 'A'));
    const tampered = await expectStatus(uploadReport(agent, lines.join('\n')), 400);
    assert.match(tampered.text, /role="alert"/);
    assert.ok(
      (await t.db('audit_events').where({ action: 'usage_report.refused' })).some((e: Record<string, unknown>) =>
        ['signature', 'damaged'].includes(JSON.parse(String(e.after_state)).code),
      ),
    );
    await expectStatus(uploadReport(agent, 'x'.repeat(MAX_REQUEST_BYTES + 10)), 413);
    assert.equal(await refusalsOf(null, 'too_large'), 1, 'an oversize report is audited, never read');
    const page = await agent.get('/offline').expect(200);
    const token = /action="[^"]*\/reports\?_csrf=([^"&]+)"/.exec(page.text)![1]!;
    await agent.post(`/offline/reports?_csrf=${token}`).field('report', '').expect(422);
    assert.equal(await countRows(t.db, 'usage_reports', { device_id: a.deviceId }), 0);
  });

  it('the same report uploaded twice at the same instant is recorded once', async () => {
    const { licenseId, device, ref, deviceId } = await offlineDevice();
    const report = device.usageReport(ref, log([['consumption', 'render', 7]]));
    const results = await Promise.all([1, 2].map(() => uploadReport(request.agent(t.app), report)));
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 409]);
    assert.equal(await countRows(t.db, 'usage_reports', { device_id: deviceId }), 1);
    assert.equal(Number((await t.db('consumption_usage').where({ license_id: licenseId }).first()).used), 7);
  });

  it('answers with a renewed license after the license was extended; managers see "renewal pending", the report history (404 outside their orders) and the vendor the true-up', async () => {
    const { licenseId, device, ref, deviceId } = await offlineDevice();
    const manager = await loginAgent(t.app, world.managerAll.email, world.managerAll.password);
    const outsider = await loginAgent(t.app, world.managerB.email, world.managerB.password);
    const before = await manager.get(`/portal/licenses/${licenseId}`).expect(200);
    assert.doesNotMatch(before.text, /Renewal pending/);
    assert.match(before.text, /Render minutes/, 'the consumption table');

    const until = new Date(t.clock.now().getTime() + 400 * 86_400_000);
    await t.db('licenses').where({ id: licenseId }).update({ expires_at: until });
    const pending = await manager.get(`/portal/licenses/${licenseId}`).expect(200);
    assert.match(pending.text, /Renewal pending — picked up with the next report/);

    const agent = request.agent(t.app);
    const page = await expectStatus(uploadReport(agent, device.usageReport(ref, log([['seats', null, 9]]))), 200);
    assert.match(page.text, /renewed license file \(number 1\)/);
    const file = (await download(agent, page.text)).body.toString('utf8');
    const payload = verifyEnvelope(file, { expectedType: 'refresh', trustedKeys: await trustedKeyMap(t.db) })
      .payload as { counter: number; expiresAt: string; activationId: number };
    assert.equal(payload.counter, 1);
    assert.equal(payload.activationId, deviceId);
    assert.equal(payload.expiresAt, until.toISOString());
    assert.doesNotMatch((await manager.get(`/portal/licenses/${licenseId}`).expect(200)).text, /Renewal pending/);

    const history = await manager.get(`/portal/licenses/${licenseId}/devices/${deviceId}/reports`).expect(200);
    assert.match(history.text, /1 to 1/);
    assert.match(history.text, /file 1/);
    await outsider.get(`/portal/licenses/${licenseId}/devices/${deviceId}/reports`).expect(404);
    await manager.get(`/portal/licenses/${world.licenseB}/devices/${world.deviceB}/reports`).expect(404);

    const admin = await loginAgent(t.app, world.admin.email, world.admin.password);
    await admin.get(`/admin/licenses/${licenseId}/devices/${deviceId}/reports`).expect(200);
    const consolePage = await admin.get(`/admin/licenses/${licenseId}`).expect(200);
    assert.match(consolePage.text, /Consumption/);
    assert.match(consolePage.text, /Render minutes/);
    const order = await admin.get(`/admin/orders/${world.orderA}`).expect(200);
    assert.match(order.text, /True-up: peak use against purchased/);
    assert.match(order.text, /4 over/, 'peak 9 against 5 purchased');
  });
});
