import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import request from 'supertest';
import { buildTestApp, adminAgent, countRows, csrfFrom, type TestApp } from '../helpers/app.ts';
import { makeDevice } from '../helpers/device.ts';
import { download, upload } from '../helpers/offline.ts';
import { decodeQrPng } from '../helpers/qr.ts';
import * as catalog from '../../app/models/catalog.ts';
import { REFUSAL_AUDIT_PER_CLIENT } from '../../app/services/refusals.ts';
import {
  createAirgapRequest,
  createDeactivationCode,
  createLegacyDeactivationCode,
  hardwareHash,
  legacyAirgapSecret,
  parseActivationCode,
} from '../../sdk/src/airgap.ts';
import { decodeEnvelope, encodeEnvelope, signEnvelope } from '../../sdk/src/envelope.ts';

/**
 * The attacker: only what the portals, codes, QR codes and downloads show — no server secret, no
 * device state. Every attempt must be refused, recorded, and leave the seat count exact.
 */

type Agent = ReturnType<typeof request.agent>;

const PRODUCT = 'plant';

async function seats(t: TestApp, licenseId: number): Promise<number> {
  return Number((await t.db('licenses').where({ id: licenseId }).first('times_activated')).times_activated);
}

async function activeDevices(t: TestApp, licenseId: number): Promise<number> {
  return countRows(t.db, 'devices', { license_id: licenseId, deactivated_at: null });
}

async function refusals(t: TestApp, action: string, code: string): Promise<Record<string, unknown>[]> {
  const rows = await t.db('audit_events').where({ action }).select('after_state', 'ip');
  return rows
    .map((r: { after_state: string; ip: string }) => ({ ...JSON.parse(r.after_state), ip: r.ip }))
    .filter((a: { code: string }) => a.code === code);
}

