import assert from 'node:assert/strict';
import request from 'supertest';
import { buildTestApp, countRows, csrfFrom, type TestApp } from '../helpers/app.ts';
import { range, tally } from '../helpers/concurrency.ts';
import * as catalog from '../../app/models/catalog.ts';
import { REDEEM_PER_CLIENT } from '../../app/services/vouchers.ts';
import { newCodes } from '../helpers/vouchers.ts';
import { AIRGAP_PER_LICENSE_AND_CLIENT } from '../../app/controllers/airgap.ts';
import { createAirgapRequest, createDeactivationCode, verifyActivationCode } from '../../sdk/src/airgap.ts';
import { trustedKeyMap } from '../../app/services/signer.ts';
import { CODE_ALPHABET } from '../../sdk/src/codes.ts';

type Agent = ReturnType<typeof request.agent>;

const codeOn = (html: string, id: string) => new RegExp(`id="${id}"[^>]*>([^<]+)<`).exec(html)![1]!.trim();

/**
 * Redeemable codes on the Air-Gapped Activation Portal (docs/airgap-portal.md, "Redeeming a code"):
 * the license key field takes a code, THE redemption (channel `airgap`) makes it a license and the
 * activation service activates it with the request's commitment. Real HTTP, real database.
 */
describe('Air-Gapped Activation Portal: redeeming a code', function () {
  this.timeout(120_000);
  let t: TestApp;
  let agent: Agent;
  let orderId: number;
  let airgapPolicy: number;
  let onlinePolicy: number;
  let userPolicy: number;
  let otherProductPolicy: number;
  let ipCounter = 0;
  /** A client address of its own per attempt (the limits are tested on their own). */
  const nextIp = () => `10.66.${(ipCounter >> 8) & 255}.${ipCounter++ & 255}`;

  before(async () => {
    t = await buildTestApp({ trustProxy: true, logLevel: 'warn' });
    agent = request.agent(t.app);
    const now = t.clock.now();
    const plant = await catalog.insertProduct(
      t.db,
      { name: 'Plant Control', code: 'plant', authorizationMethod: 'key' },
      now,
    );
    const other = await catalog.insertProduct(
      t.db,
      { name: 'Plant Other', code: 'other', authorizationMethod: 'key' },
      now,
    );
    const team = await catalog.insertProduct(
      t.db,
      { name: 'Plant Team', code: 'team', authorizationMethod: 'user' },
      now,
    );
    const airgapped = { ...catalog.DEFAULT_ENTITLEMENTS, airgapped: true, maxActivations: 1, maxTransfers: 0 };
    airgapPolicy = await catalog.insertPolicy(
      t.db,
      { productId: plant, name: 'Isolated', isDefault: true, entitlements: airgapped },
      now,
    );
    onlinePolicy = await catalog.insertPolicy(
      t.db,
      { productId: plant, name: 'Connected', isDefault: false, entitlements: catalog.DEFAULT_ENTITLEMENTS },
      now,
    );
    userPolicy = await catalog.insertPolicy(
      t.db,
      { productId: team, name: 'Team isolated', isDefault: true, entitlements: airgapped },
      now,
    );
    otherProductPolicy = await catalog.insertPolicy(
      t.db,
      { productId: other, name: 'Other isolated', isDefault: true, entitlements: airgapped },
      now,
    );
    const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Globex' }, now);
    orderId = await catalog.insertOrder(t.db, { orderRef: 'AGV-1', customerId: customer }, now);
  });
  after(async () => t.close());

  /** New codes of a policy, made by the one generating service (an admin: no quota). */
  const codes = (count: number, policyId = airgapPolicy) => newCodes(t, orderId, policyId, count);
  const voucherRow = (code: string) =>
    t
      .db('vouchers')
      .where({ hint: code.replace(/-/g, '').slice(-4) })
      .orderBy('id', 'desc')
      .first();
  const newRequest = (hardwareId: string, product = 'plant') =>
    createAirgapRequest({ product, hardwareId, now: t.clock.now() });
  const post = async (url: string, fields: Record<string, string>, ip = nextIp()) => {
    const page = await agent.get('/airgap');
    return agent
      .post(url)
      .set('X-Forwarded-For', ip)
      .type('form')
      .send({ _csrf: csrfFrom(page.text), ...fields });
  };
  const redeem = (code: string, requestCode: string, ip?: string) =>
    post('/airgap/activate', { license_key: code, request_code: requestCode }, ip);
  const refusals = async () =>
    (await t.db('audit_events').where({ action: 'voucher.refused' }).orderBy('id').select('after_state')).map(
      (r: { after_state: string }) => JSON.parse(r.after_state) as { code: string; channel: string },
    );

  it('the form says the field takes a license key or a redeemable code', async () => {
    const page = await agent.get('/airgap').expect(200);
    assert.match(page.text, /<label for="field-license_key">License key or redeemable code<\/label>/);
    assert.match(page.text, /aria-describedby="field-license_key-hint"/);
  });

  it('a code becomes a license activated on the machine: the page shows the new key, the activation code verifies against it; the same request code again answers the same; another machine gets voucher_used', async () => {
    const [code] = await codes(1);
    const licensesBefore = await countRows(t.db, 'licenses', { order_id: orderId });
    const { code: requestCode, request: req } = newRequest('SITE-REDEEM-1');
    const res = await redeem(code!.toLowerCase().replace(/-/g, ' '), requestCode);
    assert.equal(res.status, 200, res.text.slice(0, 800));
    assert.equal(res.headers['cache-control'], 'no-store');

    const shownKey = codeOn(res.text, 'new-license-key');
    assert.match(res.text, /Your new license key/);
    assert.match(res.text, /data-copy="new-license-key"/, 'a copy button for the key');
    const activationCode = codeOn(res.text, 'activation-code');
    const trustedKeys = await trustedKeyMap(t.db);
    verifyActivationCode(activationCode, { trustedKeys, request: req, licenseKey: shownKey });
    assert.throws(
      () =>
        verifyActivationCode(activationCode, {
          trustedKeys,
          request: req,
          licenseKey: 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA',
        }),
      'the code is signed for the new key only',
    );

    const v = await voucherRow(code!);
    assert.ok(v.redeemed_at);
    assert.equal(v.redeemed_channel, 'airgap');
    assert.equal(v.redeemed_by_account_id, null, 'the air-gap portal is anonymous');
    const license = await t.db('licenses').where({ id: v.license_id }).first();
    assert.equal(license.license_key, shownKey);
    assert.equal(Number(license.order_id), orderId);
    assert.equal(Number(license.policy_id), airgapPolicy);
    assert.equal(license.times_activated, 1, 'one seat');
    assert.equal(await countRows(t.db, 'licenses', { order_id: orderId }), licensesBefore + 1);
    const devices = await t.db('devices').where({ license_id: v.license_id });
    assert.equal(devices.length, 1);
    assert.equal(devices[0].channel, 'airgap');
    assert.equal(devices[0].airgap_commitment, req.commitment, 'the commitment is stored with the device');
    const redeemed = await t.db('audit_events').where({ action: 'voucher.redeemed', object_id: String(v.id) });
    assert.equal(redeemed.length, 1);
    assert.equal(JSON.parse(redeemed[0].after_state).channel, 'airgap');
    assert.equal(
      await countRows(t.db, 'audit_events', { action: 'activation.granted', object_id: String(v.license_id) }),
      1,
    );
    const trail =
      JSON.stringify(await t.db('audit_events').select()) + JSON.stringify(await t.db('rate_limits').select());
    assert.ok(!trail.includes(code!.replace(/-/g, '')) && !trail.includes(code!), 'the code is stored nowhere');

    // The same request code with the same code: the same answer, nothing redeemed or taken again.
    const again = await redeem(code!, requestCode);
    assert.equal(again.status, 200, again.text.slice(0, 500));
    assert.equal(codeOn(again.text, 'activation-code'), activationCode);
    assert.equal(codeOn(again.text, 'new-license-key'), shownKey);
    assert.equal((await t.db('licenses').where({ id: v.license_id }).first()).times_activated, 1);
    assert.equal(await countRows(t.db, 'licenses', { order_id: orderId }), licensesBefore + 1);
    assert.equal(await countRows(t.db, 'audit_events', { action: 'voucher.redeemed', object_id: String(v.id) }), 1);

    // Another machine's request code with the used code.
    const before = (await refusals()).length;
    const thief = await redeem(code!, newRequest('SITE-REDEEM-2').code);
    assert.equal(thief.status, 409);
    assert.match(thief.text, /This code has been redeemed already/);
    assert.doesNotMatch(thief.text, new RegExp(shownKey));
    assert.deepEqual(
      (await refusals()).slice(before).map((r) => `${r.code} ${r.channel}`),
      ['voucher_used airgap'],
    );

    // The same request code with another, open code: refused, and that code is not spent.
    const [fresh] = await codes(1);
    const mixed = await redeem(fresh!, requestCode);
    assert.equal(mixed.status, 409);
    assert.match(mixed.text, /answered already/);
    assert.doesNotMatch(mixed.text, new RegExp(shownKey), 'never another license’s key');
    assert.equal((await voucherRow(fresh!)).redeemed_at, null, 'the other code stays unspent');

    // The request code with the key the portal showed: the same answer as a key holder gets.
    const byKey = await post('/airgap/activate', { license_key: shownKey, request_code: requestCode });
    assert.equal(byKey.status, 200);
    assert.equal(codeOn(byKey.text, 'activation-code'), activationCode);
  });

  it('a request code answered with a license key is not answered with another key (its key is never shown)', async () => {
    const [code] = await codes(1);
    const { code: requestCode } = newRequest('SITE-KEY-ONLY');
    const first = await redeem(code!, requestCode);
    assert.equal(first.status, 200);
    const key = codeOn(first.text, 'new-license-key');
    const [otherCode] = await codes(1);
    const other = await redeem(otherCode!, newRequest('SITE-KEY-OTHER').code);
    const otherKey = codeOn(other.text, 'new-license-key');
    const wrong = await post('/airgap/activate', { license_key: otherKey, request_code: requestCode });
    assert.equal(wrong.status, 409);
    assert.doesNotMatch(wrong.text, new RegExp(key));
  });

  it('after the machine gives the activation back, the same request code and code answer activation_inactive', async () => {
    const [code] = await codes(1);
    const { code: requestCode, request: req, secret } = newRequest('SITE-GIVE-BACK');
    const res = await redeem(code!, requestCode);
    assert.equal(res.status, 200);
    const key = codeOn(res.text, 'new-license-key');
    const { code: deactivationCode } = createDeactivationCode({ hardwareHash: req.hardwareHash, secret });
    const done = await post('/airgap/deactivate', { license_key: key, deactivation_code: deactivationCode });
    assert.equal(done.status, 200);
    const again = await redeem(code!, requestCode);
    assert.equal(again.status, 410);
    assert.match(again.text, /activation has ended/);
  });

  it('refuses used, voided, expired, unknown, non-air-gapped, user-based and other-product codes, each audited as voucher.refused (airgap), and never spends the code', async () => {
    const [voided, expired] = await codes(2);
    await t
      .db('vouchers')
      .where({ id: (await voucherRow(voided!)).id })
      .update({ voided_at: t.clock.now() });
    await t
      .db('vouchers')
      .where({ id: (await voucherRow(expired!)).id })
      .update({ expires_at: new Date(t.clock.now().getTime() - 1000) });
    const [online] = await codes(1, onlinePolicy);
    const [team] = await codes(1, userPolicy);
    const [otherProduct] = await codes(1, otherProductPolicy);
    const licensesBefore = await countRows(t.db, 'licenses');
    const devicesBefore = await countRows(t.db, 'devices');
    const before = (await refusals()).length;
    const cases: Array<[string, string, number, RegExp, string]> = [
      [voided!, 'plant', 410, /This code has been withdrawn/, 'voucher_voided'],
      [expired!, 'plant', 410, /This code has expired/, 'voucher_expired'],
      ['ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ', 'plant', 422, /This code is not valid/, 'voucher_unknown'],
      [online!, 'plant', 403, /not an air-gapped license/, 'airgap_required'],
      [team!, 'team', 401, /licensed to named users/, 'user_credentials'],
      [otherProduct!, 'plant', 409, /for another product/, 'voucher_other_product'],
    ];
    for (const [code, product, status, text, refusal] of cases) {
      const res = await redeem(code, newRequest(`SITE-REFUSED-${refusal}`, product).code);
      assert.equal(res.status, status, `${refusal}: ${res.text.slice(0, 300)}`);
      assert.match(res.text, text, refusal);
      assert.match(res.text, /role="alert"/);
    }
    assert.deepEqual(
      (await refusals()).slice(before).map((r) => `${r.code} ${r.channel}`),
      cases.map((c) => `${c[4]} airgap`),
    );
    for (const code of [online!, team!, otherProduct!])
      assert.equal((await voucherRow(code)).redeemed_at, null, 'a refused code stays unspent');
    assert.equal(await countRows(t.db, 'licenses'), licensesBefore, 'no license issued');
    assert.equal(await countRows(t.db, 'devices'), devicesBefore, 'no device');
    const trail = JSON.stringify(await t.db('audit_events').where({ action: 'voucher.refused' }).select());
    for (const [code] of cases) assert.ok(!trail.includes(code.replace(/-/g, '')), 'never the code');

    // The code that was refused for the other product redeems for its own.
    const own = await redeem(otherProduct!, newRequest('SITE-OWN-PRODUCT', 'other').code);
    assert.equal(own.status, 200, own.text.slice(0, 300));
  });

  it('a typo in the request code is reported first: nothing counted, audited or spent', async () => {
    const [code] = await codes(1);
    const { code: requestCode } = newRequest('SITE-TYPO');
    const typo = `${requestCode.slice(0, 3)}${requestCode[3] === 'A' ? 'B' : 'A'}${requestCode.slice(4)}`;
    const auditsBefore = await countRows(t.db, 'audit_events');
    const limitsBefore = await countRows(t.db, 'rate_limits');
    for (const key of [code!, 'ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ']) {
      const res = await redeem(key, typo);
      assert.equal(res.status, 422);
      assert.match(res.text, /Group 1 of this code looks mistyped/);
    }
    assert.equal(await countRows(t.db, 'audit_events'), auditsBefore, 'nothing audited');
    assert.equal(await countRows(t.db, 'rate_limits'), limitsBefore, 'nothing counted');
    assert.equal((await voucherRow(code!)).redeemed_at, null);
    assert.equal((await redeem(code!, requestCode)).status, 200, 'the code typed right redeems');
  });

  it('the per-client redemption allowance applies (429 before any work)', async () => {
    const statuses: number[] = [];
    for (const i of range(REDEEM_PER_CLIENT.limit + 1)) {
      const unknown = `ZZZZZ-ZZZZZ-ZZZZZ-ZZZ${CODE_ALPHABET[i >> 5]}${CODE_ALPHABET[i & 31]}`;
      statuses.push((await redeem(unknown, newRequest(`SITE-LIMIT-${i}`).code, '10.67.0.1')).status);
    }
    assert.deepEqual(tally(statuses), { 422: REDEEM_PER_CLIENT.limit, 429: 1 });
  });

  it('the air-gap attempt limits apply too: one code from one address (429 past the per-key limit)', async () => {
    const statuses: number[] = [];
    for (const i of range(AIRGAP_PER_LICENSE_AND_CLIENT.limit + 1))
      statuses.push((await redeem('YYYYY-YYYYY-YYYYY-YYYYY', newRequest(`SITE-AGL-${i}`).code, '10.68.0.1')).status);
    assert.deepEqual(tally(statuses), { 422: AIRGAP_PER_LICENSE_AND_CLIENT.limit, 429: 1 });
  });
});
