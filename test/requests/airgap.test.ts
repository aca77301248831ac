import assert from 'node:assert/strict';
import request from 'supertest';
import { decodeQrPng } from '../helpers/qr.ts';
import { buildTestApp, auditOf, countRows, csrfFrom, type TestApp } from '../helpers/app.ts';
import * as catalog from '../../app/models/catalog.ts';
import { createAirgapRequest, createDeactivationCode, verifyActivationCode, verifyConfirmationCode } from '../../sdk/src/airgap.ts';
import { trustedKeyMap } from '../../app/crypto/envelopes.ts';

type Agent = ReturnType<typeof request.agent>;

async function post(agent: Agent, url: string, fields: Record<string, string>) {
  const page = await agent.get('/airgap');
  return agent.post(url).type('form').send({ _csrf: csrfFrom(page.text), ...fields });
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
    product = await catalog.insertProduct(t.db, { name: 'Plant Control', code: 'plant', authorizationMethod: 'key' }, now);
    const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Globex' }, now);
    const order = await catalog.insertOrder(t.db, { orderRef: 'AG-1', customerId: customer }, now);
    licenseId = await catalog.insertLicense(t.db, { orderId: order, productId: product, policyId: null, licenseKey: key, entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, airgapped: true, allowOffline: true, maxActivations: 1, maxTransfers: 0 }, startDate: now }, now);
    await catalog.insertLicense(t.db, { orderId: order, productId: product, policyId: null, licenseKey: 'NQTA-GAPP-GAPP-GAPP-GAPP-GAPP-GAPP', entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, allowOffline: true }, startDate: now }, now);
  });
  after(async () => t.close());

  it('the page opens with the request code filled in from the QR code URL', async () => {
    const { code } = createAirgapRequest({ product: 'plant', hardwareId: 'SITE-A', now: t.clock.now() });
    const page = await agent.get(`/airgap?code=${encodeURIComponent(code)}`).expect(200);
    assert.ok(page.text.includes(`value="${code}"`));
    assert.match(page.text, /<label for="field-license_key">/);
  });

  it('activation: request code → activation code the SDK verifies; deactivation code → seat freed → confirmation the SDK accepts', async () => {
    const { code, request: req } = createAirgapRequest({ product: 'plant', hardwareId: 'SITE-A', now: t.clock.now() });
    const res = await post(agent, '/airgap/activate', { license_key: key.toLowerCase(), request_code: code.toLowerCase() });
    assert.equal(res.status, 200, res.text.slice(0, 500));
    const activationCode = codeOn(res.text, 'activation-code');
    assert.ok(activationCode.replace(/-/g, '').length <= 145, `activation code length ${activationCode.length}`);
    assert.equal(qrOn(res.text), activationCode, 'the QR code decodes to the same code');
    const verified = verifyActivationCode(activationCode, { trustedKeys: await trustedKeyMap(t.db), request: req, licenseKey: key });
    const device = await t.db('devices').where({ license_id: licenseId }).first();
    assert.equal(verified.activationId, device.id);
    assert.equal(device.channel, 'airgap');
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 1);

    const again = await post(agent, '/airgap/activate', { license_key: key, request_code: code });
    assert.equal(again.status, 409);
    assert.match(again.text, /already been used/);

    const { code: deactivationCode, nonce } = createDeactivationCode({ activationId: verified.activationId, secret: verified.secret });
    const done = await post(agent, '/airgap/deactivate', { license_key: key, deactivation_code: deactivationCode });
    assert.equal(done.status, 200);
    const confirmation = codeOn(done.text, 'confirmation-code');
    assert.ok(verifyConfirmationCode(confirmation, { secret: verified.secret, activationId: verified.activationId, nonce }));
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 0);
    assert.ok((await auditOf(t.db, 'license', licenseId)).some((e) => e.action === 'activation.granted'));
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
    assert.equal(await countRows(t.db, 'audit_events'), before, 'typos are neither audited nor counted');
  });

  it('refusals: not air-gapped, expired code, unknown product; a deactivation code made without the secret frees nothing', async () => {
    const other = createAirgapRequest({ product: 'plant', hardwareId: 'SITE-C', now: t.clock.now() });
    const notAirgapped = await post(agent, '/airgap/activate', { license_key: 'NQTA-GAPP-GAPP-GAPP-GAPP-GAPP-GAPP', request_code: other.code });
    assert.equal(notAirgapped.status, 403);
    assert.match(notAirgapped.text, /not an air-gapped license/);
    const old = createAirgapRequest({ product: 'plant', hardwareId: 'SITE-D', now: new Date(t.clock.now().getTime() - 3 * 3600_000) });
    const expired = await post(agent, '/airgap/activate', { license_key: key, request_code: old.code });
    assert.equal(expired.status, 422);
    assert.match(expired.text, /has expired/);
    const unknown = createAirgapRequest({ product: 'other-vendor', hardwareId: 'SITE-E', now: t.clock.now() });
    assert.match((await post(agent, '/airgap/activate', { license_key: key, request_code: unknown.code })).text, /another vendor/);

    const fresh = createAirgapRequest({ product: 'plant', hardwareId: 'SITE-F', now: t.clock.now() });
    const ok = await post(agent, '/airgap/activate', { license_key: key, request_code: fresh.code });
    assert.equal(ok.status, 200);
    const verified = verifyActivationCode(codeOn(ok.text, 'activation-code'), { trustedKeys: await trustedKeyMap(t.db), request: fresh.request, licenseKey: key });
    const forged = createDeactivationCode({ activationId: verified.activationId, secret: Buffer.alloc(16, 7) });
    const refused = await post(agent, '/airgap/deactivate', { license_key: key, deactivation_code: forged.code });
    assert.equal(refused.status, 403);
    assert.match(refused.text, /not made by the device/);
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 1);
    assert.ok(await t.db('audit_events').where({ action: 'deactivation.refused' }).first());
  });

  it('brute force on deactivation codes runs into the per-license rate limit (429)', async () => {
    const device = await t.db('devices').where({ license_id: licenseId }).whereNull('deactivated_at').first();
    let status = 0;
    for (let n = 0; n < 12 && status !== 429; n++) {
      const guess = createDeactivationCode({ activationId: Number(device.id), secret: Buffer.alloc(16, n) });
      status = (await post(request.agent(t.app), '/airgap/deactivate', { license_key: key, deactivation_code: guess.code })).status;
    }
    assert.equal(status, 429);
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 1);
  });
});
