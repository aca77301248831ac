import assert from 'node:assert/strict';
import request from 'supertest';
import { adminAgent, buildTestApp, auditOf, countRows, type TestApp } from '../helpers/app.ts';
import { makeDevice } from '../helpers/device.ts';
import * as catalog from '../../app/models/catalog.ts';

/** License API `POST /consume`: consumption features with a maximum per period, overage, and a nonce that counts once. */
describe('License API: consume', function () {
  this.timeout(60_000);
  let t: TestApp;
  let product: number;
  let order: number;
  let minutes: number;
  let exports: number;
  let n = 0;
  const api = (body: unknown) =>
    request(t.app)
      .post('/api/v1/consume')
      .set('Accept', 'application/json')
      .send(body as object);

  /** A license with `render` (consumption, the given rule) and `export` (activation), activated online by a new device. */
  async function licensed(rule: {
    max: number | null;
    period?: 'license' | 'month';
    overage?: boolean;
    cap?: number | null;
  }) {
    const key = Array(7).fill('ABCDEFGHJKMNPQRSTVWXYZ'[++n]!.repeat(4)).join('-');
    const now = t.clock.now();
    const licenseId = await catalog.insertLicense(
      t.db,
      {
        orderId: order,
        productId: product,
        policyId: null,
        licenseKey: key,
        entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, maxActivations: 3 },
        startDate: now,
      },
      now,
    );
    await t.db('license_features').insert({
      license_id: licenseId,
      feature_id: minutes,
      max_consumption: rule.max,
      consumption_period: rule.period ?? 'license',
      allow_overage: rule.overage ?? false,
      max_overage: rule.cap ?? null,
      total_consumption: 0,
    });
    await t
      .db('license_features')
      .insert({ license_id: licenseId, feature_id: exports, max_consumption: null, total_consumption: 0 });
    const device = makeDevice();
    const res = await request(t.app)
      .post('/api/v1/activate')
      .send({ request: device.activationRequest({ product: 'acme-cad', licenseKey: key }).text })
      .expect(200);
    const ref = { product: 'acme-cad', licenseId, activationId: Number(res.body.activationId) };
    return { licenseId, device, ref };
  }

  before(async () => {
    t = await buildTestApp();
    const now = t.clock.now();
    product = await catalog.insertProduct(
      t.db,
      { name: 'Acme CAD', code: 'acme-cad', authorizationMethod: 'key' },
      now,
    );
    minutes = await catalog.insertFeature(
      t.db,
      { productId: product, code: 'render', name: 'Render minutes', type: 'consumption' },
      now,
    );
    exports = await catalog.insertFeature(
      t.db,
      { productId: product, code: 'export', name: 'Export', type: 'activation' },
      now,
    );
    const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Globex' }, now);
    order = await catalog.insertOrder(t.db, { orderRef: 'CONS-1', customerId: customer }, now);
  });
  after(async () => t.close());

  it('records consumption up to the maximum and refuses past it with consumption_exceeded (audited, in the history)', async () => {
    const { licenseId, device, ref } = await licensed({ max: 100 });
    const first = await api({ request: device.consumptionRequest(ref, 'render', 60).text }).expect(200);
    assert.deepEqual(
      {
        used: first.body.used,
        max: first.body.max,
        period: first.body.period,
        overage: first.body.overage,
        repeated: first.body.repeated,
      },
      { used: 60, max: 100, period: 'all', overage: false, repeated: false },
    );
    assert.equal(
      (await api({ request: device.consumptionRequest(ref, 'render', 40).text }).expect(200)).body.used,
      100,
    );
    const refused = await api({ request: device.consumptionRequest(ref, 'render', 1).text }).expect(409);
    assert.equal(refused.body.error.code, 'consumption_exceeded');
    assert.equal(
      Number(
        (await t.db('license_features').where({ license_id: licenseId, feature_id: minutes }).first())
          .total_consumption,
      ),
      100,
    );
    const audit = (await auditOf(t.db, 'license', licenseId)).filter((e) => e.action === 'consumption.refused');
    assert.equal(audit.length, 1);
    assert.equal((audit[0]!.after as { code: string }).code, 'consumption_exceeded');
    assert.equal(
      await countRows(t.db, 'activation_history', { license_id: licenseId, event: 'consumption_refused' }),
      1,
    );
    // The license's usage page shows the same figures as its license page.
    const { agent } = await adminAgent(t);
    for (const page of [`/admin/licenses/${licenseId}`, `/admin/licenses/${licenseId}/usage`]) {
      const html = (await agent.get(page).expect(200)).text;
      const section = html.slice(html.indexOf('id="consumption-heading"'));
      assert.ok(html.includes('id="consumption-heading"'), `${page} shows consumption`);
      assert.match(section, /Render minutes[\s\S]*?"Used">100<\/td>\s*<td data-label="Maximum">100<\/td>/, page);
    }
  });

  it('a monthly maximum starts again each calendar month (UTC)', async () => {
    const { device, ref } = await licensed({ max: 10, period: 'month' });
    const month = t.clock.now().toISOString().slice(0, 7);
    const a = await api({ request: device.consumptionRequest(ref, 'render', 10).text }).expect(200);
    assert.equal(a.body.period, month);
    await api({ request: device.consumptionRequest(ref, 'render', 1).text }).expect(409);
    const now = t.clock.now();
    t.clock.advance(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1, 0, 0, 1) - now.getTime());
    const b = await api({ request: device.consumptionRequest(ref, 'render', 10).text }).expect(200);
    assert.notEqual(b.body.period, month);
    assert.equal(b.body.used, 10);
  });

  it('overage: allowed past the maximum up to the cap (marked as overage), refused past the cap; no cap means no refusal', async () => {
    const capped = await licensed({ max: 10, overage: true, cap: 5 });
    const over = await api({ request: capped.device.consumptionRequest(capped.ref, 'render', 15).text }).expect(200);
    assert.equal(over.body.overage, true);
    assert.equal(over.body.used, 15);
    const past = await api({ request: capped.device.consumptionRequest(capped.ref, 'render', 1).text }).expect(409);
    assert.equal(past.body.error.code, 'consumption_exceeded');
    const open = await licensed({ max: 10, overage: true, cap: null });
    assert.equal(
      (await api({ request: open.device.consumptionRequest(open.ref, 'render', 1_000_000).text }).expect(200)).body
        .used,
      1_000_000,
    );
  });

  it('a repeated nonce returns the stored answer and never counts twice, even after the maximum was reached', async () => {
    const { licenseId, device, ref } = await licensed({ max: 50 });
    const req = device.consumptionRequest(ref, 'render', 50);
    const first = await api({ request: req.text }).expect(200);
    const again = await api({ request: req.text }).expect(200);
    assert.equal(again.body.repeated, true);
    assert.equal(again.body.used, first.body.used);
    // The same nonce in a newly signed request (another amount): still the first answer.
    const resigned = await api({ request: device.consumptionRequest(ref, 'render', 7, req.nonce).text }).expect(200);
    assert.equal(resigned.body.repeated, true);
    assert.equal(resigned.body.amount, 50);
    assert.equal(await countRows(t.db, 'consumption_records', { license_id: licenseId }), 1);
    assert.equal(Number((await t.db('consumption_usage').where({ license_id: licenseId }).first()).used), 50);
  });

  it('two requests with one nonce at the same instant count once; two different ones near the maximum: only one fits', async () => {
    const { licenseId, device, ref } = await licensed({ max: 10 });
    const req = device.consumptionRequest(ref, 'render', 6);
    const same = await Promise.all([1, 2, 3, 4].map(() => api({ request: req.text })));
    assert.deepEqual(
      same.map((r) => r.status),
      [200, 200, 200, 200],
    );
    assert.equal(same.filter((r) => r.body.repeated === false).length, 1);
    assert.equal(await countRows(t.db, 'consumption_records', { license_id: licenseId }), 1);
    const others = await Promise.all(
      [1, 2, 3].map(() => api({ request: device.consumptionRequest(ref, 'render', 4).text })),
    );
    assert.deepEqual(others.map((r) => r.status).sort(), [200, 409, 409]);
    assert.equal(Number((await t.db('consumption_usage').where({ license_id: licenseId }).first()).used), 10);
  });

  it('refuses a device of another license, an unknown or non-consumption feature, a forged key, a bad amount and a damaged request', async () => {
    const a = await licensed({ max: 100 });
    const b = await licensed({ max: 100 });
    // b's device names a's license and its own activation: not an activation of that license.
    const cross = await api({
      request: b.device.consumptionRequest({ ...b.ref, licenseId: a.licenseId }, 'render', 1).text,
    }).expect(404);
    assert.equal(cross.body.error.code, 'activation_unknown');
    // b's device names a's activation: its key is not the one on record.
    const forged = await api({ request: b.device.consumptionRequest(a.ref, 'render', 1).text }).expect(404);
    assert.equal(forged.body.error.code, 'activation_unknown');
    assert.equal(
      (await api({ request: a.device.consumptionRequest(a.ref, 'export', 1).text }).expect(404)).body.error.code,
      'feature_unknown',
    );
    assert.equal(
      (await api({ request: a.device.consumptionRequest(a.ref, 'nothing', 1).text }).expect(404)).body.error.code,
      'feature_unknown',
    );
    assert.equal(
      (await api({ request: a.device.consumptionRequest(a.ref, 'render', 0).text }).expect(400)).body.error.code,
      'request_malformed',
    );
    const text = a.device.consumptionRequest(a.ref, 'render', 1).text;
    const tampered = text.replace(
      /^([A-Za-z0-9+/]{10})([A-Za-z0-9+/])/m,
      (_m, p: string, c: string) => p + (c === 'A' ? 'B' : 'A'),
    );
    assert.ok([400].includes((await api({ request: tampered })).status));
    assert.equal((await api({}).expect(400)).body.error.code, 'request_missing');
    assert.equal(await countRows(t.db, 'consumption_records', { license_id: a.licenseId }), 0);
    assert.deepEqual(
      (await auditOf(t.db, 'license', a.licenseId))
        .filter((e) => e.action === 'consumption.refused')
        .map((e) => (e.after as { code: string }).code),
      ['feature_unknown', 'feature_unknown'],
      "only the license's own device's refusals are put on it; another device's are audited without it",
    );
    assert.ok(
      Number((await t.db('audit_events').where({ action: 'consumption.refused' }).count({ n: '*' }).first())!.n) >= 6,
    );
  });
});
