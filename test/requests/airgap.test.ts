import assert from 'node:assert/strict';
import { bumpGeneration } from '../../app/lib/generation-cache.ts';
import request from 'supertest';
import { decodeQrPng } from '../helpers/qr.ts';
import { buildTestApp, adminAgent, auditOf, countRows, csrfFrom, type TestApp } from '../helpers/app.ts';
import * as catalog from '../../app/models/catalog.ts';
import crypto from 'node:crypto';
import {
  createAirgapRequest,
  createDeactivationCode,
  createLegacyDeactivationCode,
  legacyAirgapSecret,
  verifyActivationCode,
  verifyConfirmationCode,
  verifyLegacyConfirmationCode,
} from '../../sdk/src/airgap.ts';
import { encodeCode } from '../../sdk/src/codes.ts';
import { trustedKeyMap } from '../../app/services/signer.ts';

type Agent = ReturnType<typeof request.agent>;

async function post(agent: Agent, url: string, fields: Record<string, string>) {
  const page = await agent.get('/airgap');
  return agent
    .post(url)
    .type('form')
    .send({ _csrf: csrfFrom(page.text), ...fields });
}

const codeOn = (html: string, id: string) => new RegExp(`id="${id}"[^>]*>([^<]+)<`).exec(html)![1]!.trim();

/** Decodes the QR image (a PNG data URL) of a page with a registry QR reader. */
function qrOn(html: string): string {
  return decodeQrPng(/<img src="(data:image\/png;base64,[^"]+)"/.exec(html)![1]!)!;
}

