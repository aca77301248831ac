import assert from 'node:assert/strict';
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DEVICE_KID,
  LicenseError,
  applyRefresh,
  checkNotOlder,
  closeActivation,
  createActivationRequest,
  createDeactivationRequest,
  decodeEnvelope,
  deviceKeyFrom,
  encodeEnvelope,
  hardwareId,
  loadOrCreateDeviceKey,
  readActivationRequestPayload,
  readDeactivationRequestPayload,
  signEnvelope,
  trustedKeysFromWellKnown,
  verifyDeactivationReceipt,
  verifyDeviceSigned,
  verifyLicense,
  type DeviceKey,
  type EnvelopeType,
  type LicenseErrorCode,
  type LicenseInfo,
  type LicensePayload,
  type VerifyLicenseOptions,
} from '../../sdk/src/index.ts';

const NOW = new Date('2026-03-01T12:00:00.000Z');
const DAY = 86_400_000;
const at = (offsetMs: number) => new Date(NOW.getTime() + offsetMs).toISOString();

function serverKey(kid: string) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  return { kid, privateKey, publicKey, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

const active = serverKey('ed25519-activeKey0000000');
const older = serverKey('ed25519-olderKey00000000'); // rotated out of signing, still trusted
const retired = serverKey('ed25519-retiredKey000000');
const wellKnown = JSON.stringify({
  keys: [
    { kid: active.kid, status: 'active', pem: active.pem },
    { kid: older.kid, status: 'trusted', pem: older.pem },
    { kid: retired.kid, status: 'retired', pem: retired.pem },
  ],
});
const trustedKeys = trustedKeysFromWellKnown(wellKnown);

const device: DeviceKey = deviceKeyFrom(crypto.generateKeyPairSync('ed25519').privateKey);
const otherDevice: DeviceKey = deviceKeyFrom(crypto.generateKeyPairSync('ed25519').privateKey);
const HW = 'hw-0001:abc.def_9';
const REQUEST_NONCE = crypto.randomBytes(16).toString('base64url');

function payload(overrides: Partial<LicensePayload> = {}): LicensePayload {
  return {
    v: 1,
    product: 'ACME-CAD',
    licenseId: 12,
    licenseKey: '7KQ2-MX4P-0111-ZT9R-4HND-8QWE-3JVA',
    user: null,
    activationId: 34,
    hardwareId: HW,
    devicePublicKey: device.publicKeyString,
    requestNonce: REQUEST_NONCE,
    issuedAt: at(-60_000),
    counter: 0,
    licenseType: 'subscription',
    trial: false,
    startsAt: at(-10 * DAY),
    expiresAt: at(365 * DAY),
    leaseEndsAt: at(30 * DAY),
    maintenanceUntil: null,
    maxActivations: 3,
    floating: null,
    features: [
      { code: 'export', type: 'activation', maxConsumption: null },
      { code: 'render-minutes', type: 'consumption', maxConsumption: 600 },
    ],
    ...overrides,
  };
}

function sign(
  p: object,
  { typ = 'license' as EnvelopeType, key = active as { kid: string; privateKey: KeyObject } } = {},
): string {
  return signEnvelope(typ, key.kid, p, key.privateKey);
}

const options = (extra: Partial<VerifyLicenseOptions> = {}): VerifyLicenseOptions => ({
  trustedKeys,
  product: 'ACME-CAD',
  hardwareId: HW,
  devicePublicKey: device.publicKeyString,
  requestNonce: REQUEST_NONCE,
  now: NOW,
  ...extra,
});

function refusal(code: LicenseErrorCode) {
  return (err: unknown) => {
    assert.ok(err instanceof LicenseError, `expected a LicenseError, got ${String(err)}`);
    assert.equal(err.code, code, `expected code ${code}, got ${err.code}: ${err.message}`);
    assert.ok(err.message.length > 0);
    return true;
  };
}

function anyRefusal(err: unknown) {
  assert.ok(err instanceof LicenseError, `expected a LicenseError, got ${String(err)}`);
  return true;
}

describe('SDK: license files (sdk/src/license.ts)', () => {
  describe('verifyLicense accepts', () => {
    it('a license signed by the active key, bound to this product, machine, device key and request', () => {
      const info = verifyLicense(sign(payload()), options());
      assert.equal(info.typ, 'license');
      assert.equal(info.kid, active.kid);
      assert.deepEqual({ ...info, typ: undefined, kid: undefined }, { ...payload(), typ: undefined, kid: undefined });
    });

    it('a refresh file (same payload, typ refresh)', () => {
      assert.equal(verifyLicense(sign(payload({ counter: 1 }), { typ: 'refresh' }), options()).typ, 'refresh');
    });

    it('a file signed by an older key that is still trusted', () => {
      assert.equal(verifyLicense(sign(payload(), { key: older }), options()).kid, older.kid);
    });

    it('the device key as a KeyObject or PEM, and no request nonce when none is given', () => {
      const text = sign(payload());
      verifyLicense(text, options({ devicePublicKey: device.publicKey, requestNonce: undefined }));
      verifyLicense(
        text,
        options({ devicePublicKey: device.publicKey.export({ type: 'spki', format: 'pem' }).toString() }),
      );
    });

    it('no start, no expiry, a user-based license, floating, and fields a newer server adds (ignored)', () => {
      const info = verifyLicense(
        sign({
          ...payload({
            startsAt: null,
            expiresAt: null,
            licenseKey: null,
            user: 'alice@example.com',
            floating: { users: 5, timeoutMinutes: 30 },
          }),
          addedLater: { x: 1 },
        }),
        options(),
      );
      assert.equal(info.user, 'alice@example.com');
      assert.deepEqual(info.floating, { users: 5, timeoutMinutes: 30 });
      assert.equal('addedLater' in info, false);
    });

    it('an issue time within the allowed clock skew (default 300 s, configurable)', () => {
      verifyLicense(sign(payload({ issuedAt: at(299_000), startsAt: at(200_000) })), options());
      verifyLicense(sign(payload({ issuedAt: at(3_000_000) })), options({ skewSeconds: 3600 }));
    });

    it('an expired license when date checks are off (to deactivate or refresh it)', () => {
      const info = verifyLicense(
        sign(payload({ expiresAt: at(-DAY), leaseEndsAt: at(-DAY) })),
        options({ checkDates: false }),
      );
      assert.equal(info.expiresAt, at(-DAY));
    });
  });

  describe('verifyLicense refuses', () => {
    const cases: Array<[string, Partial<LicensePayload>, Partial<VerifyLicenseOptions>, LicenseErrorCode]> = [
      ['another product', { product: 'OTHER-APP' }, {}, 'product'],
      ['another hardware id', { hardwareId: 'hw-other' }, {}, 'hardware'],
      ['another device key', { devicePublicKey: otherDevice.publicKeyString }, {}, 'device_key'],
      ['another request', { requestNonce: crypto.randomBytes(16).toString('base64url') }, {}, 'nonce'],
      ['a start date not reached', { startsAt: at(DAY) }, {}, 'not_yet_valid'],
      ['an expired license', { expiresAt: at(-1000) }, {}, 'expired'],
      ['an expiry exactly now', { expiresAt: at(0) }, {}, 'expired'],
      ['an ended lease', { leaseEndsAt: at(-1000) }, {}, 'lease_expired'],
      ['an issue time beyond the skew', { issuedAt: at(301_000) }, {}, 'issued_in_future'],
      ['an issue time beyond a custom skew', { issuedAt: at(61_000) }, { skewSeconds: 60 }, 'issued_in_future'],
      ['payload version 2', { v: 2 as 1 }, {}, 'schema'],
      ['a license id that is a string', { licenseId: '12' as unknown as number }, {}, 'schema'],
      ['a negative counter', { counter: -1 }, {}, 'schema'],
      ['a fractional counter', { counter: 1.5 }, {}, 'schema'],
      ['trial as a string', { trial: 'no' as unknown as boolean }, {}, 'schema'],
      ['a date that is not ISO UTC', { expiresAt: '2027-01-01 00:00:00' }, {}, 'schema'],
      ['a date that does not exist', { leaseEndsAt: '2027-02-30T00:00:00.000Z' }, {}, 'schema'],
      ['a bad hardware id', { hardwareId: 'hw id with spaces' }, { hardwareId: 'hw id with spaces' }, 'schema'],
      ['a feature without a type', { features: [{ code: 'export' } as never] }, {}, 'schema'],
      ['floating without a timeout', { floating: { users: 2 } as never }, {}, 'schema'],
    ];
    for (const [name, change, extra, code] of cases) {
      it(`${name} (${code})`, () => {
        assert.throws(() => verifyLicense(sign(payload(change)), options(extra)), refusal(code));
      });
    }

    it('a payload missing a field (schema)', () => {
      const { leaseEndsAt: _, ...rest } = payload();
      assert.throws(() => verifyLicense(sign(rest), options()), refusal('schema'));
    });

    it('a file signed by a retired key (kid_unknown), also when it borrows a trusted kid (signature)', () => {
      assert.equal(trustedKeys.has(retired.kid), false);
      assert.throws(() => verifyLicense(sign(payload(), { key: retired }), options()), refusal('kid_unknown'));
      assert.throws(
        () => verifyLicense(sign(payload(), { key: { kid: active.kid, privateKey: retired.privateKey } }), options()),
        refusal('signature'),
      );
    });

    it('a deactivation request, an activation request or a receipt presented as a license (type)', () => {
      const license = verifyLicense(sign(payload()), options());
      const deactivation = createDeactivationRequest({ license, deviceKey: device, now: NOW }).text;
      const activation = createActivationRequest({
        product: 'ACME-CAD',
        licenseKey: 'K',
        hardwareId: HW,
        deviceKey: device,
        now: NOW,
      }).text;
      const receipt = sign(
        {
          v: 1,
          licenseId: 12,
          activationId: 34,
          hardwareId: HW,
          deactivationNonce: REQUEST_NONCE,
          deactivatedAt: at(0),
        },
        { typ: 'deactivation-receipt' },
      );
      for (const text of [deactivation, activation, receipt])
        assert.throws(() => verifyLicense(text, options()), refusal('type'));
    });

    it('a license presented as a deactivation request or as a receipt (type)', () => {
      const text = sign(payload());
      assert.throws(
        () => verifyDeviceSigned(text, 'deactivation-request'),
        (err: Error & { code?: string }) => err.code === 'type',
      );
      assert.throws(
        () => verifyDeactivationReceipt(text, { trustedKeys, license: payload(), nonce: REQUEST_NONCE }),
        refusal('type'),
      );
    });

    it('a license relabelled as another artifact (armor)', () => {
      const text = sign(payload()).replaceAll('PORTICO LICENSE', 'PORTICO REFRESH');
      assert.throws(() => verifyLicense(text, options()), refusal('armor'));
    });

    it('any byte of the payload, the signature or the kid changed', () => {
      const envelope = decodeEnvelope(sign(payload()));
      const flip = (bytes: Buffer, i: number) => {
        const copy = Buffer.from(bytes);
        copy[i] ^= 0x01;
        return copy;
      };
      for (let i = 0; i < envelope.payloadBytes.length; i++) {
        const text = encodeEnvelope({ ...envelope, payloadBytes: flip(envelope.payloadBytes, i) });
        assert.throws(() => verifyLicense(text, options()), refusal('signature'), `payload byte ${i}`);
      }
      for (let i = 0; i < envelope.signature.length; i++) {
        const text = encodeEnvelope({ ...envelope, signature: flip(envelope.signature, i) });
        assert.throws(() => verifyLicense(text, options()), refusal('signature'), `signature byte ${i}`);
      }
      for (let i = 0; i < envelope.kid.length; i++) {
        const kid = envelope.kid.slice(0, i) + (envelope.kid[i] === 'A' ? 'B' : 'A') + envelope.kid.slice(i + 1);
        assert.throws(
          () => verifyLicense(encodeEnvelope({ ...envelope, kid }), options()),
          refusal('kid_unknown'),
          `kid character ${i}`,
        );
      }
      // The kid of another trusted key: the signature is then checked with that key and fails.
      assert.throws(
        () => verifyLicense(encodeEnvelope({ ...envelope, kid: older.kid }), options()),
        refusal('signature'),
      );
    });

    it('any character of the armoured text changed', () => {
      const text = sign(payload());
      const lines = text.split('\n');
      for (let line = 1; line < lines.length - 2; line++) {
        for (let i = 0; i < lines[line].length; i++) {
          const c = lines[line][i];
          const changed = [...lines];
          changed[line] = lines[line].slice(0, i) + (c === 'A' ? 'B' : 'A') + lines[line].slice(i + 1);
          assert.throws(() => verifyLicense(changed.join('\n'), options()), anyRefusal, `line ${line}, column ${i}`);
        }
      }
    });
  });

  describe('applyRefresh', () => {
    const current = (): LicenseInfo => verifyLicense(sign(payload({ counter: 2 })), options());
    const refresh = (change: Partial<LicensePayload>) =>
      sign(payload({ counter: 3, issuedAt: at(0), leaseEndsAt: at(60 * DAY), ...change }), { typ: 'refresh' });
    const apply = (base: LicenseInfo, text: string) => applyRefresh(base, text, { trustedKeys, now: NOW });

    it('takes a newer file for the same activation, with its new entitlements', () => {
      const next = apply(current(), refresh({ features: [] }));
      assert.equal(next.counter, 3);
      assert.equal(next.leaseEndsAt, at(60 * DAY));
      assert.deepEqual(next.features, []);
    });

    it('renews a license whose lease has ended', () => {
      const expired = verifyLicense(
        sign(payload({ counter: 2, leaseEndsAt: at(-DAY) })),
        options({ checkDates: false }),
      );
      assert.equal(apply(expired, refresh({})).counter, 3);
    });

    it('refuses a file that is not newer (counter)', () => {
      assert.throws(() => apply(current(), refresh({ counter: 2 })), refusal('counter'));
      assert.throws(() => apply(current(), refresh({ counter: 1 })), refusal('counter'));
      assert.throws(() => apply(current(), sign(payload({ counter: 0 }))), refusal('counter'));
    });

    it('refuses a file for another activation, license, machine or device key', () => {
      assert.throws(() => apply(current(), refresh({ activationId: 35 })), refusal('activation'));
      assert.throws(() => apply(current(), refresh({ licenseId: 13 })), refusal('activation'));
      assert.throws(() => apply(current(), refresh({ hardwareId: 'hw-other' })), refusal('hardware'));
      assert.throws(
        () => apply(current(), refresh({ devicePublicKey: otherDevice.publicKeyString })),
        refusal('device_key'),
      );
      assert.throws(() => apply(current(), refresh({ product: 'OTHER-APP' })), refusal('product'));
    });

    it('refuses a refresh file that is itself expired or untrusted', () => {
      assert.throws(() => apply(current(), refresh({ leaseEndsAt: at(-1000) })), refusal('lease_expired'));
      assert.throws(
        () => apply(current(), sign(payload({ counter: 3 }), { typ: 'refresh', key: retired })),
        refusal('kid_unknown'),
      );
    });
  });

  describe('checkNotOlder: no file older than one installed, whichever way it is installed', () => {
    const file = (change: Partial<LicensePayload>) => {
      const text = sign(payload(change), { typ: change.counter ? 'refresh' : 'license' });
      return { text, info: verifyLicense(text, options({ requestNonce: undefined })) };
    };
    const install = (history: ReturnType<typeof checkNotOlder>, f: ReturnType<typeof file>) =>
      checkNotOlder(history, f.info, f.text);

    it('remembers the highest counter per activation and refuses lower ones, or the same counter saying something else', () => {
      const first = file({ counter: 0 });
      const third = file({ counter: 3 });
      let history = install(install([], first), third);
      assert.deepEqual(
        history.map((m) => [m.licenseId, m.activationId, m.counter, m.closed]),
        [[12, 34, 3, false]],
      );
      assert.match(history[0].payloadSha256, /^[0-9a-f]{64}$/);
      assert.throws(() => install(history, first), refusal('counter'));
      assert.throws(() => install(history, file({ counter: 2 })), refusal('counter'));
      assert.throws(() => install(history, file({ counter: 3, maxActivations: 9 })), refusal('counter'));
      assert.deepEqual(install(history, third), history, 'the same file again');
      history = install(history, file({ counter: 4 }));
      assert.equal(history[0].counter, 4);
      // Another activation (or license) has a history of its own.
      history = install(history, file({ activationId: 35 }));
      assert.deepEqual(
        history.map((m) => [m.activationId, m.counter]),
        [
          [34, 4],
          [35, 0],
        ],
      );
    });

    it('a deactivated activation is closed: none of its files, even newer ones, is installed again', () => {
      const third = file({ counter: 3 });
      const closed = closeActivation(
        checkNotOlder([], third.info, third.text),
        file({ counter: 0 }).info,
        file({ counter: 0 }).text,
      );
      assert.deepEqual(
        closed.map((m) => [m.counter, m.closed]),
        [[3, true]],
        'the highest counter is kept',
      );
      for (const counter of [0, 3, 7]) assert.throws(() => install(closed, file({ counter })), refusal('counter'));
      assert.equal(install(closed, file({ activationId: 99 })).length, 2);
      assert.deepEqual(
        closeActivation([], third.info, third.text).map((m) => [m.counter, m.closed]),
        [[3, true]],
      );
    });
  });

  describe('trustedKeysFromWellKnown', () => {
    it('keeps active and trusted keys, leaves retired ones out', () => {
      assert.deepEqual([...trustedKeys.keys()].sort(), [active.kid, older.kid].sort());
      assert.deepEqual(
        [...trustedKeysFromWellKnown(JSON.parse(wellKnown)).keys()].sort(),
        [active.kid, older.kid].sort(),
      );
    });

    it('refuses a document without usable keys, or with an x that contradicts the PEM', () => {
      assert.throws(() => trustedKeysFromWellKnown('{"keys":[]}'), refusal('schema'));
      assert.throws(() => trustedKeysFromWellKnown('not json'), refusal('json'));
      assert.throws(
        () => trustedKeysFromWellKnown({ keys: [{ kid: retired.kid, status: 'retired', pem: retired.pem }] }),
        refusal('schema'),
      );
      assert.throws(
        () => trustedKeysFromWellKnown({ keys: [{ kid: active.kid, status: 'active', pem: 'nope' }] }),
        refusal('key'),
      );
      assert.throws(
        () =>
          trustedKeysFromWellKnown({
            keys: [{ kid: active.kid, status: 'active', pem: active.pem, x: otherDevice.publicKeyString }],
          }),
        refusal('key'),
      );
    });
  });
});

describe('SDK: requests, receipts and the device (sdk/src/requests.ts, device.ts)', () => {
  it('makes an activation request signed by the device key', () => {
    const { text, nonce } = createActivationRequest({
      product: 'ACME-CAD',
      licenseKey: ' 7KQ2-MX4P ',
      hardwareId: HW,
      deviceKey: device,
      hostname: 'ws-12',
      os: 'Linux',
      appVersion: '2.1.0',
      now: NOW,
    });
    const verified = verifyDeviceSigned(text, 'activation-request');
    assert.equal(verified.kid, DEVICE_KID);
    assert.deepEqual(readActivationRequestPayload(verified.payload), {
      v: 1,
      product: 'ACME-CAD',
      licenseKey: '7KQ2-MX4P',
      user: null,
      hardwareId: HW,
      hostname: 'ws-12',
      os: 'Linux',
      appVersion: '2.1.0',
      devicePublicKey: device.publicKeyString,
      nonce,
      createdAt: NOW.toISOString(),
    });
    assert.match(nonce, /^[A-Za-z0-9_-]{22}$/);
  });

  it('refuses bad arguments (input)', () => {
    const base = { product: 'ACME-CAD', hardwareId: HW, deviceKey: device };
    assert.throws(() => createActivationRequest({ ...base }), refusal('input'));
    assert.throws(() => createActivationRequest({ ...base, licenseKey: 'K', user: 'a@example.com' }), refusal('input'));
    assert.throws(() => createActivationRequest({ ...base, user: 'not-an-email' }), refusal('input'));
    assert.throws(() => createActivationRequest({ ...base, licenseKey: 'K', hardwareId: '' }), refusal('input'));
    assert.throws(
      () => createActivationRequest({ ...base, licenseKey: 'K', hostname: 'h'.repeat(256) }),
      refusal('input'),
    );
    assert.throws(() => createActivationRequest({ ...base, licenseKey: 'K', product: 'bad code!' }), refusal('input'));
  });

  it('makes a deactivation request naming the activation, signed by the same key, with usage', () => {
    const license = verifyLicense(sign(payload()), options());
    const { text, nonce } = createDeactivationRequest({
      license,
      deviceKey: device,
      usage: [{ feature: 'render-minutes', amount: 42 }],
      now: NOW,
    });
    const p = readDeactivationRequestPayload(verifyDeviceSigned(text, 'deactivation-request').payload);
    assert.deepEqual(p, {
      v: 1,
      product: 'ACME-CAD',
      licenseId: 12,
      activationId: 34,
      hardwareId: HW,
      devicePublicKey: device.publicKeyString,
      activationNonce: REQUEST_NONCE,
      nonce,
      createdAt: NOW.toISOString(),
      usage: [{ feature: 'render-minutes', amount: 42 }],
    });
    assert.throws(() => createDeactivationRequest({ license, deviceKey: otherDevice }), refusal('device_key'));
    assert.throws(
      () => createDeactivationRequest({ license, deviceKey: device, usage: [{ feature: 'nope', amount: 1 }] }),
      refusal('input'),
    );
    assert.throws(
      () => createDeactivationRequest({ license, deviceKey: device, usage: [{ feature: 'export', amount: -1 }] }),
      refusal('input'),
    );
    assert.throws(
      () =>
        createDeactivationRequest({
          license,
          deviceKey: device,
          usage: [
            { feature: 'export', amount: 1 },
            { feature: 'export', amount: 2 },
          ],
        }),
      refusal('input'),
    );
  });

  it('verifies a deactivation receipt for that request only', () => {
    const license = verifyLicense(sign(payload()), options());
    const { nonce } = createDeactivationRequest({ license, deviceKey: device, now: NOW });
    const receipt = (change: object = {}, key = active) =>
      sign(
        {
          v: 1,
          licenseId: 12,
          activationId: 34,
          hardwareId: HW,
          deactivationNonce: nonce,
          deactivatedAt: at(0),
          ...change,
        },
        { typ: 'deactivation-receipt', key },
      );
    assert.equal(verifyDeactivationReceipt(receipt(), { trustedKeys, license, nonce }).deactivatedAt, at(0));
    assert.throws(
      () => verifyDeactivationReceipt(receipt({ deactivationNonce: REQUEST_NONCE }), { trustedKeys, license, nonce }),
      refusal('nonce'),
    );
    assert.throws(
      () => verifyDeactivationReceipt(receipt({ activationId: 99 }), { trustedKeys, license, nonce }),
      refusal('activation'),
    );
    assert.throws(
      () => verifyDeactivationReceipt(receipt({ hardwareId: 'hw-other' }), { trustedKeys, license, nonce }),
      refusal('hardware'),
    );
    assert.throws(
      () => verifyDeactivationReceipt(receipt({}, retired), { trustedKeys, license, nonce }),
      refusal('kid_unknown'),
    );
  });

  it('keeps the device key in a 0600 file inside a 0700 folder, made once', () => {
    const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'portico-sdk-')), 'state');
    try {
      const first = loadOrCreateDeviceKey(dir);
      const second = loadOrCreateDeviceKey(dir);
      assert.equal(first.publicKeyString, second.publicKeyString);
      assert.match(first.publicKeyString, /^[A-Za-z0-9_-]{43}$/);
      if (process.platform !== 'win32') {
        assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
        assert.equal(fs.statSync(path.join(dir, 'device-key.pem')).mode & 0o777, 0o600);
      }
      assert.match(fs.readFileSync(path.join(dir, 'device-key.pem'), 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
      assert.deepEqual(fs.readdirSync(dir), ['device-key.pem']);
    } finally {
      fs.rmSync(path.dirname(dir), { recursive: true, force: true });
    }
  });

  it('derives a stable hardware id in the request alphabet', () => {
    assert.equal(hardwareId(), hardwareId());
    assert.match(hardwareId(), /^[0-9a-f]{32}$/);
  });
});
