import assert from 'node:assert/strict';
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DEVICE_KID,
  ENVELOPE_LIMITS,
  EnvelopeError,
  armorLabel,
  decodeEnvelope,
  devicePublicKeyString,
  encodeEnvelope,
  signEnvelope,
  signingInput,
  verifyDeviceSigned,
  verifyEnvelope,
  type EnvelopeErrorCode,
  type EnvelopeType,
} from '../../sdk/src/index.ts';
import type { LicensePayload } from '../../sdk/src/payloads.ts';
import { createSigner, trustedKeyMap, UnsignablePayloadError } from '../../app/services/signer.ts';
import { activate as activateKey, retire as retireKey } from '../../app/models/signing-keys.ts';
import { generateSigningKey } from '../../app/services/signing-keys.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

const KID = 'ed25519-testkey000000000';
const server = crypto.generateKeyPairSync('ed25519');
const trusted = new Map<string, KeyObject | string>([[KID, server.publicKey]]);
const licensePayload = {
  product: 'ACME-CAD',
  licenseKey: '7KQ2-MX4P-0111',
  hardwareId: 'c0ffee42',
  features: [{ code: 'export', name: 'Éxport' }],
};

function refusal(code: EnvelopeErrorCode) {
  return (err: unknown) => {
    assert.ok(err instanceof EnvelopeError, `expected an EnvelopeError, got ${String(err)}`);
    assert.equal(err.code, code, `expected code ${code}, got ${err.code}: ${err.message}`);
    assert.ok(err.message.length > 0);
    return true;
  };
}

/** Armour around arbitrary envelope JSON text (or bytes), as an attacker could write it. */
function armour(label: string, json: string | Buffer): string {
  const lines =
    Buffer.from(json)
      .toString('base64')
      .match(/.{1,64}/g) ?? [];
  return [`-----BEGIN PORTICO ${label}-----`, ...lines, `-----END PORTICO ${label}-----`, ''].join('\n');
}

function envelopeJson(text: string): Record<string, unknown> {
  const body = text
    .split('\n')
    .filter((l) => l && !l.startsWith('-----'))
    .join('');
  return JSON.parse(Buffer.from(body, 'base64').toString('utf8'));
}

/** An envelope whose payload bytes are exactly `payloadText`, properly signed. */
function signRaw(typ: EnvelopeType, payloadText: string, key = server.privateKey, kid = KID): string {
  const payloadBytes = Buffer.from(payloadText, 'utf8');
  return encodeEnvelope({
    typ,
    kid,
    payloadBytes,
    signature: crypto.sign(null, signingInput(typ, kid, payloadBytes), key),
  });
}

const verifyLicense = (text: string | Uint8Array) =>
  verifyEnvelope(text, { expectedType: 'license', trustedKeys: trusted });

