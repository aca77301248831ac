import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { buildTestApp, type TestApp } from '../helpers/app.ts';
import { listen } from '../helpers/browser.ts';
import { runDevice } from '../helpers/cli.ts';
import * as catalog from '../../app/models/catalog.ts';
import { hashPassword } from '../../app/lib/passwords.ts';
import {
  ApiCallError,
  LicenseError,
  PorticoClient,
  applyRefresh,
  createActivationRequest,
  createCheckRequest,
  createConsumptionRequest,
  deviceKeyFrom,
  readCheckRequestPayload,
  trustedKeysFromWellKnown,
  verifyDeviceSigned,
  type DeviceKey,
} from '../../sdk/src/index.ts';

/** The SDK's License API client and the CLI's online commands against the real server on loopback. */

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI in process (runCli; test/e2e/device-cli.test.ts runs the binary): the server answering it runs in this process too. */
async function cli(dir: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const run = await runDevice({ dir, cwd: path.dirname(dir), env }, ...args);
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

const newDeviceKey = (): DeviceKey => deviceKeyFrom(crypto.generateKeyPairSync('ed25519').privateKey);

describe("SDK: PorticoClient and the CLI's online commands against the License API", function () {
  this.timeout(120_000);
  let t: TestApp;
  let server: Server;
  let base: string;
  let work: string;
  let keysText: string;
  let trustedKeys: ReturnType<typeof trustedKeysFromWellKnown>;
  let product: number;
  let order: number;
  const key = (c: string) => Array(7).fill(c.repeat(4)).join('-');
  const addLicense = (
    licenseKey: string | null,
    productId = product,
    over: Partial<typeof catalog.DEFAULT_ENTITLEMENTS> = {},
  ) =>
    catalog.insertLicense(
      t.db,
      {
        orderId: order,
        productId,
        policyId: null,
        licenseKey,
        entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, maxActivations: 1, maxTransfers: 0, ...over },
        startDate: t.clock.now(),
      },
      t.clock.now(),
    );

  before(async () => {
    t = await buildTestApp();
    ({ url: base, server } = await listen(t.app));
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-online-'));
    const now = t.clock.now();
    product = await catalog.insertProduct(
      t.db,
      { name: 'Acme CAD', code: 'acme-cad', authorizationMethod: 'key' },
      now,
    );
    await catalog.insertFeature(
      t.db,
      { productId: product, code: 'render', name: 'Render minutes', type: 'consumption' },
      now,
    );
    const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Globex' }, now);
    order = await catalog.insertOrder(t.db, { orderRef: 'ONLINE-1', customerId: customer }, now);
    keysText = await (await fetch(`${base}/.well-known/portico-keys.json`)).text();
    trustedKeys = trustedKeysFromWellKnown(keysText);
  });
  after(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await t?.close();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('createCheckRequest: device-signed, names the activation, only with the bound key', () => {
    const deviceKey = newDeviceKey();
    const license = {
      product: 'acme-cad',
      licenseId: 3,
      activationId: 9,
      hardwareId: 'HW-1',
      devicePublicKey: deviceKey.publicKeyString,
    };
    const made = createCheckRequest({ license, deviceKey });
    const payload = readCheckRequestPayload(verifyDeviceSigned(made.text, 'check-request').payload);
    assert.deepEqual(
      { ...payload, nonce: undefined, createdAt: undefined },
      { v: 1, ...license, nonce: undefined, createdAt: undefined },
    );
    assert.equal(payload.nonce, made.nonce);
    assert.throws(
      () => createCheckRequest({ license, deviceKey: newDeviceKey() }),
      (err: unknown) => err instanceof LicenseError && err.code === 'device_key',
    );
  });

  it('activate → check (the counter grows) → deactivate; the seat is free again; no_seats is an ApiCallError with its code', async () => {
    const licenseId = await addLicense(key('A'));
    const client = new PorticoClient({ baseUrl: `${base}/`, trustedKeys });
    const deviceKey = newDeviceKey();
    const request = createActivationRequest({
      product: 'acme-cad',
      licenseKey: key('A').toLowerCase(),
      hardwareId: 'ONLINE-HW-1',
      deviceKey,
      hostname: 'box.example',
    });
    const expected = { product: 'acme-cad', hardwareId: 'ONLINE-HW-1', devicePublicKey: deviceKey.publicKeyString };
    const license = await client.activate({ request: request.text, nonce: request.nonce, expected });
    assert.equal(license.licenseId, licenseId);
    assert.equal(license.requestNonce, request.nonce);
    assert.equal(license.typ, 'license');
    assert.equal(license.repeated, false);
    assert.match(license.text, /^-----BEGIN PORTICO LICENSE-----/);
    assert.equal((await t.db('devices').where({ id: license.activationId }).first()).channel, 'online');

    // The same request again (a retry after a lost answer) uses no second seat.
    assert.equal((await client.activate({ request: request.text, nonce: request.nonce, expected })).repeated, true);
    // A license answering another request is refused by the SDK.
    await assert.rejects(
      client.activate({ request: request.text, nonce: crypto.randomBytes(16).toString('base64url'), expected }),
      (err: unknown) => err instanceof LicenseError && err.code === 'nonce',
    );

    // The only seat is taken: another machine is refused with a stable code.
    const other = newDeviceKey();
    const refused = createActivationRequest({
      product: 'acme-cad',
      licenseKey: key('A'),
      hardwareId: 'ONLINE-HW-2',
      deviceKey: other,
    });
    await assert.rejects(
      client.activate({
        request: refused.text,
        nonce: refused.nonce,
        expected: { product: 'acme-cad', hardwareId: 'ONLINE-HW-2', devicePublicKey: other.publicKeyString },
      }),
      (err: unknown) =>
        err instanceof ApiCallError && err.code === 'no_seats' && err.status === 409 && err.message.length > 10,
    );

    const first = await client.check(license, deviceKey);
    assert.equal(first.typ, 'refresh');
    assert.ok(first.counter > license.counter);
    assert.equal(first.activationId, license.activationId);
    assert.equal(first.floatingExpiresAt, null);
    const second = await client.check(first, deviceKey);
    assert.ok(second.counter > first.counter, 'the counter grows with every check');
    // An older answer cannot be applied over a newer one: the SDK checks the counter.
    assert.throws(
      () => applyRefresh(second, first.text, { trustedKeys }),
      (err: unknown) => err instanceof LicenseError && err.code === 'counter',
    );

    const receipt = await client.deactivate(second, deviceKey);
    assert.equal(receipt.licenseId, licenseId);
    assert.equal(receipt.activationId, license.activationId);
    assert.equal(receipt.repeated, false);
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 0);
    await assert.rejects(
      client.check(second, deviceKey),
      (err: unknown) => err instanceof ApiCallError && err.code === 'activation_inactive' && err.status === 410,
    );

    // The seat is free: the other machine gets it now, and can release it (floating endpoint, same receipt).
    const granted = await client.activate({
      request: refused.text,
      nonce: refused.nonce,
      expected: { product: 'acme-cad', hardwareId: 'ONLINE-HW-2', devicePublicKey: other.publicKeyString },
    });
    const released = await client.release(granted, other);
    assert.equal(released.activationId, granted.activationId);
  });

  it('consume: counts against the maximum, a retry with the same request counts once, past the maximum is ApiCallError consumption_exceeded', async () => {
    const licenseId = await addLicense(key('K'));
    const feature = await t.db('features').where({ code: 'render' }).first();
    await t
      .db('license_features')
      .insert({ license_id: licenseId, feature_id: feature.id, max_consumption: 10, total_consumption: 0 });
    const client = new PorticoClient({ baseUrl: base, trustedKeys });
    const deviceKey = newDeviceKey();
    const request = createActivationRequest({
      product: 'acme-cad',
      licenseKey: key('K'),
      hardwareId: 'CONSUME-1',
      deviceKey,
    });
    const license = await client.activate({
      request: request.text,
      nonce: request.nonce,
      expected: { product: 'acme-cad', hardwareId: 'CONSUME-1', devicePublicKey: deviceKey.publicKeyString },
    });
    const first = await client.consume(license, deviceKey, 'render', 6);
    assert.deepEqual([first.used, first.max, first.period, first.repeated], [6, 10, 'all', false]);
    const again = createConsumptionRequest({ license, deviceKey, feature: 'render', amount: 4 });
    assert.equal((await client.consume(license, deviceKey, 'render', 4, again)).used, 10);
    const retried = await client.consume(license, deviceKey, 'render', 4, again);
    assert.deepEqual([retried.used, retried.repeated], [10, true]);
    await assert.rejects(
      client.consume(license, deviceKey, 'render', 1),
      (err: unknown) => err instanceof ApiCallError && err.code === 'consumption_exceeded' && err.status === 409,
    );
  });

  it('network failures and timeouts are ApiCallError network (status 0); Retry-After is read; non-API answers are bad_response', async () => {
    const closed = await new Promise<number>((resolve) => {
      const s = http.createServer();
      s.listen(0, '127.0.0.1', () => {
        const port = (s.address() as AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const deviceKey = newDeviceKey();
    const request = createActivationRequest({
      product: 'acme-cad',
      licenseKey: key('A'),
      hardwareId: 'ONLINE-HW-3',
      deviceKey,
    });
    const input = {
      request: request.text,
      nonce: request.nonce,
      expected: { product: 'acme-cad', hardwareId: 'ONLINE-HW-3', devicePublicKey: deviceKey.publicKeyString },
    };
    await assert.rejects(
      new PorticoClient({ baseUrl: `http://127.0.0.1:${closed}`, trustedKeys }).activate(input),
      (err: unknown) => err instanceof ApiCallError && err.code === 'network' && err.status === 0,
    );

    const hanging: typeof fetch = (_url, init) =>
      new Promise((_resolve, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason)));
    await assert.rejects(
      new PorticoClient({ baseUrl: base, trustedKeys, fetch: hanging, timeoutMs: 50 }).activate(input),
      (err: unknown) => err instanceof ApiCallError && err.code === 'network' && /50 ms/.test(err.message),
    );

    const limited: typeof fetch = async () =>
      new Response(JSON.stringify({ error: { code: 'rate_limited', message: 'Too many requests' } }), {
        status: 429,
        headers: { 'Retry-After': '17', 'Content-Type': 'application/json' },
      });
    await assert.rejects(
      new PorticoClient({ baseUrl: base, trustedKeys, fetch: limited }).activate(input),
      (err: unknown) =>
        err instanceof ApiCallError &&
        err.code === 'rate_limited' &&
        err.status === 429 &&
        err.retryAfterSeconds === 17,
    );

    const proxyPage: typeof fetch = async () => new Response('<html>Bad gateway</html>', { status: 502 });
    await assert.rejects(
      new PorticoClient({ baseUrl: base, trustedKeys, fetch: proxyPage }).activate(input),
      (err: unknown) => err instanceof ApiCallError && err.code === 'bad_response' && err.status === 502,
    );

    assert.throws(
      () => new PorticoClient({ baseUrl: 'ftp://example.com', trustedKeys }),
      (err: unknown) => err instanceof LicenseError && err.code === 'input',
    );
  });

  it('CLI: init → activate --online → status 0 → check → deactivate --online → status 3', async () => {
    const licenseId = await addLicense(key('C'));
    const feature = await t.db('features').where({ code: 'render' }).first();
    await t
      .db('license_features')
      .insert({ license_id: licenseId, feature_id: feature.id, max_consumption: 1000, total_consumption: 0 });
    const keysFile = path.join(work, 'portico-keys.json');
    fs.writeFileSync(keysFile, keysText);
    const dir = path.join(work, 'device');
    const ok = (r: Run, what: string) => {
      assert.equal(r.code, 0, `${what}: ${r.stdout}${r.stderr}`);
      return r;
    };

    ok(
      await cli(dir, [
        'init',
        '--product',
        'acme-cad',
        '--key',
        key('C'),
        '--keys',
        keysFile,
        '--hardware-id',
        'CLI-ONLINE-1',
      ]),
      'init',
    );
    const noServer = await cli(dir, ['check']);
    assert.equal(noServer.code, 1, 'nothing installed yet');
    const activated = ok(await cli(dir, ['activate', '--online', '--server', base]), 'activate --online');
    assert.match(activated.stdout, /License activated online/);
    assert.match(activated.stdout, /hardware id:\s+CLI-ONLINE-1/);
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).server, base);
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 1);
    ok(await cli(dir, ['status']), 'status');

    const before = fs.readFileSync(path.join(dir, 'license.lic'), 'utf8');
    const checked = ok(await cli(dir, ['check']), 'check');
    assert.match(checked.stdout, /lease ends:\s+\d{4}-\d\d-\d\dT/);
    const after = fs.readFileSync(path.join(dir, 'license.lic'), 'utf8');
    assert.notEqual(after, before);
    assert.match(after, /BEGIN PORTICO REFRESH/);
    ok(await cli(dir, ['status']), 'status after check');

    const usageError = await cli(dir, ['deactivate', '--online', '--out', 'x.req']);
    assert.equal(usageError.code, 2);
    const deactivated = ok(await cli(dir, ['deactivate', '--online', '--usage', 'render=5']), 'deactivate --online');
    assert.match(deactivated.stdout, /Deactivation confirmed/);
    assert.equal((await cli(dir, ['status'])).code, 3);
    assert.equal(fs.existsSync(path.join(dir, 'license.lic.deactivated')), false);
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 0);
    assert.equal(
      Number((await t.db('license_features').where({ license_id: licenseId }).first()).total_consumption),
      5,
    );

    // A refusal of the server: exit 1 with its code, no stack trace.
    const other = path.join(work, 'device-2');
    ok(
      await cli(other, [
        'init',
        '--product',
        'acme-cad',
        '--key',
        key('Z'),
        '--keys',
        keysFile,
        '--hardware-id',
        'CLI-ONLINE-2',
      ]),
      'init 2',
    );
    const unknown = await cli(other, ['activate', '--online', '--server', base]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /refused \(license_unknown, HTTP 404\)/);
    assert.doesNotMatch(unknown.stderr, /\n\s+at /);
    assert.equal((await cli(other, ['activate', '--online'])).code, 2, '--server is required to activate online');
  });

  it("CLI: a user-based license activates online with the user's password from the environment", async () => {
    const userProduct = await catalog.insertProduct(
      t.db,
      { name: 'Analytics', code: 'analytics', authorizationMethod: 'user' },
      t.clock.now(),
    );
    const lic = await addLicense(null, userProduct);
    const [uid] = await t.db('accounts').insert({
      email: 'cli-user@example.com',
      name: 'Cli',
      password_hash: await hashPassword('cli password 12'),
      role: 'end_user',
      language: 'en',
      created_at: new Date(),
      updated_at: new Date(),
    });
    await catalog.assignLicenseUser(t.db, lic, Number(uid), 1, t.clock.now());
    const keysFile = path.join(work, 'portico-keys.json');
    fs.writeFileSync(keysFile, keysText);
    const dir = path.join(work, 'device-user');
    assert.equal(
      (
        await cli(dir, [
          'init',
          '--product',
          'analytics',
          '--user',
          'cli-user@example.com',
          '--keys',
          keysFile,
          '--hardware-id',
          'CLI-USER-1',
        ])
      ).code,
      0,
    );
    assert.equal((await cli(dir, ['activate', '--online', '--server', base])).code, 2, 'no password given');
    const wrong = await cli(dir, ['activate', '--online', '--server', base], { PORTICO_DEVICE_PASSWORD: 'nope' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /user_credentials/);
    const r = await cli(dir, ['activate', '--online', '--server', base], {
      PORTICO_DEVICE_PASSWORD: 'cli password 12',
    });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal((await cli(dir, ['status'])).code, 0);
  });
});