describe('The attacker, with only what the portals show', function () {
  this.timeout(60_000);
  let t: TestApp;
  let agent: Agent;
  let product: number;
  let order: number;
  const now = new Date();
  const addLicense = async (licenseKey: string, over: Partial<catalog.Entitlements>) =>
    catalog.insertLicense(
      t.db,
      {
        orderId: order,
        productId: product,
        policyId: null,
        licenseKey,
        entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, maxActivations: 1, maxTransfers: 0, ...over },
        startDate: now,
      },
      now,
    );

  async function airgapPost(url: string, fields: Record<string, string>, client = '203.0.113.7') {
    const a = request.agent(t.app);
    const page = await a.get('/airgap').set('X-Forwarded-For', client);
    return a
      .post(url)
      .set('X-Forwarded-For', client)
      .type('form')
      .send({ _csrf: csrfFrom(page.text), ...fields });
  }

  before(async () => {
    t = await buildTestApp({ trustProxy: true });
    agent = request.agent(t.app);
    product = await catalog.insertProduct(
      t.db,
      { name: 'Plant Control', code: PRODUCT, authorizationMethod: 'key' },
      now,
    );
    const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Globex' }, now);
    order = await catalog.insertOrder(t.db, { orderRef: 'ATTACK-1', customerId: customer }, now);
  });
  after(async () => t.close());

  it('cannot forge an air-gap deactivation from the activation code, its QR code, its download, the request code and the key', async () => {
    const key = 'ATKA-ATKA-ATKA-ATKA-ATKA-ATKA-ATKA';
    const licenseId = await addLicense(key, { airgapped: true, maxTransfers: 0 });
    // The victim's machine: its secret never leaves it.
    const victim = createAirgapRequest({ product: PRODUCT, hardwareId: 'VICTIM-SITE', now: t.clock.now() });
    const shown = await airgapPost('/airgap/activate', { license_key: key, request_code: victim.code });
    assert.equal(shown.status, 200);
    // What the attacker saw: the page's code, the QR image, the downloaded file (and its name), the request code.
    const activationCode = /id="activation-code"[^>]*>([^<]+)</.exec(shown.text)![1]!.trim();
    const qr = decodeQrPng(/<img src="(data:image\/png;base64,[^"]+)"/.exec(shown.text)![1]!)!;
    const file = await request(t.app)
      .get(/href="(\/airgap\/download\/[^"]+)"/.exec(shown.text)![1]!)
      .expect(200);
    assert.equal(qr, activationCode);
    assert.equal(file.text.trim(), activationCode);
    const deviceId = Number(/activation-code-(\d+)\.txt/.exec(String(file.headers['content-disposition']))![1]);
    const signature = parseActivationCode(activationCode).signature;
    const seen = [victim.code, activationCode, key, String(deviceId)].join('\n');
    assert.ok(!seen.includes(victim.secret.toUpperCase()) && !seen.includes(victim.secret));

    // Every secret the attacker can derive from what was shown, as a version 2 code and as a version 1 code.
    const derived = [
      legacyAirgapSecret(signature),
      crypto.createHash('sha256').update(signature).digest(),
      Buffer.from(victim.request.commitment, 'hex'),
      crypto.randomBytes(10),
    ];
    const forged = [
      ...derived.map(
        (s) => createDeactivationCode({ hardwareHash: victim.request.hardwareHash, secret: s.subarray(0, 10) }).code,
      ),
      ...derived.map((s) => createLegacyDeactivationCode({ activationId: deviceId, secret: s.subarray(0, 16) }).code),
    ];
    for (const [i, code] of forged.entries()) {
      const res = await airgapPost(
        '/airgap/deactivate',
        { license_key: key, deactivation_code: code },
        `198.51.100.${i + 1}`,
      );
      assert.ok([403].includes(res.status), `forgery ${i}: HTTP ${res.status}`);
    }
    assert.equal(await seats(t, licenseId), 1, 'the seat stays taken');
    assert.equal(await activeDevices(t, licenseId), 1);
    const recorded = await refusals(t, 'deactivation.refused', 'deactivation_forged');
    assert.equal(recorded.length, forged.length, 'every forgery is audited');
    assert.ok(
      recorded.every((r) => typeof r.requestHash === 'string' && /^[0-9a-f]{64}$/.test(String(r.requestHash)) && r.ip),
      "with the code's hash and the client address",
    );
    assert.ok(
      recorded.every((r) => !JSON.stringify(r).includes(forged[0]!)),
      'never the code itself',
    );

    // A second machine cannot take the seat either: the activation was never freed.
    const thief = createAirgapRequest({ product: PRODUCT, hardwareId: 'THIEF-SITE', now: t.clock.now() });
    assert.equal((await airgapPost('/airgap/activate', { license_key: key, request_code: thief.code })).status, 409);
    // Only the device's own code frees it (once the per-license attempts of the forgeries have lapsed).
    t.clock.advance(16 * 60_000);
    const own = createDeactivationCode({ hardwareHash: victim.request.hardwareHash, secret: victim.secret });
    assert.equal(
      (await airgapPost('/airgap/deactivate', { license_key: key, deactivation_code: own.code })).status,
      200,
    );
    assert.equal(await seats(t, licenseId), 0);
  });

  it('cannot replace an active air-gap activation with a request code of its own for the same machine', async () => {
    const key = 'ATKB-ATKB-ATKB-ATKB-ATKB-ATKB-ATKB';
    const licenseId = await addLicense(key, { airgapped: true, maxActivations: 2 });
    const victim = createAirgapRequest({ product: PRODUCT, hardwareId: 'VICTIM-2', now: t.clock.now() });
    assert.equal((await airgapPost('/airgap/activate', { license_key: key, request_code: victim.code })).status, 200);
    // The hardware hash is in the (visible) request code: the attacker makes a request of its own for it.
    const mine = createAirgapRequest({ product: PRODUCT, hardwareId: 'VICTIM-2', now: t.clock.now() });
    assert.equal(mine.request.hardwareHash, victim.request.hardwareHash);
    const res = await airgapPost('/airgap/activate', { license_key: key, request_code: mine.code });
    assert.equal(res.status, 409);
    const own = createDeactivationCode({ hardwareHash: mine.request.hardwareHash, secret: mine.secret });
    assert.equal(
      (await airgapPost('/airgap/deactivate', { license_key: key, deactivation_code: own.code })).status,
      403,
      "its own secret proves nothing about the victim's activation",
    );
    assert.equal(await seats(t, licenseId), 1);
  });

  it('a used offline request after deactivation, reset or blacklisting: a clear refusal, never a license file; download links stop too', async () => {
    const key = 'ATKC-ATKC-ATKC-ATKC-ATKC-ATKC-ATKC';
    const licenseId = await addLicense(key, { allowOffline: true, maxActivations: 3 });
    const admin = (await adminAgent(t)).agent;
    const ended: Record<string, () => Promise<void>> = {};
    const devices = ['DEACTIVATED', 'RESET', 'BLACKLISTED'].map((name) => makeDevice(`HW-${name}`));
    const pages: string[] = [];
    const requests = devices.map((d) => d.activationRequest({ product: PRODUCT, licenseKey: key }));
    for (const r of requests) {
      const res = await upload(agent, r.text);
      assert.equal(res.status, 200);
      pages.push(res.text);
    }
    const rows = await t.db('devices').where({ license_id: licenseId }).orderBy('id').select('id', 'hardware_id');
    const idOf = (hw: string) => Number(rows.find((r: { hardware_id: string }) => r.hardware_id === hw).id);
    ended.deactivated = async () => {
      const d = devices[0]!.deactivationRequest({
        product: PRODUCT,
        licenseId,
        activationId: idOf('HW-DEACTIVATED'),
        requestNonce: requests[0]!.nonce,
      });
      assert.equal((await upload(agent, d.text)).status, 200);
    };
    const adminPost = async (url: string) => {
      const page = await admin.get(`/admin/licenses/${licenseId}`);
      assert.ok(
        [303, 200].includes(
          (
            await admin
              .post(url)
              .type('form')
              .send({ _csrf: csrfFrom(page.text), confirmed: '1' })
          ).status,
        ),
      );
    };
    ended.reset = () => adminPost(`/admin/licenses/${licenseId}/devices/${idOf('HW-RESET')}/reset`);
    ended.blacklisted = () => adminPost(`/admin/licenses/${licenseId}/devices/${idOf('HW-BLACKLISTED')}/blacklist`);
    for (const end of Object.values(ended)) await end();
    assert.equal(await seats(t, licenseId), 0);

    for (const [i, r] of requests.entries()) {
      const again = await upload(agent, r.text);
      assert.equal(again.status, 410, `request ${i}: ${again.status}`);
      assert.doesNotMatch(again.text, /offline\/download\//, 'no download link');
      assert.match(again.text, /already used and its activation has ended/);
      const link = await download(agent, pages[i]!);
      assert.equal(link.status, 410, `the old page's link (${i})`);
      assert.doesNotMatch(link.body.toString('utf8'), /BEGIN PORTICO LICENSE/);
      assert.match(link.body.toString('utf8'), /activation has ended/);
    }
    assert.equal(await seats(t, licenseId), 0, 'nothing was taken again');
    assert.equal((await refusals(t, 'activation.refused', 'activation_inactive')).length, 3);
  });

  it('editing a request breaks its signature; re-signing it with another key proves nothing — each refusal audited', async () => {
    const key = 'ATKD-ATKD-ATKD-ATKD-ATKD-ATKD-ATKD';
    const licenseId = await addLicense(key, { allowOffline: true, maxActivations: 2 });
    const victim = makeDevice('HW-VICTIM');
    const req = victim.activationRequest({ product: PRODUCT, licenseKey: key });
    assert.equal((await upload(agent, req.text)).status, 200);
    const activationId = Number((await t.db('devices').where({ license_id: licenseId }).first('id')).id);

    // 1. Edit the payload, keep the signature.
    const decoded = decodeEnvelope(req.text);
    const payload = JSON.parse(decoded.payloadBytes.toString('utf8'));
    const edited = encodeEnvelope({
      ...decoded,
      payloadBytes: Buffer.from(JSON.stringify({ ...payload, hardwareId: 'HW-OTHER' })),
    });
    const e1 = await upload(agent, edited);
    assert.equal(e1.status, 400);
    // 2. A request whose type is not a request (a license file).
    const e2 = await upload(agent, signEnvelope('license', 'device', payload, victim.privateKey));
    assert.equal(e2.status, 400);
    // 3. A deactivation of the victim's activation, signed with the attacker's key (it knows ids and nonce from the page and the file).
    const attacker = makeDevice('HW-VICTIM');
    const forged = attacker.deactivationRequest({ product: PRODUCT, licenseId, activationId, requestNonce: req.nonce });
    const e3 = await upload(agent, forged.text);
    assert.equal(e3.status, 403);
    // 4. An activation for the victim's machine signed with the attacker's key: the machine is taken.
    const e4 = await upload(agent, attacker.activationRequest({ product: PRODUCT, licenseKey: key }).text);
    assert.equal(e4.status, 409);
    assert.equal(await seats(t, licenseId), 1);
    const after = await t
      .db('audit_events')
      .whereIn('action', ['activation.refused', 'deactivation.refused'])
      .select('after_state');
    const codes = after.map((r: { after_state: string }) => JSON.parse(r.after_state).code);
    for (const code of ['signature', 'wrong_type', 'deactivation_forged', 'already_active_other_key'])
      assert.ok(codes.includes(code), `${code} audited (${codes.join(', ')})`);
  });

  it('an offline request naming an active air-gap machine gets no license file (nothing is signed with an empty device key)', async () => {
    const key = 'ATKE-ATKE-ATKE-ATKE-ATKE-ATKE-ATKE';
    const licenseId = await addLicense(key, { airgapped: true, allowOffline: true, maxActivations: 2 });
    const site = createAirgapRequest({ product: PRODUCT, hardwareId: 'AG-SITE', now: t.clock.now() });
    assert.equal((await airgapPost('/airgap/activate', { license_key: key, request_code: site.code })).status, 200);
    const hijack = makeDevice(`ag-${hardwareHash('AG-SITE')}`).activationRequest({ product: PRODUCT, licenseKey: key });
    const res = await upload(agent, hijack.text);
    assert.equal(res.status, 403);
    assert.match(res.text, /only be activated on the Air-Gapped Activation Portal/);
    assert.doesNotMatch(res.text, /offline\/download\//);
    assert.equal(await seats(t, licenseId), 1);
  });

  it('a flood of refusals from one address cannot fill the audit table', async () => {
    const before = await countRows(t.db, 'audit_events');
    const flood = request.agent(t.app);
    const junk = makeDevice('HW-FLOOD');
    const total = REFUSAL_AUDIT_PER_CLIENT.limit + 20;
    for (let i = 0; i < total; i++) {
      const res = await upload(
        flood.set('X-Forwarded-For', '192.0.2.99') as Agent,
        junk.activationRequest({ product: 'no-such-product', licenseKey: 'NONE' }).text,
      );
      assert.ok([404, 422, 429].includes(res.status), `HTTP ${res.status}`);
    }
    const written = (await countRows(t.db, 'audit_events')) - before;
    assert.ok(written <= REFUSAL_AUDIT_PER_CLIENT.limit + 1, `${written} audit events for ${total} refusals`);
    assert.equal(await countRows(t.db, 'audit_events', { action: 'security.refusals_throttled' }), 1);
  });
});