describe('artifact envelope (sdk/src/envelope.ts)', () => {
  describe('round trip', () => {
    it('signs, armours and verifies, returning the payload', () => {
      const text = signEnvelope('license', KID, licensePayload, server.privateKey);
      assert.match(
        text,
        /^-----BEGIN PORTICO LICENSE-----\n([A-Za-z0-9+/=]{64}\n)*[A-Za-z0-9+/=]{1,64}\n-----END PORTICO LICENSE-----\n$/,
      );
      assert.deepEqual(Object.keys(envelopeJson(text)), ['v', 'typ', 'alg', 'kid', 'payload', 'sig']);
      assert.deepEqual(verifyLicense(text), { typ: 'license', kid: KID, payload: licensePayload });
    });

    it('accepts PEM keys as well as KeyObjects', () => {
      const pemPrivate = server.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      const pemPublic = server.publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const text = signEnvelope('refresh', KID, { n: 1 }, pemPrivate);
      assert.deepEqual(
        verifyEnvelope(text, { expectedType: 'refresh', trustedKeys: new Map([[KID, pemPublic]]) }).payload,
        { n: 1 },
      );
    });

    it('derives the armour label from the type', () => {
      assert.equal(armorLabel('activation-request'), 'ACTIVATION REQUEST');
      assert.equal(armorLabel('deactivation-receipt'), 'DEACTIVATION RECEIPT');
      assert.match(
        signEnvelope('activation-request', KID, {}, server.privateKey),
        /^-----BEGIN PORTICO ACTIVATION REQUEST-----\n/,
      );
    });

    it('parses armour with CRLF line endings, indentation, other line widths and text around it', () => {
      const text = signEnvelope('license', KID, licensePayload, server.privateKey);
      const body = text
        .split('\n')
        .slice(1, -2)
        .join('')
        .match(/.{1,40}/g)!
        .map((l) => `  ${l} `);
      const mangled = [
        'Dear customer,',
        '',
        'here is your license:',
        '-----BEGIN PORTICO LICENSE-----',
        ...body,
        '-----END PORTICO LICENSE-----',
        '',
        'Regards',
      ].join('\r\n');
      assert.deepEqual(verifyLicense(`\n\t ${mangled}\r\n\r\n`).payload, licensePayload);
      assert.deepEqual(verifyLicense(Buffer.from(mangled)).payload, licensePayload);
    });
  });

  describe('tampering', () => {
    const text = signEnvelope('license', KID, licensePayload, server.privateKey);
    const decoded = decodeEnvelope(text);

    it('flipping any single byte of the payload breaks the signature', () => {
      for (let i = 0; i < decoded.payloadBytes.length; i++) {
        const payloadBytes = Buffer.from(decoded.payloadBytes);
        payloadBytes[i] ^= 0x01;
        assert.throws(
          () => verifyLicense(encodeEnvelope({ ...decoded, payloadBytes })),
          refusal('signature'),
          `payload byte ${i}`,
        );
      }
    });

    it('flipping any single byte of the signature breaks it', () => {
      for (let i = 0; i < decoded.signature.length; i++) {
        const signature = Buffer.from(decoded.signature);
        signature[i] ^= 0x80;
        assert.throws(
          () => verifyLicense(encodeEnvelope({ ...decoded, signature })),
          refusal('signature'),
          `signature byte ${i}`,
        );
      }
    });

    it('the kid is signed: any changed kid fails even when it names the same key', () => {
      for (let i = 0; i < KID.length; i++) {
        const kid = KID.slice(0, i) + String.fromCharCode(KID.charCodeAt(i) ^ 0x01) + KID.slice(i + 1);
        const keys = new Map(trusted).set(kid, server.publicKey);
        const tampered = encodeEnvelope({ ...decoded, kid });
        const valid = /^[A-Za-z0-9_-]+$/.test(kid);
        assert.throws(
          () => verifyEnvelope(tampered, { expectedType: 'license', trustedKeys: keys }),
          refusal(valid ? 'signature' : 'schema'),
          `kid ${kid}`,
        );
      }
    });

    it('changing any single character of the armoured text is refused', () => {
      const lines = text.split('\n');
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
      for (let l = 1; l < lines.length - 2; l++) {
        for (let c = 0; c < lines[l].length; c++) {
          const ch = lines[l][c];
          if (ch === '=') continue;
          const other = alphabet[(alphabet.indexOf(ch) + 1) % 64];
          const copy = [...lines];
          copy[l] = copy[l].slice(0, c) + other + copy[l].slice(c + 1);
          assert.throws(() => verifyLicense(copy.join('\n')), EnvelopeError, `line ${l} column ${c}`);
        }
      }
    });
  });

  describe('types and keys', () => {
    it('a deactivation request is not accepted where a license is expected, nor the reverse', () => {
      const license = signEnvelope('license', KID, licensePayload, server.privateKey);
      const request = signEnvelope('deactivation-request', KID, licensePayload, server.privateKey);
      assert.throws(() => verifyLicense(request), refusal('type'));
      assert.throws(
        () => verifyEnvelope(license, { expectedType: 'deactivation-request', trustedKeys: trusted }),
        refusal('type'),
      );
      assert.equal(
        verifyEnvelope(request, { expectedType: ['license', 'deactivation-request'], trustedKeys: trusted }).typ,
        'deactivation-request',
      );
    });

    it('relabelling the type (armour and typ both) breaks the signature', () => {
      const request = decodeEnvelope(signEnvelope('deactivation-request', KID, licensePayload, server.privateKey));
      assert.throws(() => verifyLicense(encodeEnvelope({ ...request, typ: 'license' })), refusal('signature'));
    });

    it('the armour label must match the type inside', () => {
      const request = signEnvelope('deactivation-request', KID, licensePayload, server.privateKey);
      const relabelled = request.replaceAll('PORTICO DEACTIVATION REQUEST', 'PORTICO LICENSE');
      assert.throws(() => verifyLicense(relabelled), refusal('armor'));
    });

    it('an unknown kid is refused', () => {
      const other = crypto.generateKeyPairSync('ed25519');
      assert.throws(
        () => verifyLicense(signEnvelope('license', 'ed25519-someoneelse', licensePayload, other.privateKey)),
        refusal('kid_unknown'),
      );
    });

    it('a known kid with another key behind it fails the signature', () => {
      const other = crypto.generateKeyPairSync('ed25519');
      assert.throws(
        () => verifyLicense(signEnvelope('license', KID, licensePayload, other.privateKey)),
        refusal('signature'),
      );
    });

    it('refuses keys that are not Ed25519', () => {
      const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
      assert.throws(() => signEnvelope('license', KID, {}, rsa.privateKey), refusal('key'));
      assert.throws(() => signEnvelope('license', KID, {}, server.publicKey), refusal('key'));
      const text = signEnvelope('license', KID, {}, server.privateKey);
      assert.throws(
        () => verifyEnvelope(text, { expectedType: 'license', trustedKeys: new Map([[KID, rsa.publicKey]]) }),
        refusal('key'),
      );
    });
  });

  describe('device-signed envelopes', () => {
    const device = crypto.generateKeyPairSync('ed25519');
    const devicePublicKey = devicePublicKeyString(device.publicKey);
    const request = { nonce: 'n-1', hardwareId: 'c0ffee42', devicePublicKey };

    it('publish the device key as 43 base64url characters (raw 32 bytes)', () => {
      assert.match(devicePublicKey, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(devicePublicKeyString(device.privateKey), devicePublicKey);
    });

    it('verify with the key in their own payload', () => {
      const text = signEnvelope('activation-request', DEVICE_KID, request, device.privateKey);
      assert.deepEqual(verifyDeviceSigned(text, 'activation-request'), {
        typ: 'activation-request',
        kid: DEVICE_KID,
        payload: request,
      });
      assert.throws(() => verifyDeviceSigned(text, 'deactivation-request'), refusal('type'));
    });

    it('fail when the payload names another key than the one that signed', () => {
      const other = crypto.generateKeyPairSync('ed25519');
      const forged = { ...request, devicePublicKey: devicePublicKeyString(other.publicKey) };
      assert.throws(() => signEnvelope('activation-request', DEVICE_KID, forged, device.privateKey), refusal('key'));
      assert.throws(
        () =>
          verifyDeviceSigned(
            signRaw('activation-request', JSON.stringify(forged), device.privateKey, DEVICE_KID),
            'activation-request',
          ),
        refusal('signature'),
      );
    });

    it('refuse a missing or malformed devicePublicKey', () => {
      const sign = (payload: object) =>
        signRaw('deactivation-request', JSON.stringify(payload), device.privateKey, DEVICE_KID);
      assert.throws(() => verifyDeviceSigned(sign({ nonce: 'x' }), 'deactivation-request'), refusal('schema'));
      assert.throws(
        () => verifyDeviceSigned(sign({ devicePublicKey: `${devicePublicKey}A` }), 'deactivation-request'),
        refusal('base64'),
      );
      assert.throws(
        () => verifyDeviceSigned(sign({ devicePublicKey: `${devicePublicKey.slice(0, 42)}z` }), 'deactivation-request'),
        EnvelopeError,
      );
    });

    it('never pass for server-signed envelopes, nor the reverse', () => {
      const text = signEnvelope('activation-request', DEVICE_KID, request, device.privateKey);
      const keys = new Map([[DEVICE_KID, device.publicKey]]);
      assert.throws(
        () => verifyEnvelope(text, { expectedType: 'activation-request', trustedKeys: keys }),
        refusal('kid_unknown'),
      );
      assert.throws(
        () => verifyDeviceSigned(signEnvelope('license', KID, request, server.privateKey), 'license'),
        refusal('kid_unknown'),
      );
    });
  });

  describe('hostile input', () => {
    const good = envelopeJson(signEnvelope('license', KID, licensePayload, server.privateKey));
    const withFields = (fields: Record<string, unknown>) => armour('LICENSE', JSON.stringify({ ...good, ...fields }));

    it('refuses text without (or with broken or doubled) armour', () => {
      const text = signEnvelope('license', KID, licensePayload, server.privateKey);
      assert.throws(() => verifyLicense('hello'), refusal('armor'));
      assert.throws(() => verifyLicense(text.replace('-----END PORTICO LICENSE-----', '')), refusal('armor'));
      assert.throws(
        () => verifyLicense(text.replace('-----END PORTICO LICENSE-----', '-----END PORTICO REFRESH-----')),
        refusal('armor'),
      );
      assert.throws(() => verifyLicense(text + text), refusal('armor'));
      assert.throws(
        () => verifyLicense('-----BEGIN PORTICO LICENSE-----\n-----END PORTICO LICENSE-----\n'),
        refusal('armor'),
      );
      assert.throws(() => verifyLicense(text.replaceAll('PORTICO LICENSE', 'PORTICO BANANA')), refusal('type'));
    });

    it('refuses bad or non-canonical base64 in the armour', () => {
      const text = signEnvelope('license', KID, licensePayload, server.privateKey);
      const lines = text.split('\n');
      assert.throws(
        () => verifyLicense(text.replace(lines[1], `${lines[1].slice(0, 10)}*${lines[1].slice(11)}`)),
        refusal('base64'),
      );
      assert.throws(() => verifyLicense(text.replace(lines[1], lines[1].replace(/[A-Za-z]/, '-'))), refusal('base64'));
      // "e30=" is "{}"; "e31=" decodes to the same bytes with a non-zero unused bit.
      assert.throws(() => verifyLicense(armour('LICENSE', '{}').replace('e30=', 'e31=')), refusal('base64'));
      assert.throws(() => verifyLicense(armour('LICENSE', '{}').replace('e30=', 'e30')), refusal('base64'));
    });

    it('refuses bad base64url and wrong lengths in payload and sig', () => {
      assert.throws(() => verifyLicense(withFields({ payload: `${good.payload}=` })), refusal('base64'));
      assert.throws(
        () => verifyLicense(withFields({ payload: `${good.payload}`.replace(/.$/, '+') })),
        refusal('base64'),
      );
      assert.throws(() => verifyLicense(withFields({ sig: `${good.sig}`.slice(0, 84) })), refusal('base64'));
      assert.throws(() => verifyLicense(withFields({ sig: `${good.sig}AA` })), refusal('base64'));
      // The last character of a 64-byte signature carries 4 unused bits: they must be zero.
      const sig = String(good.sig);
      const last = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.indexOf(sig.at(-1)!);
      const noisy = sig.slice(0, -1) + 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[last | 1];
      assert.throws(() => verifyLicense(withFields({ sig: noisy })), refusal('base64'));
    });

    it('refuses what is not strict JSON or not UTF-8', () => {
      assert.throws(() => verifyLicense(armour('LICENSE', 'not json')), refusal('json'));
      assert.throws(() => verifyLicense(armour('LICENSE', `${JSON.stringify(good)} x`)), refusal('json'));
      assert.throws(
        () => verifyLicense(armour('LICENSE', JSON.stringify(good).replace('{', "{'a':1,"))),
        refusal('json'),
      );
      assert.throws(
        () =>
          verifyLicense(
            armour('LICENSE', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(good))])),
          ),
        refusal('json'),
      );
      assert.throws(() => verifyLicense(armour('LICENSE', Buffer.from([0x7b, 0xff, 0x7d]))), refusal('json'));
      assert.throws(() => verifyLicense(signRaw('license', '{"a":1e999}')), refusal('json'));
      assert.throws(() => verifyLicense(signRaw('license', '{"a":01}')), refusal('json'));
      assert.throws(() => verifyLicense(signRaw('license', '{"a":"\u0001"}')), refusal('json'));
      assert.throws(() => verifyLicense(signRaw('license', '{"a":"\\x41"}')), refusal('json'));
    });

    it('refuses __proto__, constructor and prototype keys anywhere, even under a valid signature', () => {
      assert.throws(
        () => verifyLicense(armour('LICENSE', JSON.stringify(good).replace('{', '{"__proto__":{"admin":true},'))),
        refusal('json'),
      );
      assert.throws(() => verifyLicense(signRaw('license', '{"__proto__":{"admin":true}}')), refusal('json'));
      assert.throws(
        () => verifyLicense(signRaw('license', '{"a":[{"b":{"constructor":{"prototype":1}}}]}')),
        refusal('json'),
      );
      assert.throws(() => verifyLicense(signRaw('license', '{"prototype":1}')), refusal('json'));
      assert.throws(() => verifyLicense(signRaw('license', '{"\\u005f_proto__":1}')), refusal('json'));
      assert.throws(
        () => signEnvelope('license', KID, JSON.parse('{"__proto__":{"admin":true}}'), server.privateKey),
        refusal('json'),
      );
      assert.equal(({} as Record<string, unknown>).admin, undefined);
    });

    it('refuses duplicate keys', () => {
      assert.throws(
        () => verifyLicense(armour('LICENSE', JSON.stringify(good).replace('{', '{"kid":"x",'))),
        refusal('json'),
      );
      assert.throws(() => verifyLicense(signRaw('license', '{"hardwareId":"a","hardwareId":"b"}')), refusal('json'));
    });

    it('refuses nesting deeper than the limit', () => {
      const deep = (n: number) => `${'{"a":'.repeat(n - 1)}{}${'}'.repeat(n - 1)}`;
      assert.equal(
        Object.keys(verifyLicense(signRaw('license', deep(ENVELOPE_LIMITS.payloadDepth))).payload).length,
        1,
      );
      assert.throws(() => verifyLicense(signRaw('license', deep(ENVELOPE_LIMITS.payloadDepth + 1))), refusal('json'));
      assert.throws(
        () => verifyLicense(signRaw('license', `{"a":${'['.repeat(10_000)}${']'.repeat(10_000)}}`)),
        refusal('json'),
      );
      assert.throws(() => verifyLicense(withFields({ kid: { nested: true } })), refusal('json'));
    });

    it('refuses envelopes of the wrong shape', () => {
      const { v: _v, ...withoutV } = good;
      const { sig: _sig, ...withoutSig } = good;
      assert.throws(() => verifyLicense(armour('LICENSE', '[]')), refusal('schema'));
      assert.throws(() => verifyLicense(armour('LICENSE', JSON.stringify(withoutV))), refusal('schema'));
      assert.throws(() => verifyLicense(armour('LICENSE', JSON.stringify(withoutSig))), refusal('schema'));
      assert.throws(() => verifyLicense(withFields({ v: '1' })), refusal('schema'));
      assert.throws(() => verifyLicense(withFields({ v: 2 })), refusal('version'));
      assert.throws(() => verifyLicense(withFields({ extra: 1 })), refusal('schema'));
      assert.throws(() => verifyLicense(withFields({ alg: 'RS256' })), refusal('schema'));
      assert.throws(() => verifyLicense(withFields({ kid: 'a\nb' })), refusal('schema'));
      assert.throws(() => verifyLicense(withFields({ kid: 5 })), refusal('schema'));
      assert.throws(() => verifyLicense(withFields({ typ: 'banana' })), refusal('type'));
      assert.throws(() => verifyLicense(signRaw('license', '[1]')), refusal('schema'));
      assert.throws(() => verifyLicense(signRaw('license', '"text"')), refusal('schema'));
    });

    it('refuses oversize input before decoding it', () => {
      const text = signEnvelope('license', KID, licensePayload, server.privateKey);
      const padded = 'x'.repeat(ENVELOPE_LIMITS.armoredChars) + text;
      assert.throws(() => verifyLicense(padded), refusal('too_large'));
      assert.throws(() => verifyLicense(Buffer.from(padded)), refusal('too_large'));
      assert.throws(
        () => verifyLicense(signRaw('license', JSON.stringify({ a: 'x'.repeat(ENVELOPE_LIMITS.payloadBytes) }))),
        refusal('too_large'),
      );
      assert.throws(
        () => signEnvelope('license', KID, { a: 'x'.repeat(ENVELOPE_LIMITS.payloadBytes) }, server.privateKey),
        refusal('too_large'),
      );
      assert.ok(
        verifyLicense(
          signEnvelope('license', KID, { a: 'x'.repeat(ENVELOPE_LIMITS.payloadBytes - 10) }, server.privateKey),
        ),
      );
    });
  });
});

