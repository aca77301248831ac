import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import request from 'supertest';
import yazl from 'yazl';
import yauzl from 'yauzl';
import { buildTestApp, auditOf, countRows, type TestApp } from '../helpers/app.ts';
import { makeDevice } from '../helpers/device.ts';
import { download, upload } from '../helpers/offline.ts';
import * as catalog from '../../app/models/catalog.ts';
import { hashPassword } from '../../app/lib/passwords.ts';
import { verifyEnvelope, signEnvelope } from '../../sdk/src/envelope.ts';
import { trustedKeyMap } from '../../app/services/signer.ts';
import { keyedOrder, type KeyedOrder } from '../helpers/catalog.ts';

type Agent = ReturnType<typeof request.agent>;

async function zipOf(files: Record<string, string | Buffer>): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const [name, content] of Object.entries(files))
    zip.addBuffer(Buffer.isBuffer(content) ? content : Buffer.from(content), name);
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function unzip(bytes: Buffer): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(bytes, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err);
      const out: Record<string, string> = {};
      zip.on('entry', (e: yauzl.Entry) =>
        zip.openReadStream(e, (er, s) => {
          if (er || !s) return reject(er);
          const c: Buffer[] = [];
          s.on('data', (d: Buffer) => c.push(d));
          s.on('end', () => {
            out[e.fileName] = Buffer.concat(c).toString('utf8');
            zip.readEntry();
          });
        }),
      );
      zip.on('end', () => resolve(out));
      zip.readEntry();
    });
  });
}

