import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  AIRGAP_BITS,
  AIRGAP_LEGACY_BITS,
  AirgapError,
  CodeError,
  airgapActivationMessage,
  airgapCommitment,
  airgapExpiresDay,
  airgapExpiryDate,
  airgapHour,
  airgapHourDate,
  confirmationCode,
  createAirgapRequest,
  createDeactivationCode,
  createLegacyDeactivationCode,
  decodeCode,
  encodeActivationCode,
  encodeCode,
  hardwareHash,
  legacyAirgapSecret,
  legacyConfirmationCode,
  legacyDeactivationTagValid,
  normaliseLicenseKey,
  parseActivationCode,
  parseAirgapRequest,
  parseDeactivationCode,
  productHash,
  verifyActivationCode,
  verifyConfirmationCode,
  verifyLegacyActivationCode,
  verifyLegacyConfirmationCode,
  type AirgapErrorCode,
  type AirgapRequest,
  type LegacyAirgapRequest,
} from '../../sdk/src/index.ts';
import { initArgs, ok, runDevice } from '../helpers/cli.ts';

/** The air-gap artifacts (sdk/src/airgap.ts) with real keys, and the portico-device air-gap commands. */

const DAY = 86_400_000;

const server = crypto.generateKeyPairSync('ed25519');
const otherServer = crypto.generateKeyPairSync('ed25519');
const KID = 'ed25519-airgapTestKey000';
const trustedKeys = new Map<string, crypto.KeyObject | string>([
  ['ed25519-someOtherKey0000', otherServer.publicKey],
  [KID, server.publicKey.export({ type: 'spki', format: 'pem' }).toString()],
]);

interface Grant {
  expiresDay: number;
  features: number;
}

/** What the portal does: sign the message for this request and license key, encode the answer. */
function activationCodeFor(
  request: Pick<AirgapRequest, 'product' | 'hardwareHash' | 'commitment'>,
  licenseKey: string,
  grant: Grant,
  key = server.privateKey,
) {
  const message = airgapActivationMessage({
    ...grant,
    productCode: request.product,
    hardwareHash: request.hardwareHash,
    commitment: request.commitment,
    licenseKey,
  });
  const signature = crypto.sign(null, message, key);
  return { code: encodeActivationCode({ ...grant, signature }), signature };
}

/**
 * What a version 1 portal answered (the SDK no longer makes these): written here from the
 * documented layout, 2 | 28 | 16 | 8 | 512 bits, and message.
 */
function legacyActivationCodeFor(
  request: LegacyAirgapRequest,
  licenseKey: string,
  grant: Grant & { activationId: number },
) {
  const message = [
    'PORTICO-AIRGAP-V1',
    'activation',
    request.product,
    request.hardwareHash,
    request.nonce,
    normaliseLicenseKey(licenseKey),
    grant.activationId,
    grant.expiresDay,
    grant.features,
  ].join('\n');
  const signature = crypto.sign(null, Buffer.from(message, 'ascii'), server.privateKey);
  let bits =
    (((((1n << 28n) | BigInt(grant.activationId)) << 16n) | BigInt(grant.expiresDay)) << 8n) | BigInt(grant.features);
  bits = (bits << 512n) | BigInt(`0x${signature.toString('hex')}`);
  const bytes = Buffer.from((bits << 2n).toString(16).padStart(142, '0'), 'hex'); // 566 bits, 2 zero bits of padding
  return { code: encodeCode('activation', bytes, AIRGAP_LEGACY_BITS.activation), signature };
}

function refusal(fn: () => unknown): AirgapError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof AirgapError && err instanceof CodeError, `not an AirgapError: ${String(err)}`);
    return err;
  }
  assert.fail('accepted');
}