describe('server-signed envelopes (app/services/signer.ts)', () => {
  let database: TestDatabase;
  let dataDir: string;

  before(async () => {
    database = await createTestDatabase();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-envelope-'));
  });

  after(async () => {
    await database?.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  // A payload the SDK's license reader accepts (the signer refuses anything else).
  const signedPayload: LicensePayload = {
    v: 1,
    product: 'ACME-CAD',
    licenseId: 7,
    licenseKey: '7KQ2-MX4P-0111-AAAA-BBBB-CCCC-DDDD',
    user: null,
    activationId: 3,
    hardwareId: 'c0ffee42',
    devicePublicKey: 'A'.repeat(43),
    requestNonce: 'A'.repeat(22),
    issuedAt: '2025-01-01T00:00:00.000Z',
    counter: 0,
    licenseType: 'perpetual',
    trial: false,
    startsAt: null,
    expiresAt: null,
    leaseEndsAt: '2025-01-31T00:00:00.000Z',
    maintenanceUntil: null,
    maxActivations: 2,
    floating: null,
    features: [],
  };

  it('sign with the active key; trust active and trusted keys, never retired ones', async () => {
    const { db } = database;
    const t0 = new Date('2025-01-01T00:00:00Z');
    const first = await generateSigningKey(db, dataDir, t0, 'active');
    const licenseByFirst = await createSigner(dataDir).license(db, 'license', signedPayload);
    assert.equal(decodeEnvelope(licenseByFirst).kid, first.kid);

    const second = await generateSigningKey(db, dataDir, new Date('2025-02-01T00:00:00Z'), 'trusted');
    assert.ok(await activateKey(db, second.kid, new Date('2025-02-02T00:00:00Z')));
    const licenseBySecond = await createSigner(dataDir).license(db, 'license', signedPayload);
    assert.equal(decodeEnvelope(licenseBySecond).kid, second.kid);

    // After the rotation the first key is still trusted: what it signed still verifies.
    let keys = await trustedKeyMap(db);
    assert.deepEqual([...keys.keys()].sort(), [first.kid, second.kid].sort());
    assert.deepEqual(
      verifyEnvelope(licenseByFirst, { expectedType: 'license', trustedKeys: keys }).payload,
      signedPayload,
    );

    const third = await generateSigningKey(db, dataDir, new Date('2025-03-01T00:00:00Z'), 'trusted');
    assert.ok(await activateKey(db, third.kid, new Date('2025-03-02T00:00:00Z')));
    assert.ok(await retireKey(db, first.kid, new Date('2025-03-03T00:00:00Z')));
    keys = await trustedKeyMap(db);
    assert.throws(
      () => verifyEnvelope(licenseByFirst, { expectedType: 'license', trustedKeys: keys }),
      refusal('kid_unknown'),
    );
    assert.deepEqual(
      verifyEnvelope(licenseBySecond, { expectedType: 'license', trustedKeys: keys }).payload,
      signedPayload,
    );
    assert.equal(
      decodeEnvelope(await createSigner(dataDir).license(db, 'refresh', { ...signedPayload, counter: 2 })).kid,
      third.kid,
    );
  });

  it('never signs a license payload the SDK would refuse', async () => {
    const signer = createSigner(dataDir);
    await assert.rejects(
      signer.license(database.db, 'license', { ...signedPayload, devicePublicKey: '' }),
      UnsignablePayloadError,
    );
    await assert.rejects(
      signer.license(database.db, 'refresh', { ...signedPayload, counter: -1 }),
      UnsignablePayloadError,
    );
  });
});