describe('Offline Activation Portal', function () {
  this.timeout(60_000);
  let t: TestApp;
  let agent: Agent;
  const now = new Date();
  const ent = { ...catalog.DEFAULT_ENTITLEMENTS, allowOffline: true, maxActivations: 2, maxTransfers: 1 };
  let order: number;
  const key = (n: string) =>
    `${n.repeat(4)}-${n.repeat(4)}-${n.repeat(4)}-${n.repeat(4)}-${n.repeat(4)}-${n.repeat(4)}-${n.repeat(4)}`;
  let vendor: KeyedOrder;
  const addLicense = (licenseKey: string, over: Partial<typeof ent> = {}, extra: Record<string, unknown> = {}) =>
    vendor.license(licenseKey, { ...ent, ...over }, extra);

  before(async () => {
    t = await buildTestApp();
    agent = request.agent(t.app);
    vendor = await keyedOrder(t.db, { now: () => now }, { orderRef: 'O-1' });
    order = vendor.orderId;
  });
  after(async () => t.close());

  it('the page has a labelled file picker, a paste box and a CSRF token; without the token an upload is refused', async () => {
    const page = await agent.get('/offline').expect(200);
    assert.match(page.text, /<label for="field-file">/);
    assert.match(page.text, /<label for="field-request">/);
    await agent.post('/offline/requests').attach('file', Buffer.from('x'), 'a.req').expect(403);
  });

  it('activates: a result page, a signed license file bound to the request; the same request again gives the same file and uses no second seat', async () => {
    const licenseId = await addLicense(key('A'));
    const device = makeDevice('HW-ONE');
    const req = device.activationRequest({ product: 'acme-cad', licenseKey: key('A').toLowerCase() });
    const res = await upload(agent, req.text);
    assert.equal(res.status, 200, res.text);
    assert.match(res.text, /License activated/);
    assert.match(res.text, /Acme CAD/);
    assert.match(res.text, /Activations left<\/dt><dd>1</);
    const file = await download(agent, res.text);
    assert.equal(file.status, 200);
    assert.match(file.headers['content-disposition']!, /^attachment; filename="acme-cad-HW-ONE\.lic"$/);
    assert.equal(file.headers['cache-control'], 'no-store');
    const verified = verifyEnvelope(file.body.toString(), {
      expectedType: 'license',
      trustedKeys: await trustedKeyMap(t.db),
    });
    const p = verified.payload as Record<string, unknown>;
    assert.equal(p.product, 'acme-cad');
    assert.equal(p.hardwareId, 'HW-ONE');
    assert.equal(p.devicePublicKey, device.devicePublicKey);
    assert.equal(p.requestNonce, req.nonce);
    assert.equal(p.licenseId, licenseId);

    const again = await upload(agent, req.text);
    assert.match(again.text, /uploaded before/);
    const file2 = await download(agent, again.text);
    assert.equal(file2.body.toString(), file.body.toString(), 'the same license file');
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 1);
    assert.equal(await countRows(t.db, 'devices', { license_id: licenseId }), 1);
    const device1 = await t.db('devices').where({ license_id: licenseId }).first();
    assert.equal(device1.channel, 'offline');
    assert.ok((await auditOf(t.db, 'license', licenseId)).some((e) => e.action === 'activation.granted'));
  });

  it('accepts a pasted request', async () => {
    await addLicense(key('P'));
    const page = await agent.get('/offline');
    const token = /_csrf=([^"&]+)"/.exec(page.text)![1]!;
    const res = await agent
      .post(`/offline/requests?_csrf=${token}`)
      .field('request', makeDevice().activationRequest({ product: 'acme-cad', licenseKey: key('P') }).text);
    assert.equal(res.status, 200);
    assert.match(res.text, /License activated/);
  });

  it('refuses with a plain reason and what to do next, recording each refusal', async () => {
    const cases: [string, () => Promise<string>, RegExp][] = [
      [
        'wrong product',
        async () => makeDevice().activationRequest({ product: 'other-vendor-app', licenseKey: key('A') }).text,
        /does not know: it may come from another vendor/,
      ],
      [
        'unknown key',
        async () => makeDevice().activationRequest({ product: 'acme-cad', licenseKey: key('Z') }).text,
        /No license with this key/,
      ],
      [
        'disabled',
        async () => {
          await addLicense(key('D'), {}, { enabled: false });
          return makeDevice().activationRequest({ product: 'acme-cad', licenseKey: key('D') }).text;
        },
        /This license is disabled/,
      ],
      [
        'expired',
        async () => {
          await addLicense(key('E'), {}, { expires_at: new Date(Date.now() - 86_400_000) });
          return makeDevice().activationRequest({ product: 'acme-cad', licenseKey: key('E') }).text;
        },
        /has expired/,
      ],
      [
        'not started',
        async () => {
          await addLicense(key('S'), {}, { start_date: new Date(Date.now() + 86_400_000 * 3) });
          return makeDevice().activationRequest({ product: 'acme-cad', licenseKey: key('S') }).text;
        },
        /not valid yet/,
      ],
      [
        'not offline',
        async () => {
          await addLicense(key('N'), { allowOffline: false });
          return makeDevice().activationRequest({ product: 'acme-cad', licenseKey: key('N') }).text;
        },
        /may not be activated offline/,
      ],
      [
        'damaged',
        async () => '-----BEGIN PORTICO ACTIVATION REQUEST-----\n!!!!\n-----END PORTICO ACTIVATION REQUEST-----\n',
        /damaged or is not a Portico request/,
      ],
      [
        'a license file instead of a request',
        async () => signEnvelope('license', 'k1', { v: 1 }, crypto.generateKeyPairSync('ed25519').privateKey),
        /not an activation or deactivation request/,
      ],
      [
        '__proto__ in the payload',
        async () =>
          signEnvelope(
            'activation-request',
            'device',
            JSON.parse(`{"devicePublicKey":"${makeDevice().devicePublicKey}","__proto__":{"x":1}}`),
            crypto.generateKeyPairSync('ed25519').privateKey,
          ).replace(/x/, 'x'),
        /damaged|not valid/,
      ],
    ];
    for (const [name, make, message] of cases) {
      let text: string;
      try {
        text = await make();
      } catch {
        continue; // the SDK itself refused to sign it: nothing to upload
      }
      const res = await upload(agent, text);
      assert.ok([400, 403, 409, 422].includes(res.status), `${name}: ${res.status}`);
      assert.match(res.text, message, name);
      assert.match(res.text, /role="alert"/);
    }
    const refused = await t.db('audit_events').where({ action: 'activation.refused' }).select('after_state');
    assert.ok(refused.length >= 6);
  });

  it("refuses a request signed by one device but naming another device's key, and JSON with __proto__ keys (400, clear message)", async () => {
    await addLicense(key('W'));
    const honest = makeDevice('HW-W');
    const impostor = makeDevice('HW-W');
    // The impostor signs with its own key a request that names the honest device's key.
    const payload = JSON.parse(
      Buffer.from(
        JSON.parse(
          Buffer.from(
            impostor
              .activationRequest({ product: 'acme-cad', licenseKey: key('W') })
              .text.split('\n')
              .slice(1, -2)
              .join(''),
            'base64',
          ).toString(),
        ).payload,
        'base64url',
      ).toString(),
    );
    payload.devicePublicKey = honest.devicePublicKey;
    const bytes = Buffer.from(JSON.stringify(payload));
    const sig = crypto
      .sign(
        null,
        Buffer.concat([Buffer.from(`PORTICO-ENVELOPE-V1\nactivation-request\ndevice\n`), bytes]),
        impostor.privateKey,
      )
      .toString('base64url');
    const armour = (json: string) =>
      `-----BEGIN PORTICO ACTIVATION REQUEST-----\n${Buffer.from(json)
        .toString('base64')
        .replace(/(.{64})/g, '$1\n')}\n-----END PORTICO ACTIVATION REQUEST-----\n`;
    const forged = await upload(
      agent,
      armour(
        JSON.stringify({
          v: 1,
          typ: 'activation-request',
          alg: 'Ed25519',
          kid: 'device',
          payload: bytes.toString('base64url'),
          sig,
        }),
      ),
    );
    assert.equal(forged.status, 400);
    assert.match(forged.text, /signature is not valid/);

    const proto = Buffer.from(`{"v":1,"__proto__":{"polluted":true},"product":"acme-cad"}`);
    const sig2 = crypto
      .sign(
        null,
        Buffer.concat([Buffer.from(`PORTICO-ENVELOPE-V1\nactivation-request\ndevice\n`), proto]),
        honest.privateKey,
      )
      .toString('base64url');
    const polluted = await upload(
      agent,
      armour(
        JSON.stringify({
          v: 1,
          typ: 'activation-request',
          alg: 'Ed25519',
          kid: 'device',
          payload: proto.toString('base64url'),
          sig: sig2,
        }),
      ),
    );
    assert.equal(polluted.status, 400);
    assert.match(polluted.text, /damaged or is not a Portico request/);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(await countRows(t.db, 'devices', { hardware_id: 'HW-W' }), 0);
  });

  it('no transfers allowed: a full license answers "no seats" (free one first), a free seat for a new machine "no transfers"', async () => {
    const id = await addLicense(key('T'), { maxActivations: 1, maxTransfers: -1 });
    const a = makeDevice('HW-J1');
    const aReq = a.activationRequest({ product: 'acme-cad', licenseKey: key('T') });
    assert.equal((await upload(agent, aReq.text)).status, 200);
    const full = await upload(
      agent,
      makeDevice('HW-J2').activationRequest({ product: 'acme-cad', licenseKey: key('T') }).text,
    );
    assert.equal(full.status, 409);
    assert.match(full.text, /No activations are left/);
    const activationId = (await t.db('devices').where({ license_id: id, hardware_id: 'HW-J1' }).first()).id;
    assert.equal(
      (
        await upload(
          agent,
          a.deactivationRequest({ product: 'acme-cad', licenseId: id, activationId, requestNonce: aReq.nonce }).text,
        )
      ).status,
      200,
    );
    const moving = await upload(
      agent,
      makeDevice('HW-J2').activationRequest({ product: 'acme-cad', licenseKey: key('T') }).text,
    );
    assert.equal(moving.status, 409);
    assert.match(moving.text, /transfers are used up/);
    assert.equal(
      (await t.db('licenses').where({ id }).first()).times_activated,
      0,
      'the refused transfer took no seat',
    );
    const codes = (
      await t
        .db('audit_events')
        .where({ action: 'activation.refused', object_id: String(id) })
        .select('after_state')
    ).map((r: { after_state: string }) => JSON.parse(r.after_state).code);
    assert.deepEqual(codes, ['no_seats', 'no_transfers']);
  });

  it('no seats left; a blacklisted machine; transfers run out', async () => {
    const id = await addLicense(key('F'), { maxActivations: 1, maxTransfers: 1 });
    const a = makeDevice('HW-F1');
    const aReq = a.activationRequest({ product: 'acme-cad', licenseKey: key('F') });
    assert.equal((await upload(agent, aReq.text)).status, 200);
    const full = await upload(
      agent,
      makeDevice('HW-F2').activationRequest({ product: 'acme-cad', licenseKey: key('F') }).text,
    );
    assert.equal(full.status, 409);
    assert.match(full.text, /No activations are left/);
    // Free the seat by deactivating A, then a new machine counts as a transfer (1 allowed), then none are left.
    const lic = (await t.db('devices').where({ license_id: id, hardware_id: 'HW-F1' }).first()).id;
    const deact = a.deactivationRequest({
      product: 'acme-cad',
      licenseId: id,
      activationId: lic,
      requestNonce: aReq.nonce,
    });
    assert.equal((await upload(agent, deact.text)).status, 200);
    assert.equal(
      (await upload(agent, makeDevice('HW-F2').activationRequest({ product: 'acme-cad', licenseKey: key('F') }).text))
        .status,
      200,
    );
    assert.equal((await t.db('licenses').where({ id }).first()).transfer_count, 1);
    const f2 = await t.db('devices').where({ license_id: id, hardware_id: 'HW-F2' }).first();
    await t.db('devices').where({ id: f2.id }).update({ deactivated_at: new Date(), active_hardware_id: null });
    await t.db('licenses').where({ id }).update({ times_activated: 0 });
    const noTransfer = await upload(
      agent,
      makeDevice('HW-F3').activationRequest({ product: 'acme-cad', licenseKey: key('F') }).text,
    );
    assert.equal(noTransfer.status, 409);
    assert.match(noTransfer.text, /transfers are used up/);
    assert.equal(
      (await upload(agent, makeDevice('HW-F1').activationRequest({ product: 'acme-cad', licenseKey: key('F') }).text))
        .status,
      200,
      'a machine the license knew is not a transfer',
    );

    await t.db('license_blacklist').insert({ license_id: id, hardware_id: 'HW-BAD', created_at: new Date() });
    const banned = await upload(
      agent,
      makeDevice('HW-BAD').activationRequest({ product: 'acme-cad', licenseKey: key('F') }).text,
    );
    assert.equal(banned.status, 403);
    assert.match(banned.text, /blocked for this license/);
  });

  it('deactivates only with the registered device key and activation; replays and forgeries change nothing and are audited', async () => {
    const id = await addLicense(key('G'));
    const device = makeDevice('HW-G');
    const req = device.activationRequest({ product: 'acme-cad', licenseKey: key('G') });
    await upload(agent, req.text);
    const activationId = (await t.db('devices').where({ license_id: id }).first()).id;
    const license = { product: 'acme-cad', licenseId: id, activationId, requestNonce: req.nonce };

    const thief = makeDevice('HW-G');
    const forged = await upload(agent, thief.deactivationRequest(license).text);
    assert.equal(forged.status, 403);
    assert.match(forged.text, /not made by the device that holds the activation/);
    const otherId = await addLicense(key('H'));
    const other = makeDevice('HW-H');
    const otherReq = other.activationRequest({ product: 'acme-cad', licenseKey: key('H') });
    await upload(agent, otherReq.text);
    const naming = await upload(
      agent,
      device.deactivationRequest({
        ...license,
        licenseId: otherId,
        activationId: (await t.db('devices').where({ license_id: otherId }).first()).id,
      }).text,
    );
    assert.equal(naming.status, 403, 'naming another activation');
    assert.equal((await t.db('licenses').where({ id }).first()).times_activated, 1);

    const deact = device.deactivationRequest(license, [{ feature: 'render', amount: 5 }]);
    const ok = await upload(agent, deact.text);
    assert.equal(ok.status, 200);
    assert.match(ok.text, /License deactivated/);
    const receipt = await download(agent, ok.text);
    const r = verifyEnvelope(receipt.body.toString(), {
      expectedType: 'deactivation-receipt',
      trustedKeys: await trustedKeyMap(t.db),
    });
    assert.equal((r.payload as { deactivationNonce: string }).deactivationNonce, deact.nonce);
    assert.equal((await t.db('licenses').where({ id }).first()).times_activated, 0);
    const replay = await upload(agent, deact.text);
    assert.match(replay.text, /processed before; nothing changed/);
    assert.equal((await t.db('licenses').where({ id }).first()).times_activated, 0);
    const refusals = await t.db('audit_events').where({ action: 'deactivation.refused' });
    assert.ok(refusals.length >= 2);
  });

  it("user-based licenses ask for the license user's credentials on the page", async () => {
    const userProduct = await catalog.insertProduct(
      t.db,
      { name: 'Analytics', code: 'analytics', authorizationMethod: 'user' },
      now,
    );
    const lic = await catalog.insertLicense(
      t.db,
      { orderId: order, productId: userProduct, policyId: null, licenseKey: null, entitlements: ent, startDate: now },
      now,
    );
    const [userId] = await t.db('accounts').insert({
      email: 'ann@example.com',
      name: 'Ann',
      password_hash: await hashPassword('ann password 1'),
      role: 'end_user',
      language: 'en',
      created_at: now,
      updated_at: now,
    });
    await catalog.assignLicenseUser(t.db, lic, Number(userId), 1, now);
    const req = makeDevice().activationRequest({ product: 'analytics', user: 'ann@example.com' });
    const ask = await upload(agent, req.text);
    assert.equal(ask.status, 401);
    assert.match(ask.text, /sign in with that user/);
    const wrong = await upload(agent, req.text, { email: 'ann@example.com', password: 'wrong one' });
    assert.equal(wrong.status, 401);
    const ok = await upload(agent, req.text, { email: 'Ann@Example.com', password: 'ann password 1' });
    assert.equal(ok.status, 200);
    assert.equal((await t.db('license_user_assignments').where({ license_id: lic }).first()).times_activated, 1);
    assert.doesNotMatch(JSON.stringify(t.logs), /ann password 1/);
  });

  it('a ZIP of requests gives a per-file table and a ZIP of license files', async () => {
    await addLicense(key('K'), { maxActivations: 5 });
    const files = {
      'one.req': makeDevice('HW-Z1').activationRequest({ product: 'acme-cad', licenseKey: key('K') }).text,
      'two.req': makeDevice('HW-Z2').activationRequest({ product: 'acme-cad', licenseKey: key('K') }).text,
      'bad.req': 'not a request',
    };
    const res = await upload(agent, await zipOf(files), {}, 'requests.zip');
    assert.equal(res.status, 200);
    assert.match(res.text, /one\.req[\s\S]*Activated/);
    assert.match(res.text, /bad\.req[\s\S]*damaged/);
    const zip = await download(agent, res.text);
    assert.equal(zip.headers['content-type'], 'application/zip');
    const out = await unzip(zip.body);
    assert.deepEqual(Object.keys(out).sort(), ['one.lic', 'two.lic']);
    assert.match(out['one.lic']!, /BEGIN PORTICO LICENSE/);
  });

  it('limits: an oversized request is 413, a ZIP bomb is refused without expanding it', async () => {
    const big = await upload(agent, 'x'.repeat(70 * 1024));
    assert.equal(big.status, 413);
    const bomb = await zipOf({ 'bomb.req': Buffer.alloc(50 * 1024 * 1024, 0) });
    const before = process.memoryUsage().rss;
    const res = await upload(agent, bomb, {}, 'bomb.zip');
    assert.ok([400, 413].includes(res.status), String(res.status));
    assert.match(res.text, /too large or expands too much/);
    assert.ok(process.memoryUsage().rss - before < 40 * 1024 * 1024, 'the bomb was not expanded in memory');
    const huge = await agent.post(`/offline/requests?_csrf=x`).attach('file', Buffer.alloc(9 * 1024 * 1024), 'x.zip');
    assert.ok([403, 413].includes(huge.status));
  });

  it('rate-limits a client that keeps uploading (429 with Retry-After)', async () => {
    const limited = await buildTestApp();
    try {
      const a = request.agent(limited.app);
      let last = 0;
      let retry: string | undefined;
      for (let i = 0; i < 125 && last !== 429; i++) {
        const r = await upload(a, 'nonsense');
        last = r.status;
        retry = r.headers['retry-after'];
      }
      assert.equal(last, 429);
      assert.ok(Number(retry) > 0);
    } finally {
      await limited.close();
    }
  });
});

describe('refresh files from the console and the portal come from one service', () => {
  it('the console downloads a refresh file for an offline activation; its counter grows', async () => {
    const t = await buildTestApp();
    try {
      const key = 'RRRR-RRRR-RRRR-RRRR-RRRR-RRRR-RRRR';
      const licenseId = await (await keyedOrder(t.db, t.clock, { orderRef: 'O-R' })).license(key, {
        allowOffline: true,
      });
      const agent = request.agent(t.app);
      const req = makeDevice('HW-R').activationRequest({ product: 'acme-cad', licenseKey: key });
      assert.equal((await upload(agent, req.text)).status, 200);
      const deviceId = (await t.db('devices').where({ license_id: licenseId }).first()).id;
      const { adminAgent } = await import('../helpers/app.ts');
      const admin = (await adminAgent(t)).agent;
      const page = await admin.get(`/admin/licenses/${licenseId}`).expect(200);
      assert.match(page.text, new RegExp(`/admin/licenses/${licenseId}/devices/${deviceId}/refresh`));
      const file = await admin.get(`/admin/licenses/${licenseId}/devices/${deviceId}/refresh`).expect(200);
      const payload = verifyEnvelope(file.text, { expectedType: 'refresh', trustedKeys: await trustedKeyMap(t.db) })
        .payload as { counter: number; requestNonce: string };
      assert.equal(payload.counter, 1);
      assert.equal(payload.requestNonce, req.nonce);
    } finally {
      await t.close();
    }
  });
});
