import assert from 'node:assert/strict';
import request from 'supertest';
import { buildTestApp, auditOf, type TestApp } from '../helpers/app.ts';
import { makeDevice } from '../helpers/device.ts';
import * as catalog from '../../app/models/catalog.ts';
import { hashPassword } from '../../app/lib/passwords.ts';
import { verifyEnvelope } from '../../sdk/src/envelope.ts';
import { trustedKeyMap } from '../../app/services/signer.ts';
import { keyedOrder, type KeyedOrder } from '../helpers/catalog.ts';

describe('License API /api/v1', function () {
  this.timeout(60_000);
  let t: TestApp;
  let order: number;
  const key = (c: string) => Array(7).fill(c.repeat(4)).join('-');
  const ent = { ...catalog.DEFAULT_ENTITLEMENTS, maxActivations: 2, maxTransfers: 0 };
  let vendor: KeyedOrder;
  const addLicense = (licenseKey: string, over: Partial<typeof ent> = {}, extra: Record<string, unknown> = {}) =>
    vendor.license(licenseKey, { ...ent, ...over }, extra);
  const api = (path: string, body: unknown) =>
    request(t.app)
      .post(`/api/v1/${path}`)
      .set('Accept', 'application/json')
      .send(body as object);

  before(async () => {
    t = await buildTestApp();
    vendor = await keyedOrder(t.db, t.clock, { orderRef: 'API-1' });
    order = vendor.orderId;
  });
  after(async () => t.close());

  it('activate → a signed license envelope; the same request again uses no second seat; no cookie, no CSRF needed', async () => {
    const id = await addLicense(key('A'));
    const device = makeDevice('API-HW-1');
    const req = device.activationRequest({ product: 'acme-cad', licenseKey: key('A') });
    const res = await api('activate', { request: req.text }).expect(200);
    assert.equal(res.headers['set-cookie'], undefined);
    assert.equal(res.headers['cache-control'], 'no-store');
    const payload = verifyEnvelope(res.body.license, {
      expectedType: 'license',
      trustedKeys: await trustedKeyMap(t.db),
    }).payload as Record<string, unknown>;
    assert.equal(payload.hardwareId, 'API-HW-1');
    assert.equal(payload.activationId, res.body.activationId);
    const again = await api('activate', { request: req.text }).expect(200);
    assert.equal(again.body.repeated, true);
    assert.equal(again.body.license, res.body.license);
    assert.equal((await t.db('licenses').where({ id }).first()).times_activated, 1);
    assert.equal((await t.db('devices').where({ license_id: id }).first()).channel, 'online');
  });

  it('check → a refresh envelope with a growing counter; deactivate → a receipt; then check says inactive', async () => {
    await addLicense(key('B'));
    const device = makeDevice('API-HW-2');
    const req = device.activationRequest({ product: 'acme-cad', licenseKey: key('B') });
    const activated = await api('activate', { request: req.text }).expect(200);
    const lic = verifyEnvelope(activated.body.license, {
      expectedType: 'license',
      trustedKeys: await trustedKeyMap(t.db),
    }).payload as { licenseId: number; activationId: number; requestNonce: string };
    const ref = { product: 'acme-cad', licenseId: lic.licenseId, activationId: lic.activationId };
    const c1 = await api('check', { request: device.checkRequest(ref) }).expect(200);
    const c2 = await api('check', { request: device.checkRequest(ref) }).expect(200);
    const trustedKeysCache = await trustedKeyMap(t.db);
    const counter = (text: string) =>
      (verifyEnvelope(text, { expectedType: 'refresh', trustedKeys: trustedKeysCache }).payload as { counter: number })
        .counter;
    assert.ok(counter(c2.body.license) > counter(c1.body.license));
    assert.equal(c1.body.valid, true);

    const stranger = makeDevice('API-HW-2');
    const forged = await api('check', { request: stranger.checkRequest(ref) }).expect(404);
    assert.equal(forged.body.error.code, 'activation_unknown');

    const d = device.deactivationRequest({ ...ref, requestNonce: lic.requestNonce });
    const done = await api('deactivate', { request: d.text }).expect(200);
    verifyEnvelope(done.body.receipt, { expectedType: 'deactivation-receipt', trustedKeys: trustedKeysCache });
    assert.equal((await api('deactivate', { request: d.text }).expect(200)).body.repeated, true);
    const inactive = await api('check', { request: device.checkRequest(ref) }).expect(410);
    assert.equal(inactive.body.error.code, 'activation_inactive');
    const forgedDeactivation = await api('deactivate', {
      request: stranger.deactivationRequest({ ...ref, requestNonce: lic.requestNonce }).text,
    }).expect(403);
    assert.equal(forgedDeactivation.body.error.code, 'deactivation_forged');
  });

  it('every refusal has a stable error code and message', async () => {
    await addLicense(key('D'), {}, { enabled: false });
    await addLicense(key('E'), {}, { expires_at: new Date(t.clock.now().getTime() - 1000) });
    await addLicense(key('G'), { airgapped: true, allowOffline: true });
    await addLicense(key('F'), { maxActivations: 1 });
    await api('activate', {
      request: makeDevice().activationRequest({ product: 'acme-cad', licenseKey: key('F') }).text,
    }).expect(200);
    const cases: [unknown, number, string][] = [
      [{}, 400, 'request_missing'],
      [{ request: 'garbage' }, 400, 'request_malformed'],
      [
        {
          request: makeDevice().deactivationRequest({
            product: 'acme-cad',
            licenseId: 1,
            activationId: 1,
            requestNonce: 'x'.repeat(22),
          }).text,
        },
        400,
        'wrong_type',
      ],
      [
        { request: makeDevice().activationRequest({ product: 'other-app', licenseKey: key('A') }).text },
        404,
        'product_unknown',
      ],
      [
        { request: makeDevice().activationRequest({ product: 'acme-cad', licenseKey: key('Z') }).text },
        404,
        'license_unknown',
      ],
      [
        { request: makeDevice().activationRequest({ product: 'acme-cad', licenseKey: key('D') }).text },
        403,
        'license_disabled',
      ],
      [{ request: makeDevice().activationRequest({ product: 'acme-cad', licenseKey: key('E') }).text }, 403, 'expired'],
      [
        { request: makeDevice().activationRequest({ product: 'acme-cad', licenseKey: key('G') }).text },
        403,
        'airgap_only',
      ],
      [
        { request: makeDevice().activationRequest({ product: 'acme-cad', licenseKey: key('F') }).text },
        409,
        'no_seats',
      ],
    ];
    for (const [body, status, code] of cases) {
      const res = await api('activate', body);
      assert.equal(res.status, status, `${code}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, code);
      assert.ok(res.body.error.message.length > 10, code);
    }
    const tampered = makeDevice()
      .activationRequest({ product: 'acme-cad', licenseKey: key('A') })
      .text.replace(/^([A-Za-z0-9+/]{10})([A-Za-z0-9+/])/m, (_m, a: string, b: string) => a + (b === 'A' ? 'B' : 'A'));
    assert.ok([400].includes((await api('activate', { request: tampered })).status));
    const notJson = await request(t.app)
      .post('/api/v1/activate')
      .set('Content-Type', 'application/json')
      .send('{"broken"')
      .expect(400);
    assert.equal(notJson.body.error.code, 'bad_request');
    assert.equal((await request(t.app).post('/api/v1/nope').send({}).expect(404)).body.error.code, 'not_found');
  });

  it("user-based licenses need the user's credentials in the call", async () => {
    const userProduct = await catalog.insertProduct(
      t.db,
      { name: 'Analytics', code: 'analytics', authorizationMethod: 'user' },
      t.clock.now(),
    );
    const lic = await catalog.insertLicense(
      t.db,
      {
        orderId: order,
        productId: userProduct,
        policyId: null,
        licenseKey: null,
        entitlements: ent,
        startDate: t.clock.now(),
      },
      t.clock.now(),
    );
    const [uid] = await t.db('accounts').insert({
      email: 'bo@example.com',
      name: 'Bo',
      password_hash: await hashPassword('bo password 12'),
      role: 'end_user',
      language: 'en',
      created_at: new Date(),
      updated_at: new Date(),
    });
    await catalog.assignLicenseUser(t.db, lic, Number(uid), 1, t.clock.now());
    const req = makeDevice().activationRequest({ product: 'analytics', user: 'bo@example.com' });
    assert.equal((await api('activate', { request: req.text }).expect(401)).body.error.code, 'user_credentials');
    assert.equal(
      (await api('activate', { request: req.text, user: { email: 'bo@example.com', password: 'nope' } }).expect(401))
        .body.error.code,
      'user_credentials',
    );
    await api('activate', { request: req.text, user: { email: 'bo@example.com', password: 'bo password 12' } }).expect(
      200,
    );
  });

  it('floating licenses: check-in holds a slot, slots expire after the timeout, release frees one, a borrowed device keeps its slot', async () => {
    const id = await addLicense(key('H'), {
      floating: true,
      floatingUsers: 2,
      floatingTimeoutMinutes: 30,
      canBorrow: true,
      maxBorrowHours: 48,
      maxActivations: 100,
    });
    const [a, b, c] = [makeDevice('FL-A'), makeDevice('FL-B'), makeDevice('FL-C')];
    const act = async (d: ReturnType<typeof makeDevice>) =>
      api('activate', { request: d.activationRequest({ product: 'acme-cad', licenseKey: key('H') }).text });
    const ra = await act(a);
    const rb = await act(b);
    assert.equal(ra.status, 200);
    assert.equal(rb.status, 200);
    assert.equal((await act(c)).body.error.code, 'no_seats');
    // B is borrowed; time passes beyond the timeout; A checks in within it.
    await t
      .db('devices')
      .where({ id: rb.body.activationId })
      .update({ borrowed_until: new Date(t.clock.now().getTime() + 48 * 3600_000) });
    t.clock.advance(20 * 60_000);
    await api('check', {
      request: a.checkRequest({ product: 'acme-cad', licenseId: id, activationId: ra.body.activationId }),
    }).expect(200);
    t.clock.advance(20 * 60_000);
    assert.equal((await act(c)).body.error.code, 'no_seats', 'A checked in, B is borrowed: both keep their slots');
    t.clock.advance(31 * 60_000);
    const rc = await act(c);
    assert.equal(rc.status, 200, "A's slot expired");
    const expired = await t.db('devices').where({ id: ra.body.activationId }).first();
    assert.equal(expired.deactivation_reason, 'expired_slot');
    const lic = verifyEnvelope(rc.body.license, { expectedType: 'license', trustedKeys: await trustedKeyMap(t.db) })
      .payload as { requestNonce: string };
    await api('release', {
      request: c.deactivationRequest({
        product: 'acme-cad',
        licenseId: id,
        activationId: rc.body.activationId,
        requestNonce: lic.requestNonce,
      }).text,
    }).expect(200);
    assert.equal((await t.db('licenses').where({ id }).first()).times_activated, 1, 'only the borrowed B holds a slot');
    assert.ok((await auditOf(t.db, 'license', id)).filter((e) => e.action === 'activation.granted').length >= 3);
  });

  it('rate-limits one license across clients (429)', async () => {
    const limited = await buildTestApp({ trustProxy: true });
    try {
      const text = makeDevice().checkRequest({ product: 'acme-cad', licenseId: 424242, activationId: 1 });
      let res: request.Response | undefined;
      for (let i = 0; i < 125; i++) {
        res = await request(limited.app)
          .post('/api/v1/check')
          .set('X-Forwarded-For', `10.9.${i >> 8}.${i & 255}`)
          .send({ request: text });
        if (res.status === 429) break;
      }
      assert.equal(res!.status, 429);
      assert.equal(res!.body.error.code, 'rate_limited');
    } finally {
      await limited.close();
    }
  });

  it('rate-limits a client (429 with Retry-After and a JSON error)', async () => {
    const limited = await buildTestApp();
    try {
      let res: request.Response | undefined;
      for (let i = 0; i < 605; i++) {
        res = await request(limited.app).post('/api/v1/check').send({});
        if (res.status === 429) break;
      }
      assert.equal(res!.status, 429);
      assert.equal(res!.body.error.code, 'rate_limited');
      assert.ok(Number(res!.headers['retry-after']) > 0);
    } finally {
      await limited.close();
    }
  });
});