describe('Air-Gapped Activation Portal', function () {
  this.timeout(60_000);
  let t: TestApp;
  let agent: Agent;
  const key = 'GAPP-GAPP-GAPP-GAPP-GAPP-GAPP-GAPP';
  let licenseId: number;
  let product: number;

  before(async () => {
    t = await buildTestApp();
    agent = request.agent(t.app);
    const now = t.clock.now();
    product = await catalog.insertProduct(
      t.db,
      { name: 'Plant Control', code: 'plant', authorizationMethod: 'key' },
      now,
    );
    const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Globex' }, now);
    const order = await catalog.insertOrder(t.db, { orderRef: 'AG-1', customerId: customer }, now);
    licenseId = await catalog.insertLicense(
      t.db,
      {
        orderId: order,
        productId: product,
        policyId: null,
        licenseKey: key,
        entitlements: {
          ...catalog.DEFAULT_ENTITLEMENTS,
          airgapped: true,
          allowOffline: true,
          maxActivations: 1,
          maxTransfers: 0,
        },
        startDate: now,
      },
      now,
    );
    await catalog.insertLicense(
      t.db,
      {
        orderId: order,
        productId: product,
        policyId: null,
        licenseKey: 'NQTA-GAPP-GAPP-GAPP-GAPP-GAPP-GAPP',
        entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, allowOffline: true },
        startDate: now,
      },
      now,
    );
  });
  after(async () => t.close());

  it('the page opens with the request code filled in from the QR code URL', async () => {
    const { code } = createAirgapRequest({ product: 'plant', hardwareId: 'SITE-A', now: t.clock.now() });
    const page = await agent.get(`/airgap?code=${encodeURIComponent(code)}`).expect(200);
    assert.ok(page.text.includes(`value="${code}"`));
    assert.match(page.text, /<label for="field-license_key">/);
  });

  it('activation: request code → activation code the SDK verifies; deactivation code → seat freed → confirmation the SDK accepts', async () => {
    const {
      code,
      request: req,
      secret,
    } = createAirgapRequest({ product: 'plant', hardwareId: 'SITE-A', now: t.clock.now() });
    const res = await post(agent, '/airgap/activate', {
      license_key: key.toLowerCase(),
      request_code: code.toLowerCase(),
    });
    assert.equal(res.status, 200, res.text.slice(0, 500));
    const activationCode = codeOn(res.text, 'activation-code');
    assert.ok(activationCode.replace(/-/g, '').length <= 140, `activation code length ${activationCode.length}`);
    assert.equal(qrOn(res.text), activationCode, 'the QR code decodes to the same code');
    verifyActivationCode(activationCode, { trustedKeys: await trustedKeyMap(t.db), request: req, licenseKey: key });
    const device = await t.db('devices').where({ license_id: licenseId }).first();
    assert.equal(device.channel, 'airgap');
    assert.equal(device.airgap_commitment, req.commitment, 'the commitment is stored with the device');
    assert.equal(device.airgap_secret, null, 'no secret the server could leak');
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 1);

    const again = await post(agent, '/airgap/activate', { license_key: key, request_code: code });
    assert.equal(again.status, 200, 'the same request code answers with the same activation code');
    assert.equal(codeOn(again.text, 'activation-code'), activationCode);
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 1);

    const { code: deactivationCode } = createDeactivationCode({ hardwareHash: req.hardwareHash, secret });
    const done = await post(agent, '/airgap/deactivate', { license_key: key, deactivation_code: deactivationCode });
    assert.equal(done.status, 200, done.text.slice(0, 300));
    const confirmation = codeOn(done.text, 'confirmation-code');
    assert.ok(verifyConfirmationCode(confirmation, { secret, hardwareHash: req.hardwareHash }));
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 0);
    const replay = await post(agent, '/airgap/deactivate', { license_key: key, deactivation_code: deactivationCode });
    assert.equal(
      replay.status,
      200,
      'a replayed deactivation code answers with the same confirmation and changes nothing',
    );
    assert.equal(codeOn(replay.text, 'confirmation-code'), confirmation);
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 0);
    assert.ok((await auditOf(t.db, 'license', licenseId)).some((e) => e.action === 'activation.granted'));

    const used = await post(agent, '/airgap/activate', { license_key: key, request_code: code });
    assert.equal(used.status, 410, 'the request of an ended activation never yields a code again');
    assert.match(used.text, /activation has ended/);
  });

  it('a request code of the first version (no commitment) is refused with what to do', async () => {
    const bytes = Buffer.alloc(16);
    bytes[0] = 0x10; // version 1 in the first 4 bits; the rest does not matter
    const res = await post(agent, '/airgap/activate', {
      license_key: key,
      request_code: encodeCode('request', bytes, 128),
    });
    assert.equal(res.status, 422);
    assert.match(res.text, /older version of the application/);
  });

  it('deactivation codes of version 1 activations are accepted only while the vendor allows it', async () => {
    const signature = crypto.randomBytes(64);
    const oldSecret = legacyAirgapSecret(signature);
    const at = t.clock.now();
    await t.db('licenses').where({ id: licenseId }).increment('times_activated', 1);
    const [deviceId] = await t.db('devices').insert({
      license_id: licenseId,
      hardware_id: 'ag-0123456789',
      active_hardware_id: 'ag-0123456789',
      channel: 'airgap',
      airgap_secret: oldSecret,
      activated_at: at,
      last_seen_at: at,
    });
    const legacy = createLegacyDeactivationCode({ activationId: Number(deviceId), secret: oldSecret });
    // The console says which activations cannot be proven, and lets the vendor decide.
    const admin = (await adminAgent(t)).agent;
    const settings = await admin.get('/admin/settings').expect(200);
    assert.match(settings.text, /1 such activation is active/);
    assert.match(
      settings.text,
      new RegExp(`href="/admin/licenses/${licenseId}">#${licenseId}</a></td>\\s*<td[^>]*><code>ag-0123456789</code>`),
    );
    assert.match(
      (await admin.get(`/admin/licenses/${licenseId}`).expect(200)).text,
      /Version 1 codes: deactivation not proven/,
    );
    await t.db('settings').insert({ key: 'accept_legacy_airgap_deactivation', value: 'false', updated_at: at });
    await bumpGeneration(t.db, at); // written past the models: tell the caches
    const refused = await post(agent, '/airgap/deactivate', { license_key: key, deactivation_code: legacy.code });
    assert.equal(refused.status, 403);
    assert.match(refused.text, /older air-gap activation/);
    assert.equal((await t.db('devices').where({ id: deviceId }).first()).deactivated_at, null);
    await t.db('settings').where({ key: 'accept_legacy_airgap_deactivation' }).update({ value: 'true' });
    await bumpGeneration(t.db, new Date()); // written past the models: tell the caches
    const accepted = await post(agent, '/airgap/deactivate', { license_key: key, deactivation_code: legacy.code });
    assert.equal(accepted.status, 200);
    assert.ok(
      verifyLegacyConfirmationCode(codeOn(accepted.text, 'confirmation-code'), {
        secret: oldSecret,
        activationId: Number(deviceId),
        nonce: legacy.nonce,
      }),
    );
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 0);
  });

  it('a typo names its group and never counts as an attempt; wrong codes do', async () => {
    const { code } = createAirgapRequest({ product: 'plant', hardwareId: 'SITE-B', now: t.clock.now() });
    const chars = code.split('');
    const i = chars.findIndex((c, n) => n > 7 && c !== '-');
    chars[i] = chars[i] === 'A' ? 'B' : 'A';
    const before = await countRows(t.db, 'audit_events');
    for (let n = 0; n < 15; n++) {
      const res = await post(agent, '/airgap/activate', { license_key: key, request_code: chars.join('') });
      assert.equal(res.status, 422);
      assert.match(res.text, /Group \d+ of this code looks mistyped/);
    }
    const missing = code.replace(/^(\w{5}-\w{5}-\w{2})\w/, '$1');
    const extra = code.replace(/^(\w{5}-\w{5}-\w{2})/, '$1Q');
    const alien = code.replace(/^(\w{5}-\w{5}-\w{2})\w/, '$1*');
    for (const typed of [missing, extra, alien]) {
      const res = await post(agent, '/airgap/activate', { license_key: key, request_code: typed });
      assert.equal(res.status, 422, typed);
      assert.match(res.text, /Group 3 of this code looks mistyped/, typed);
    }
    assert.equal(await countRows(t.db, 'audit_events'), before, 'typos are neither audited nor counted');
  });

  it('refusals: not air-gapped, expired code, unknown product; a deactivation code made without the secret frees nothing', async () => {
    await t.db('rate_limits').delete(); // the tests before spent this license's attempts
    const other = createAirgapRequest({ product: 'plant', hardwareId: 'SITE-C', now: t.clock.now() });
    const notAirgapped = await post(agent, '/airgap/activate', {
      license_key: 'NQTA-GAPP-GAPP-GAPP-GAPP-GAPP-GAPP',
      request_code: other.code,
    });
    assert.equal(notAirgapped.status, 403);
    assert.match(notAirgapped.text, /not an air-gapped license/);
    const old = createAirgapRequest({
      product: 'plant',
      hardwareId: 'SITE-D',
      now: new Date(t.clock.now().getTime() - 3 * 3600_000),
    });
    const expired = await post(agent, '/airgap/activate', { license_key: key, request_code: old.code });
    assert.equal(expired.status, 422);
    assert.match(expired.text, /has expired/);
    const unknown = createAirgapRequest({ product: 'other-vendor', hardwareId: 'SITE-E', now: t.clock.now() });
    assert.match(
      (await post(agent, '/airgap/activate', { license_key: key, request_code: unknown.code })).text,
      /another vendor/,
    );

    const fresh = createAirgapRequest({ product: 'plant', hardwareId: 'SITE-F', now: t.clock.now() });
    const ok = await post(agent, '/airgap/activate', { license_key: key, request_code: fresh.code });
    assert.equal(ok.status, 200);
    verifyActivationCode(codeOn(ok.text, 'activation-code'), {
      trustedKeys: await trustedKeyMap(t.db),
      request: fresh.request,
      licenseKey: key,
    });
    const forged = createDeactivationCode({ hardwareHash: fresh.request.hardwareHash, secret: Buffer.alloc(10, 7) });
    const refused = await post(agent, '/airgap/deactivate', { license_key: key, deactivation_code: forged.code });
    assert.equal(refused.status, 403);
    assert.match(refused.text, /not made by the device/);
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 1);
    assert.ok(await t.db('audit_events').where({ action: 'deactivation.refused' }).first());
  });

  it('brute force on deactivation codes from one client runs into the per-(license key, client) rate limit (429)', async () => {
    const device = await t.db('devices').where({ license_id: licenseId }).whereNull('deactivated_at').first();
    let status = 0;
    for (let n = 0; n < 12 && status !== 429; n++) {
      const guess = createDeactivationCode({
        hardwareHash: String(device.hardware_id).slice(3),
        secret: Buffer.alloc(10, n),
      });
      status = (
        await post(request.agent(t.app), '/airgap/deactivate', { license_key: key, deactivation_code: guess.code })
      ).status;
    }
    assert.equal(status, 429);
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 1);
  });
});