describe('air-gap artifacts (sdk/src/airgap.ts)', () => {
  const grant: Grant = { expiresDay: airgapExpiresDay(new Date(Date.now() + 365 * DAY)), features: 0b101 };

  it('a request code carries product, hardware, the commitment to a new secret, and the hour', () => {
    const now = new Date('2026-03-15T10:42:00Z');
    const { code, request, secret } = createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-1', now });
    assert.deepEqual(Object.keys(request).sort(), ['commitment', 'hardwareHash', 'hour', 'product', 'productHash']);
    assert.equal(
      request.productHash,
      crypto.createHash('sha256').update('portico-product:ACME-CAD').digest().readUIntBE(0, 3) >> 4,
    );
    assert.equal(request.productHash, productHash('ACME-CAD'));
    assert.equal(
      request.hardwareHash,
      crypto.createHash('sha256').update('portico-hardware:hw-1').digest('hex').slice(0, 10),
    );
    assert.equal(request.hardwareHash, hardwareHash('hw-1'));
    assert.match(secret, /^[0-9a-f]{20}$/);
    const text = `PORTICO-AIRGAP-V2\ncommitment\n${request.productHash}\n${request.hardwareHash}\n${secret}`;
    assert.equal(request.commitment, crypto.createHash('sha256').update(text).digest('hex').slice(0, 20));
    assert.equal(request.commitment, airgapCommitment({ ...request, secret }));
    assert.equal(request.commitment, airgapCommitment({ ...request, secret: Buffer.from(secret, 'hex') }));
    assert.equal(request.hour, (31 + 28 + 14) * 24 + 10);
    const parsed = parseAirgapRequest(code.toLowerCase(), now);
    assert.deepEqual(parsed, {
      productHash: request.productHash,
      hardwareHash: request.hardwareHash,
      commitment: request.commitment,
      hour: request.hour,
      issuedAt: new Date('2026-03-15T10:00:00Z'),
    });
    // The first 4 bits are the version, 2; the secret itself is nowhere in the code.
    const bytes = Buffer.from(decodeCode('request', code, AIRGAP_BITS.request));
    assert.equal(bytes[0] >> 4, 2);
    assert.equal(bytes.toString('hex').includes(secret.slice(1, 19)), false);
    // A new secret, so a new commitment, for every request code.
    const again = createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-1', now });
    assert.notEqual(again.secret, secret);
    assert.notEqual(again.request.commitment, request.commitment);
    const fixed = createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-1', now, secret: Buffer.alloc(10, 9) });
    assert.equal(fixed.secret, '09'.repeat(10));
    assert.equal(refusal(() => createAirgapRequest({ product: 'ACME CAD', hardwareId: 'hw-1' })).code, 'input');
    assert.equal(refusal(() => createAirgapRequest({ product: 'ACME-CAD', hardwareId: '' })).code, 'input');
    assert.equal(
      refusal(() => createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-1', secret: Buffer.alloc(16) })).code,
      'input',
    );
  });

  it('the commitment depends on every input', () => {
    const base = { productHash: 0x81201, hardwareHash: '164ed14fa3', secret: '00112233445566778899' };
    const commitment = airgapCommitment(base);
    assert.match(commitment, /^[0-9a-f]{20}$/);
    assert.notEqual(airgapCommitment({ ...base, productHash: 0x81200 }), commitment);
    assert.notEqual(airgapCommitment({ ...base, hardwareHash: '164ed14fa2' }), commitment);
    assert.notEqual(airgapCommitment({ ...base, secret: '00112233445566778898' }), commitment);
    assert.equal(
      refusal(() => airgapCommitment({ ...base, secret: 'ABCDEF0123ABCDEF0123' })).code,
      'input',
      'hex is lowercase',
    );
    assert.equal(refusal(() => airgapCommitment({ ...base, hardwareHash: 'xyz' })).code, 'input');
    assert.equal(refusal(() => airgapCommitment({ ...base, productHash: 2 ** 20 })).code, 'input');
  });

  it('a version 1 request code (an application not yet updated) is refused as outdated', () => {
    const v1 = '30906-25JER-T57TV-6093A-8NKRB-KAR3R-X0N'; // the example of the version 1 documentation
    const err = refusal(() => parseAirgapRequest(v1));
    assert.equal(err.code, 'outdated');
    assert.match(
      err.message,
      /older version of the application \(air-gap codes version 1\); update the application and make a new request code/,
    );
    // A typo in it is still a typo first, with its group.
    const typo = refusal(() => parseAirgapRequest(v1.replace('25JER', '25JFR')));
    assert.equal(typo.code, 'typo');
    assert.equal(typo.group, 2);
  });

  it('the hour wraps every 65536 hours and is read back as the one nearest now', () => {
    assert.equal(airgapHour(new Date('2026-01-01T00:59:59Z')), 0);
    assert.equal(airgapHour(new Date('2025-12-31T23:00:00Z')), 65535);
    const later = new Date(Date.UTC(2026, 0, 1) + 65536 * 3_600_000 + 5 * 3_600_000);
    assert.equal(airgapHour(later), 5);
    assert.equal(airgapHourDate(5, later).getTime(), later.getTime());
    assert.equal(
      airgapHourDate(65535, later).toISOString(),
      new Date(Date.UTC(2026, 0, 1) + 65535 * 3_600_000).toISOString(),
    );
  });

  it('expiry days: whole days since 2020-01-01, rounded up, 0 = never', () => {
    assert.equal(airgapExpiresDay(null), 0);
    assert.equal(airgapExpiresDay(new Date('2020-01-02T00:00:00Z')), 1);
    assert.equal(airgapExpiresDay(new Date('2030-01-01T00:00:00Z')), 3653);
    assert.equal(airgapExpiresDay(new Date('2030-01-01T00:00:01Z')), 3654);
    assert.equal(airgapExpiryDate(3653)?.toISOString(), '2030-01-01T00:00:00.000Z');
    assert.equal(airgapExpiryDate(0), null);
  });

  it('the signed message is the documented text, with the license key normalised', () => {
    const message = airgapActivationMessage({
      productCode: 'ACME-CAD',
      hardwareHash: '0123456789',
      commitment: 'abcdef0123456789abcd',
      licenseKey: ' 7kq2 mx4p-oil1 ',
      expiresDay: 3653,
      features: 5,
    });
    assert.equal(
      message.toString('ascii'),
      'PORTICO-AIRGAP-V2\nactivation\nACME-CAD\n0123456789\nabcdef0123456789abcd\n7KQ2-MX4P-0111\n3653\n5',
    );
  });

  it('round trip: request → signed activation code → verified on the device', () => {
    const { code: requestCode, request } = createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-1' });
    // The server sees only the code: it finds the product by its hash and signs for the license key typed.
    const seen = parseAirgapRequest(requestCode);
    assert.equal(seen.productHash, productHash('ACME-CAD'));
    const { code, signature } = activationCodeFor(
      { product: 'ACME-CAD', hardwareHash: seen.hardwareHash, commitment: seen.commitment },
      '7KQ2-MX4P-0111',
      grant,
    );
    assert.equal(code.replace(/-/g, '').length, 135);
    assert.deepEqual(parseActivationCode(code), { ...grant, signature });

    const verified = verifyActivationCode(code, { trustedKeys, request, licenseKey: '7kq2-mx4p-0iL1' });
    assert.deepEqual(verified, {
      expiresDay: grant.expiresDay,
      expiresAt: new Date(Date.UTC(2020, 0, 1) + grant.expiresDay * DAY),
      features: 0b101,
      kid: KID,
    });

    const perpetual = activationCodeFor(request, 'K-1', { expiresDay: 0, features: 0 });
    assert.equal(verifyActivationCode(perpetual.code, { trustedKeys, request, licenseKey: 'K-1' }).expiresAt, null);
  });

  it('an activation code is refused for another machine, request, license key, product or signer, or when expired', () => {
    const { request } = createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-1' });
    const { code } = activationCodeFor(request, 'K-1', grant);
    const verify =
      (change: Partial<AirgapRequest> = {}, licenseKey = 'K-1') =>
      () =>
        verifyActivationCode(code, { trustedKeys, request: { ...request, ...change }, licenseKey });
    verify()();
    const other = createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-2' }).request;
    assert.equal(refusal(verify({ hardwareHash: other.hardwareHash })).code, 'signature', 'another hardware id');
    assert.equal(
      refusal(
        verify({ commitment: createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-1' }).request.commitment }),
      ).code,
      'signature',
      'another request of this machine',
    );
    assert.equal(refusal(verify({}, 'K-2')).code, 'signature', 'another license key');
    assert.equal(
      refusal(verify({ product: 'OTHER', productHash: productHash('OTHER') })).code,
      'signature',
      'another product',
    );
    assert.equal(refusal(verify({ productHash: 1 })).code, 'input', 'a request whose product hash is not its product');
    const forged = activationCodeFor(request, 'K-1', grant, crypto.generateKeyPairSync('ed25519').privateKey);
    assert.equal(
      refusal(() => verifyActivationCode(forged.code, { trustedKeys, request, licenseKey: 'K-1' })).code,
      'signature',
      'an untrusted signer',
    );
    const expired = activationCodeFor(request, 'K-1', {
      ...grant,
      expiresDay: airgapExpiresDay(new Date(Date.now() - DAY)),
    });
    assert.equal(
      refusal(() => verifyActivationCode(expired.code, { trustedKeys, request, licenseKey: 'K-1' })).code,
      'expired',
    );
    assert.equal(
      refusal(() =>
        verifyActivationCode(code, { trustedKeys, request, licenseKey: 'K-1', now: new Date(Date.now() + 400 * DAY) }),
      ).code,
      'expired',
    );
  });

  it('a version 1 activation code is refused as outdated; a stored one still verifies as version 1', () => {
    const legacyRequest: LegacyAirgapRequest = {
      product: 'ACME-CAD',
      productHash: productHash('ACME-CAD'),
      hardwareHash: hardwareHash('hw-1'),
      nonce: '0123456789ab',
      hour: 10,
    };
    const { code, signature } = legacyActivationCodeFor(legacyRequest, 'K-1', { ...grant, activationId: 42 });
    assert.equal(code.replace(/-/g, '').length, 143);
    const { request } = createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-1' });
    const err = refusal(() => verifyActivationCode(code, { trustedKeys, request, licenseKey: 'K-1' }));
    assert.equal(err.code, 'outdated');
    assert.match(err.message, /older version \(air-gap codes version 1\); make a new request code/);

    const verified = verifyLegacyActivationCode(code, { trustedKeys, request: legacyRequest, licenseKey: 'k-1' });
    assert.equal(verified.activationId, 42);
    assert.equal(verified.kid, KID);
    assert.deepEqual(
      verified.secret,
      crypto
        .createHash('sha256')
        .update(Buffer.concat([Buffer.from('PORTICO-AIRGAP-SECRET'), signature]))
        .digest()
        .subarray(0, 16),
    );
    assert.deepEqual(verified.secret, legacyAirgapSecret(signature));
    assert.equal(
      refusal(() =>
        verifyLegacyActivationCode(code, {
          trustedKeys,
          request: { ...legacyRequest, nonce: '0123456789aa' },
          licenseKey: 'K-1',
        }),
      ).code,
      'signature',
    );
    const current = activationCodeFor(request, 'K-1', grant).code;
    assert.equal(
      refusal(() => verifyLegacyActivationCode(current, { trustedKeys, request: legacyRequest, licenseKey: 'K-1' }))
        .code,
      'format',
    );
  });

  it('a valid-looking activation code with any one symbol changed (checks recomputed) is refused', () => {
    const { request } = createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-1' });
    const { code } = activationCodeFor(request, 'K-1', grant);
    const bits = AIRGAP_BITS.activation;
    const data = Buffer.from(decodeCode('activation', code, bits));
    const seen = new Map<AirgapErrorCode, number>();
    for (let symbol = 0; symbol * 5 < bits; symbol++) {
      for (let delta = 1; delta < 32; delta++) {
        const changed = Buffer.from(data);
        let any = false;
        for (let b = 0; b < 5; b++) {
          const bit = symbol * 5 + b;
          if (bit < bits && (delta >> (4 - b)) & 1) {
            changed[bit >> 3] ^= 0x80 >> (bit & 7);
            any = true;
          }
        }
        if (!any) continue;
        const forged = encodeCode('activation', changed, bits);
        const { code: reason } = refusal(() =>
          verifyActivationCode(forged, { trustedKeys, request, licenseKey: 'K-1' }),
        );
        // The version bits (in the first symbol) do not read; everything else is not signed.
        assert.ok(
          reason === 'signature' || (reason === 'format' && symbol === 0),
          `symbol ${symbol + 1} changed: ${reason}`,
        );
        seen.set(reason, (seen.get(reason) ?? 0) + 1);
      }
    }
    assert.ok((seen.get('signature') ?? 0) > 3000);
  });

  it('a mistyped activation code is a typo with its group, before anything else is checked', () => {
    const { request } = createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-1' });
    const { code } = activationCodeFor(request, 'K-1', grant);
    const symbols = code.replace(/-/g, '');
    const at = 5 * 17 + 2; // group 18
    const typo = symbols.slice(0, at) + (symbols[at] === 'X' ? 'Y' : 'X') + symbols.slice(at + 1);
    const err = refusal(() => verifyActivationCode(typo, { trustedKeys, request, licenseKey: 'K-2' }));
    assert.equal(err.code, 'typo');
    assert.equal(err.group, 18);
    assert.match(err.message, /group 18 looks mistyped/);
    assert.equal(
      refusal(() => verifyActivationCode(symbols.slice(0, -1), { trustedKeys, request, licenseKey: 'K-1' })).code,
      'format',
    );
  });

  it('a deactivation code reveals the secret: the portal checks it against the stored commitment', () => {
    const { request, secret } = createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-1' });
    const { code } = createDeactivationCode({ hardwareHash: request.hardwareHash, secret });
    assert.equal(code.replace(/-/g, '').length, 32);
    assert.equal(code.length, 38);
    const parsed = parseDeactivationCode(code.toLowerCase());
    assert.deepEqual(parsed, { version: 2, hardwareHash: request.hardwareHash, secret });
    assert.equal(
      createDeactivationCode({ hardwareHash: request.hardwareHash, secret: Buffer.from(secret, 'hex') }).code,
      code,
    );
    // The server's check: the revealed secret hashes to the commitment it stored for that device.
    assert.equal(
      airgapCommitment({
        productHash: request.productHash,
        hardwareHash: parsed.hardwareHash,
        secret: parsed.version === 2 ? parsed.secret : '',
      }),
      request.commitment,
    );
    const guessed = createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-1' }).secret;
    assert.notEqual(airgapCommitment({ ...request, secret: guessed }), request.commitment, 'made without the secret');
    assert.equal(
      refusal(() => createDeactivationCode({ hardwareHash: request.hardwareHash, secret: 'not hex' })).code,
      'input',
    );
    assert.equal(refusal(() => createDeactivationCode({ hardwareHash: 'ABCDEF0123', secret })).code, 'input');
  });

  it('confirmation codes round-trip and answer only their own secret and machine', () => {
    const secret = '00112233445566778899';
    const hw = '164ed14fa3';
    const code = confirmationCode({ secret, hardwareHash: hw });
    assert.equal(code.replace(/-/g, '').length, 17);
    const key = Buffer.from(secret, 'hex');
    assert.deepEqual(
      Buffer.from(decodeCode('confirmation', code, 64)),
      crypto.createHmac('sha256', key).update(`PORTICO-AIRGAP-V2\nconfirmation\n${hw}`).digest().subarray(0, 8),
    );
    assert.equal(
      verifyConfirmationCode(code.toLowerCase().replace(/-/g, ' '), { secret: key, hardwareHash: hw }),
      true,
    );
    assert.equal(verifyConfirmationCode(code, { secret: '00112233445566778898', hardwareHash: hw }), false);
    assert.equal(verifyConfirmationCode(code, { secret, hardwareHash: '164ed14fa2' }), false);
    const symbols = code.replace(/-/g, '');
    const typo = refusal(() =>
      verifyConfirmationCode(`${symbols.slice(0, 11)}${symbols[11] === 'Z' ? 'Y' : 'Z'}${symbols.slice(12)}`, {
        secret,
        hardwareHash: hw,
      }),
    );
    assert.equal(typo.code, 'typo');
    assert.equal(typo.group, 3);
  });

  it('version 1 deactivation and confirmation codes: still made and checked for activations made before', () => {
    const secret = crypto.randomBytes(16);
    const { code, nonce } = createLegacyDeactivationCode({ activationId: 4242, secret });
    assert.match(nonce, /^[0-9a-f]{6}$/);
    assert.equal(code.replace(/-/g, '').length, 34);
    const parsed = parseDeactivationCode(code.toLowerCase());
    assert.ok(parsed.version === 1);
    assert.equal(parsed.activationId, 4242);
    assert.equal(parsed.nonce, nonce);
    assert.deepEqual(
      parsed.tag,
      crypto
        .createHmac('sha256', secret)
        .update(`PORTICO-AIRGAP-V1\ndeactivation\n4242\n${nonce}`)
        .digest()
        .subarray(0, 10),
    );
    assert.equal(legacyDeactivationTagValid(secret, 4242, nonce, parsed.tag), true);

    const guessed = parseDeactivationCode(
      createLegacyDeactivationCode({ activationId: 4242, secret: crypto.randomBytes(16), nonce }).code,
    );
    assert.ok(guessed.version === 1);
    assert.equal(legacyDeactivationTagValid(secret, 4242, nonce, guessed.tag), false, 'made without the secret');
    assert.equal(legacyDeactivationTagValid(secret, 4243, nonce, parsed.tag), false, 'another activation');
    assert.equal(
      legacyDeactivationTagValid(secret, 4242, nonce === '000000' ? '000001' : '000000', parsed.tag),
      false,
      'another nonce',
    );
    assert.equal(legacyDeactivationTagValid(secret, 4242, nonce, Buffer.alloc(10)), false);
    assert.equal(legacyDeactivationTagValid(secret, 4242, nonce, parsed.tag.subarray(0, 9)), false, 'a short tag');
    assert.equal(legacyDeactivationTagValid(secret, 0, nonce, parsed.tag), false, 'no activation');
    assert.equal(
      createLegacyDeactivationCode({ activationId: 4242, secret, nonce }).code,
      code,
      'the same nonce gives the same code',
    );

    const confirmation = legacyConfirmationCode(secret, 4242, nonce);
    assert.deepEqual(
      Buffer.from(decodeCode('confirmation', confirmation, 64)),
      crypto
        .createHmac('sha256', secret)
        .update(`PORTICO-AIRGAP-V1\nconfirmation\n4242\n${nonce}`)
        .digest()
        .subarray(0, 8),
    );
    assert.equal(verifyLegacyConfirmationCode(confirmation, { secret, activationId: 4242, nonce }), true);
    assert.equal(verifyLegacyConfirmationCode(confirmation, { secret, activationId: 4243, nonce }), false);
    assert.equal(
      verifyLegacyConfirmationCode(confirmation, { secret: crypto.randomBytes(16), activationId: 4242, nonce }),
      false,
    );
  });

  it('refuses arguments it cannot encode', () => {
    const signature = Buffer.alloc(64);
    assert.equal(refusal(() => encodeActivationCode({ expiresDay: 65536, features: 0, signature })).code, 'input');
    assert.equal(refusal(() => encodeActivationCode({ expiresDay: -1, features: 0, signature })).code, 'input');
    assert.equal(refusal(() => encodeActivationCode({ expiresDay: 0, features: 256, signature })).code, 'input');
    assert.equal(
      refusal(() => encodeActivationCode({ expiresDay: 0, features: 0, signature: signature.subarray(1) })).code,
      'input',
    );
    assert.equal(
      refusal(() => createLegacyDeactivationCode({ activationId: 1, secret: Buffer.alloc(16), nonce: 'ABCDEF' })).code,
      'input',
    );
    assert.equal(
      refusal(() => createLegacyDeactivationCode({ activationId: 2 ** 28, secret: Buffer.alloc(16) })).code,
      'input',
    );
    const message = {
      productCode: 'ACME-CAD',
      hardwareHash: '0123456789',
      commitment: 'abcdef0123456789abcd',
      licenseKey: 'K',
      expiresDay: 0,
      features: 0,
    };
    assert.equal(refusal(() => airgapActivationMessage({ ...message, hardwareHash: 'xyz' })).code, 'input');
    assert.equal(refusal(() => airgapActivationMessage({ ...message, commitment: 'abcdef012345' })).code, 'input');
    assert.equal(refusal(() => airgapActivationMessage({ ...message, productCode: 'not a code' })).code, 'input');
  });
});

describe('air-gap threat model: what someone who saw the portal page cannot do', () => {
  it('with the request code, the activation code (text, QR, download) and the license key, no derivable secret opens the commitment', () => {
    const licenseKey = '7KQ2-MX4P-0111-ZT9R';
    for (let i = 0; i < 300; i++) {
      const {
        code: requestCode,
        request,
        secret,
      } = createAirgapRequest({ product: 'ACME-CAD', hardwareId: `site-${i}` });
      const { code: activationCode, signature } = activationCodeFor(request, licenseKey, {
        expiresDay: i % 5000,
        features: i & 0xff,
      });
      const qr = `https://licenses.example.com/airgap?code=${requestCode}`;
      // Everything the attacker saw, and every 80-bit value they could cut out of it or hash it to.
      const seen = [requestCode, activationCode, qr, licenseKey, normaliseLicenseKey(licenseKey)];
      const material = [
        legacyAirgapSecret(signature), // version 1's secret: derived from the shown signature
        signature,
        Buffer.from(decodeCode('request', requestCode, AIRGAP_BITS.request)),
        Buffer.from(decodeCode('activation', activationCode, AIRGAP_BITS.activation)),
        Buffer.from(request.commitment + request.hardwareHash, 'hex'),
        ...seen.map((text) => crypto.createHash('sha256').update(text).digest()),
      ];
      const candidates = new Set<string>();
      for (const bytes of material) {
        for (let at = 0; at + 10 <= bytes.length; at++) candidates.add(bytes.subarray(at, at + 10).toString('hex'));
      }
      assert.equal(candidates.has(secret), false, `request ${i}: the secret is in what the portal showed`);
      for (const guess of candidates) {
        assert.notEqual(
          airgapCommitment({ productHash: request.productHash, hardwareHash: request.hardwareHash, secret: guess }),
          request.commitment,
          `request ${i}: a forged deactivation code passes`,
        );
      }
      // The device's own code does pass, and its confirmation code is not derivable without the secret either.
      const parsed = parseDeactivationCode(createDeactivationCode({ hardwareHash: request.hardwareHash, secret }).code);
      assert.ok(parsed.version === 2 && airgapCommitment({ ...request, secret: parsed.secret }) === request.commitment);
    }
  });
});

describe('portico-device air-gap commands (sdk/src/cli.ts)', function () {
  this.timeout(60_000);
  let work: string;
  let dir: string;

  const cli = (...args: string[]) => runDevice({ dir, cwd: work }, ...args);
  const airgapState = () => JSON.parse(fs.readFileSync(path.join(dir, 'airgap.json'), 'utf8'));

  beforeEach(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-airgap-'));
    dir = path.join(work, 'state');
    fs.writeFileSync(
      path.join(work, 'portico-keys.json'),
      JSON.stringify({
        keys: [{ kid: KID, status: 'active', pem: server.publicKey.export({ type: 'spki', format: 'pem' }) }],
      }),
    );
  });

  afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

  it('init → airgap-request → airgap-activate → status → airgap-deactivate → airgap-confirm', async () => {
    ok(await cli(...initArgs('7kq2-mx4p-oil1', 'hw-airgap-1')));

    const requested = ok(await cli('airgap-request', '--portal', 'https://licenses.example.com/'));
    const requestCode = /Request code: (\S+)/.exec(requested.stdout)?.[1] ?? assert.fail(requested.stdout);
    assert.equal(requestCode.length, 47);
    assert.match(requested.stdout, new RegExp(`https://licenses\\.example\\.com/airgap\\?code=${requestCode}\\n`));
    const seen = parseAirgapRequest(requestCode);
    assert.equal(seen.productHash, productHash('ACME-CAD'));
    assert.equal(seen.hardwareHash, hardwareHash('hw-airgap-1'));
    // The request and its secret are kept (mode 0600); the secret is not printed.
    const pending = airgapState().request;
    assert.equal(pending.commitment, seen.commitment);
    assert.match(pending.secret, /^[0-9a-f]{20}$/);
    assert.equal(airgapCommitment({ ...seen, secret: pending.secret }), seen.commitment);
    assert.equal(requested.stdout.includes(pending.secret), false);
    if (process.platform !== 'win32') assert.equal(fs.statSync(path.join(dir, 'airgap.json')).mode & 0o777, 0o600);

    // The portal: the license key as typed there, normalised, and the request as read from the code.
    const answer = (hardware = seen.hardwareHash) =>
      activationCodeFor(
        { product: 'ACME-CAD', hardwareHash: hardware, commitment: seen.commitment },
        '7KQ2-MX4P-0111',
        { expiresDay: airgapExpiresDay(new Date(Date.now() + 30 * DAY)), features: 0b11 },
      );
    const { code } = answer();

    const symbols = code.replace(/-/g, '');
    const typo = await cli(
      'airgap-activate',
      symbols.slice(0, 50) + (symbols[50] === 'A' ? 'B' : 'A') + symbols.slice(51),
    );
    assert.equal(typo.status, 1);
    assert.match(typo.stderr, /refused \(typo\): group 11 looks mistyped/);
    const elsewhere = await cli('airgap-activate', answer(hardwareHash('hw-elsewhere')).code);
    assert.equal(elsewhere.status, 1);
    assert.match(elsewhere.stderr, /refused \(signature\)/);
    assert.doesNotMatch(elsewhere.stderr, /\n\s+at /, 'no stack trace');
    assert.equal((await cli('status')).status, 3);

    // Typed in pieces, lower case: as a person would.
    const activated = ok(await cli('airgap-activate', ...code.toLowerCase().split('-')));
    assert.match(activated.stdout, /Air-gap activation installed/);
    const stored = airgapState();
    assert.equal(stored.request, undefined, 'the request is answered');
    assert.equal(stored.activation.secret, pending.secret);
    assert.equal(stored.activation.request.commitment, seen.commitment);
    assert.equal(stored.activation.features, 3);
    assert.equal('activationId' in stored.activation, false, 'version 2 activations have no id');

    // The portal activates a machine once: a new request while activated is refused, unless forced (after a reset).
    const again = await cli('airgap-request');
    assert.equal(again.status, 1);
    assert.match(again.stderr, /an air-gap activation is installed .*airgap-deactivate/);
    assert.equal(airgapState().activation.secret, pending.secret, 'the installed activation and its secret are kept');

    const status = ok(await cli('status'));
    assert.match(status.stdout, /Air-gap activation valid/);
    assert.match(status.stdout, /expires:\s+\d{4}-/);
    assert.match(status.stdout, /features:\s+bits 0, 1/);

    const deactivated = ok(await cli('airgap-deactivate'));
    const deactivationCode =
      /Deactivation code: (\S+)/.exec(deactivated.stdout)?.[1] ?? assert.fail(deactivated.stdout);
    assert.equal(deactivationCode.length, 38);
    // What the portal checks: the revealed secret opens the commitment it stored with the activation.
    const parsed = parseDeactivationCode(deactivationCode);
    assert.ok(parsed.version === 2);
    assert.equal(parsed.hardwareHash, seen.hardwareHash);
    assert.equal(
      airgapCommitment({ productHash: seen.productHash, hardwareHash: parsed.hardwareHash, secret: parsed.secret }),
      seen.commitment,
    );
    assert.match(
      ok(await cli('airgap-deactivate')).stdout,
      new RegExp(`Deactivation code: ${deactivationCode}\\n`),
      'shown again, unchanged',
    );
    const closing = await cli('status');
    assert.equal(closing.status, 3, 'the activation is given back');
    assert.match(closing.stdout, /waiting for its confirmation code/);

    const wrong = await cli(
      'airgap-confirm',
      confirmationCode({
        secret: createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'x' }).secret,
        hardwareHash: parsed.hardwareHash,
      }),
    );
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /does not answer/);
    const wrongKind = await cli('airgap-confirm', requestCode);
    assert.equal(wrongKind.status, 1);
    assert.match(wrongKind.stderr, /refused \(format\): this is a request code, not a confirmation code/);

    const confirmed = ok(
      await cli('airgap-confirm', confirmationCode({ secret: parsed.secret, hardwareHash: parsed.hardwareHash })),
    );
    assert.match(confirmed.stdout, /Deactivation confirmed/);
    assert.deepEqual(airgapState(), {});
    const after = await cli('status');
    assert.equal(after.status, 3);
    assert.match(after.stdout, /No license installed/);
  });

  it('airgap-request --force (after a manager reset the device) discards the installed activation and its secret', async () => {
    ok(await cli(...initArgs('K-1', 'hw-forced')));
    const first = parseAirgapRequest(/Request code: (\S+)/.exec(ok(await cli('airgap-request')).stdout)![1]!);
    const { code } = activationCodeFor(
      { product: 'ACME-CAD', hardwareHash: first.hardwareHash, commitment: first.commitment },
      'K-1',
      { expiresDay: 0, features: 0 },
    );
    ok(await cli('airgap-activate', code));
    const oldSecret = airgapState().activation.secret;
    const forced = ok(await cli('airgap-request', '--force'));
    const second = parseAirgapRequest(/Request code: (\S+)/.exec(forced.stdout)![1]!);
    const state = airgapState();
    assert.equal(state.activation, undefined, 'the installed activation is gone');
    assert.equal(state.request.commitment, second.commitment);
    assert.notEqual(state.request.secret, oldSecret, 'a new secret for the new request');
    assert.equal((await cli('status')).status, 3);
  });

  it('an activation installed by a version 1 CLI: status, a version 1 deactivation code and its confirmation', async () => {
    ok(await cli(...initArgs('K-1', 'hw-airgap-old')));
    const request: LegacyAirgapRequest = {
      product: 'ACME-CAD',
      productHash: productHash('ACME-CAD'),
      hardwareHash: hardwareHash('hw-airgap-old'),
      nonce: 'a1b2c3d4e5f6',
      hour: 100,
    };
    const { code, signature } = legacyActivationCodeFor(request, 'K-1', {
      activationId: 77,
      expiresDay: 0,
      features: 1,
    });
    const secret = legacyAirgapSecret(signature);
    // airgap.json as the version 1 CLI wrote it.
    fs.writeFileSync(
      path.join(dir, 'airgap.json'),
      JSON.stringify({
        activation: {
          code,
          request,
          licenseKey: 'K-1',
          activationId: 77,
          expiresAt: null,
          features: 1,
          secret: secret.toString('hex'),
          kid: KID,
          activatedAt: new Date().toISOString(),
        },
      }),
    );
    const status = ok(await cli('status'));
    assert.match(status.stdout, /Air-gap activation valid/);
    assert.match(status.stdout, /air-gap activation 77/);

    const deactivated = ok(await cli('airgap-deactivate'));
    const deactivationCode =
      /Deactivation code: (\S+)/.exec(deactivated.stdout)?.[1] ?? assert.fail(deactivated.stdout);
    const parsed = parseDeactivationCode(deactivationCode);
    assert.ok(parsed.version === 1);
    assert.equal(parsed.activationId, 77);
    assert.equal(legacyDeactivationTagValid(secret, 77, parsed.nonce, parsed.tag), true);
    const wrong = await cli('airgap-confirm', legacyConfirmationCode(secret, 78, parsed.nonce));
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /does not answer/);
    assert.match(
      ok(await cli('airgap-confirm', legacyConfirmationCode(secret, 77, parsed.nonce))).stdout,
      /Deactivation confirmed: air-gap activation 77 released/,
    );
    assert.deepEqual(airgapState(), {});
  });

  it('a request code stored by a version 1 CLI is not answered: a new one is needed', async () => {
    ok(await cli(...initArgs('K-1', 'hw-airgap-3')));
    const request = {
      product: 'ACME-CAD',
      productHash: productHash('ACME-CAD'),
      hardwareHash: hardwareHash('hw-airgap-3'),
      nonce: 'a1b2c3d4e5f6',
      hour: 100,
      code: '30906-25JER-T57TV-6093A-8NKRB-KAR3R-X0N',
      createdAt: new Date().toISOString(),
    };
    fs.writeFileSync(path.join(dir, 'airgap.json'), JSON.stringify({ request }));
    const run = await cli('airgap-activate', 'ABCDE');
    assert.equal(run.status, 1);
    assert.match(
      run.stderr,
      /older version of portico-device \(air-gap codes version 1\): run "portico-device airgap-request" again/,
    );
  });

  it('reads the activation code from a file or the portal URL; needs a license key and a request', async () => {
    ok(
      await cli(
        'init',
        '--product',
        'ACME-CAD',
        '--user',
        'alice@example.com',
        '--keys',
        'portico-keys.json',
        '--hardware-id',
        'hw-airgap-2',
      ),
    );
    const noKey = await cli('airgap-request');
    assert.equal(noKey.status, 1);
    assert.match(noKey.stderr, /needs a license key/);

    ok(await cli(...initArgs('K-1', 'hw-airgap-2')));
    const noRequest = await cli('airgap-activate', 'ABCDE');
    assert.equal(noRequest.status, 1);
    assert.match(noRequest.stderr, /airgap-request" first/);

    const requestCode = /Request code: (\S+)/.exec(ok(await cli('airgap-request')).stdout)![1];
    const seen = parseAirgapRequest(requestCode);
    const { code } = activationCodeFor(
      { product: 'ACME-CAD', hardwareHash: seen.hardwareHash, commitment: seen.commitment },
      'K-1',
      { expiresDay: 0, features: 0 },
    );
    fs.writeFileSync(
      path.join(work, 'activation.txt'),
      `# Portico activation code\nhttps://licenses.example.com/airgap/activate?code=${code}\n`,
    );
    assert.match(ok(await cli('airgap-activate', 'activation.txt')).stdout, /expires:\s+never/);
    assert.equal(ok(await cli('status')).status, 0);
  });

  it('a folder set up without a key takes the key the portal showed for a redeemed code: airgap-activate --key checks the code against it and remembers it', async () => {
    ok(await cli('init', '--product', 'ACME-CAD', '--keys', 'portico-keys.json', '--hardware-id', 'hw-airgap-code'));
    const requested = ok(await cli('airgap-request'));
    assert.match(requested.stdout, /with your redeemable code/);
    assert.match(requested.stdout, /airgap-activate <activation code> --key <license key>/);
    const seen = parseAirgapRequest(/Request code: (\S+)/.exec(requested.stdout)![1]!);
    const { code } = activationCodeFor(
      { product: 'ACME-CAD', hardwareHash: seen.hardwareHash, commitment: seen.commitment },
      'NEW1-KEY2',
      { expiresDay: 0, features: 0 },
    );
    const config = () => JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));

    const noKey = await cli('airgap-activate', code);
    assert.equal(noKey.status, 1);
    assert.match(noKey.stderr, /--key <license key>/);
    const otherKey = await cli('airgap-activate', code, '--key', 'OTHR-KEY2');
    assert.equal(otherKey.status, 1, 'the signature covers the key');
    assert.equal(config().licenseKey, null, 'nothing remembered');
    assert.equal(airgapState().activation, undefined);

    ok(await cli('airgap-activate', code, '--key', 'new1 key2'));
    assert.equal(config().licenseKey, 'NEW1-KEY2', 'the key is remembered');
    assert.match(ok(await cli('status')).stdout, /NEW1-KEY2/);
    const again = await cli('airgap-activate', code, '--key', 'OTHR-KEY2');
    assert.equal(again.status, 2, '--key is for a folder set up without a key');
    assert.match(again.stderr, /set up with the license key NEW1-KEY2/);
    assert.match(ok(await cli('help', 'airgap-activate')).stdout, /--key <license key>/);
  });
});
