import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AIRGAP_BITS,
  AirgapError,
  CodeError,
  airgapActivationMessage,
  airgapExpiresDay,
  airgapExpiryDate,
  airgapHour,
  airgapHourDate,
  airgapSecret,
  confirmationCode,
  createAirgapRequest,
  createDeactivationCode,
  deactivationTagValid,
  decodeCode,
  encodeActivationCode,
  encodeCode,
  hardwareHash,
  parseActivationCode,
  parseAirgapRequest,
  parseDeactivationCode,
  productHash,
  verifyActivationCode,
  verifyConfirmationCode,
  type AirgapRequest,
  type AirgapErrorCode,
} from '../../sdk/src/index.ts';

/** The air-gap artifacts (sdk/src/airgap.ts) with real keys, and the portico-device air-gap commands. */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TSX = path.join(ROOT, 'node_modules/.bin/tsx');
const CLI = path.join(ROOT, 'sdk/src/cli.ts');
const DAY = 86_400_000;

const server = crypto.generateKeyPairSync('ed25519');
const otherServer = crypto.generateKeyPairSync('ed25519');
const KID = 'ed25519-airgapTestKey000';
const trustedKeys = new Map<string, crypto.KeyObject | string>([
  ['ed25519-someOtherKey0000', otherServer.publicKey],
  [KID, server.publicKey.export({ type: 'spki', format: 'pem' }).toString()],
]);

interface Grant {
  activationId: number;
  expiresDay: number;
  features: number;
}

/** What the portal does: sign the message for this request and license key, encode the answer. */
function activationCodeFor(request: Pick<AirgapRequest, 'product' | 'hardwareHash' | 'nonce'>, licenseKey: string, grant: Grant, key = server.privateKey) {
  const message = airgapActivationMessage({ ...grant, productCode: request.product, hardwareHash: request.hardwareHash, nonce: request.nonce, licenseKey });
  const signature = crypto.sign(null, message, key);
  return { code: encodeActivationCode({ ...grant, signature }), signature };
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
  const grant: Grant = { activationId: 4242, expiresDay: airgapExpiresDay(new Date(Date.now() + 365 * DAY)), features: 0b101 };

  it('a request code carries product, hardware, nonce and hour', () => {
    const now = new Date('2026-03-15T10:42:00Z');
    const { code, request } = createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-1', now });
    assert.deepEqual(Object.keys(request).sort(), ['hardwareHash', 'hour', 'nonce', 'product', 'productHash']);
    assert.equal(request.productHash, crypto.createHash('sha256').update('portico-product:ACME-CAD').digest().readUIntBE(0, 3) >> 4);
    assert.equal(request.productHash, productHash('ACME-CAD'));
    assert.equal(request.hardwareHash, crypto.createHash('sha256').update('portico-hardware:hw-1').digest('hex').slice(0, 10));
    assert.equal(request.hardwareHash, hardwareHash('hw-1'));
    assert.match(request.nonce, /^[0-9a-f]{12}$/);
    assert.equal(request.hour, (31 + 28 + 14) * 24 + 10);
    const parsed = parseAirgapRequest(code.toLowerCase(), now);
    assert.deepEqual(parsed, { productHash: request.productHash, hardwareHash: request.hardwareHash, nonce: request.nonce, hour: request.hour, issuedAt: new Date('2026-03-15T10:00:00Z') });
    // The first 4 bits are the version, 1.
    assert.equal(decodeCode('request', code, AIRGAP_BITS.request)[0] >> 4, 1);
    assert.notEqual(createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-1', now }).request.nonce, request.nonce);
    assert.equal(refusal(() => createAirgapRequest({ product: 'ACME CAD', hardwareId: 'hw-1' })).code, 'input');
    assert.equal(refusal(() => createAirgapRequest({ product: 'ACME-CAD', hardwareId: '' })).code, 'input');
  });

  it('the hour wraps every 65536 hours and is read back as the one nearest now', () => {
    assert.equal(airgapHour(new Date('2026-01-01T00:59:59Z')), 0);
    assert.equal(airgapHour(new Date('2025-12-31T23:00:00Z')), 65535);
    const later = new Date(Date.UTC(2026, 0, 1) + 65536 * 3_600_000 + 5 * 3_600_000);
    assert.equal(airgapHour(later), 5);
    assert.equal(airgapHourDate(5, later).getTime(), later.getTime());
    assert.equal(airgapHourDate(65535, later).toISOString(), new Date(Date.UTC(2026, 0, 1) + 65535 * 3_600_000).toISOString());
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
    const message = airgapActivationMessage({ productCode: 'ACME-CAD', hardwareHash: '0123456789', nonce: 'abcdef012345', licenseKey: ' 7kq2 mx4p-oil1 ', activationId: 42, expiresDay: 3653, features: 5 });
    assert.equal(message.toString('ascii'), 'PORTICO-AIRGAP-V1\nactivation\nACME-CAD\n0123456789\nabcdef012345\n7KQ2-MX4P-0111\n42\n3653\n5');
  });

  it('round trip: request → signed activation code → verified on the device with its secret', () => {
    const { code: requestCode, request } = createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-1' });
    // The server sees only the code: it finds the product by its hash and signs for the license key typed.
    const seen = parseAirgapRequest(requestCode);
    assert.equal(seen.productHash, productHash('ACME-CAD'));
    const { code, signature } = activationCodeFor({ product: 'ACME-CAD', hardwareHash: seen.hardwareHash, nonce: seen.nonce }, '7KQ2-MX4P-0111', grant);
    assert.deepEqual(parseActivationCode(code), { ...grant, signature });

    const verified = verifyActivationCode(code, { trustedKeys, request, licenseKey: '7kq2-mx4p-0iL1' });
    assert.equal(verified.activationId, grant.activationId);
    assert.equal(verified.expiresDay, grant.expiresDay);
    assert.equal(verified.expiresAt?.getTime(), Date.UTC(2020, 0, 1) + grant.expiresDay * DAY);
    assert.equal(verified.features, 0b101);
    assert.equal(verified.kid, KID, 'every trusted key is tried');
    assert.deepEqual(verified.secret, crypto.createHash('sha256').update(Buffer.concat([Buffer.from('PORTICO-AIRGAP-SECRET'), signature])).digest().subarray(0, 16));
    assert.deepEqual(verified.secret, airgapSecret(signature));

    const perpetual = activationCodeFor(request, 'K-1', { activationId: 1, expiresDay: 0, features: 0 });
    assert.equal(verifyActivationCode(perpetual.code, { trustedKeys, request, licenseKey: 'K-1' }).expiresAt, null);
  });

  it('an activation code is refused for another machine, request, license key, product or signer, or when expired', () => {
    const { request } = createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-1' });
    const { code } = activationCodeFor(request, 'K-1', grant);
    const verify = (change: Partial<AirgapRequest> = {}, licenseKey = 'K-1') => () => verifyActivationCode(code, { trustedKeys, request: { ...request, ...change }, licenseKey });
    verify()();
    const other = createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-2' }).request;
    assert.equal(refusal(verify({ hardwareHash: other.hardwareHash })).code, 'signature', 'another hardware id');
    assert.equal(refusal(verify({ nonce: other.nonce })).code, 'signature', 'another request');
    assert.equal(refusal(verify({}, 'K-2')).code, 'signature', 'another license key');
    assert.equal(refusal(verify({ product: 'OTHER', productHash: productHash('OTHER') })).code, 'signature', 'another product');
    const forged = activationCodeFor(request, 'K-1', grant, crypto.generateKeyPairSync('ed25519').privateKey);
    assert.equal(refusal(() => verifyActivationCode(forged.code, { trustedKeys, request, licenseKey: 'K-1' })).code, 'signature', 'an untrusted signer');
    const expired = activationCodeFor(request, 'K-1', { ...grant, expiresDay: airgapExpiresDay(new Date(Date.now() - DAY)) });
    assert.equal(refusal(() => verifyActivationCode(expired.code, { trustedKeys, request, licenseKey: 'K-1' })).code, 'expired');
    assert.equal(refusal(() => verifyActivationCode(code, { trustedKeys, request, licenseKey: 'K-1', now: new Date(Date.now() + 400 * DAY) })).code, 'expired');
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
        const { code: reason } = refusal(() => verifyActivationCode(forged, { trustedKeys, request, licenseKey: 'K-1' }));
        // The version bits and an activation id of 0 do not read; everything else is not signed.
        assert.ok(reason === 'signature' || (reason === 'format' && symbol < 6), `symbol ${symbol + 1} changed: ${reason}`);
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
    assert.equal(refusal(() => verifyActivationCode(symbols.slice(0, -1), { trustedKeys, request, licenseKey: 'K-1' })).code, 'format');
  });

  it('deactivation codes prove the secret; a code made without it frees nothing', () => {
    const secret = crypto.randomBytes(16);
    const { code, nonce } = createDeactivationCode({ activationId: 4242, secret });
    assert.match(nonce, /^[0-9a-f]{6}$/);
    assert.equal(code.replace(/-/g, '').length, 34);
    const parsed = parseDeactivationCode(code.toLowerCase());
    assert.equal(parsed.activationId, 4242);
    assert.equal(parsed.nonce, nonce);
    assert.deepEqual(parsed.tag, crypto.createHmac('sha256', secret).update(`PORTICO-AIRGAP-V1\ndeactivation\n4242\n${nonce}`).digest().subarray(0, 10));
    assert.equal(deactivationTagValid(secret, 4242, nonce, parsed.tag), true);

    const guessed = parseDeactivationCode(createDeactivationCode({ activationId: 4242, secret: crypto.randomBytes(16), nonce }).code);
    assert.equal(deactivationTagValid(secret, 4242, nonce, guessed.tag), false, 'made without the secret');
    assert.equal(deactivationTagValid(secret, 4243, nonce, parsed.tag), false, 'another activation');
    assert.equal(deactivationTagValid(secret, 4242, nonce === '000000' ? '000001' : '000000', parsed.tag), false, 'another nonce');
    assert.equal(deactivationTagValid(secret, 4242, nonce, Buffer.alloc(10)), false);
    assert.equal(deactivationTagValid(secret, 4242, nonce, parsed.tag.subarray(0, 9)), false, 'a short tag');
    assert.equal(deactivationTagValid(secret, 0, nonce, parsed.tag), false, 'no activation');
    assert.equal(createDeactivationCode({ activationId: 4242, secret, nonce }).code, code, 'the same nonce gives the same code');
  });

  it('confirmation codes round-trip and answer only their own deactivation', () => {
    const secret = crypto.randomBytes(16);
    const code = confirmationCode(secret, 4242, 'a1b2c3');
    assert.equal(code.replace(/-/g, '').length, 17);
    assert.deepEqual(Buffer.from(decodeCode('confirmation', code, 64)), crypto.createHmac('sha256', secret).update('PORTICO-AIRGAP-V1\nconfirmation\n4242\na1b2c3').digest().subarray(0, 8));
    assert.equal(verifyConfirmationCode(code.toLowerCase().replace(/-/g, ' '), { secret, activationId: 4242, nonce: 'a1b2c3' }), true);
    assert.equal(verifyConfirmationCode(code, { secret, activationId: 4242, nonce: 'a1b2c4' }), false);
    assert.equal(verifyConfirmationCode(code, { secret, activationId: 4243, nonce: 'a1b2c3' }), false);
    assert.equal(verifyConfirmationCode(code, { secret: crypto.randomBytes(16), activationId: 4242, nonce: 'a1b2c3' }), false);
    const symbols = code.replace(/-/g, '');
    const typo = refusal(() => verifyConfirmationCode(`${symbols.slice(0, 11)}${symbols[11] === 'Z' ? 'Y' : 'Z'}${symbols.slice(12)}`, { secret, activationId: 4242, nonce: 'a1b2c3' }));
    assert.equal(typo.code, 'typo');
    assert.equal(typo.group, 3);
  });

  it('refuses arguments it cannot encode', () => {
    const signature = Buffer.alloc(64);
    assert.equal(refusal(() => encodeActivationCode({ activationId: 0, expiresDay: 0, features: 0, signature })).code, 'input');
    assert.equal(refusal(() => encodeActivationCode({ activationId: 2 ** 28, expiresDay: 0, features: 0, signature })).code, 'input');
    assert.equal(refusal(() => encodeActivationCode({ activationId: 1, expiresDay: 65536, features: 0, signature })).code, 'input');
    assert.equal(refusal(() => encodeActivationCode({ activationId: 1, expiresDay: 0, features: 256, signature })).code, 'input');
    assert.equal(refusal(() => encodeActivationCode({ activationId: 1, expiresDay: 0, features: 0, signature: signature.subarray(1) })).code, 'input');
    assert.equal(refusal(() => createDeactivationCode({ activationId: 1, secret: Buffer.alloc(16), nonce: 'ABCDEF' })).code, 'input');
    assert.equal(refusal(() => airgapActivationMessage({ productCode: 'ACME-CAD', hardwareHash: 'xyz', nonce: 'abcdef012345', licenseKey: 'K', activationId: 1, expiresDay: 0, features: 0 })).code, 'input');
  });
});

describe('portico-device air-gap commands (sdk/src/cli.ts)', function () {
  this.timeout(120_000);
  let work: string;
  let dir: string;

  const cli = (...args: string[]) => {
    const r = spawnSync(TSX, [CLI, '--dir', dir, ...args], { cwd: work, encoding: 'utf8', env: { ...process.env, PORTICO_DEVICE_DIR: '' } });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const ok = (r: ReturnType<typeof cli>) => {
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
    return r;
  };
  const airgapState = () => JSON.parse(fs.readFileSync(path.join(dir, 'airgap.json'), 'utf8'));

  beforeEach(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-airgap-'));
    dir = path.join(work, 'state');
    fs.writeFileSync(path.join(work, 'portico-keys.json'), JSON.stringify({ keys: [{ kid: KID, status: 'active', pem: server.publicKey.export({ type: 'spki', format: 'pem' }) }] }));
  });

  afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

  it('init → airgap-request → airgap-activate → status → airgap-deactivate → airgap-confirm', () => {
    ok(cli('init', '--product', 'ACME-CAD', '--key', '7kq2-mx4p-oil1', '--keys', 'portico-keys.json', '--hardware-id', 'hw-airgap-1'));

    const requested = ok(cli('airgap-request', '--portal', 'https://licenses.example.com/'));
    const requestCode = /Request code: (\S+)/.exec(requested.stdout)?.[1] ?? assert.fail(requested.stdout);
    assert.ok(requestCode.replace(/-/g, '').length <= 40);
    assert.match(requested.stdout, new RegExp(`https://licenses\\.example\\.com/airgap\\?code=${requestCode}\\n`));
    const seen = parseAirgapRequest(requestCode);
    assert.equal(seen.productHash, productHash('ACME-CAD'));
    assert.equal(seen.hardwareHash, hardwareHash('hw-airgap-1'));
    assert.equal(airgapState().request.nonce, seen.nonce);

    // The portal: the license key as typed there, normalised, and the request as read from the code.
    const answer = (hardware = seen.hardwareHash, g: Grant = { activationId: 77, expiresDay: airgapExpiresDay(new Date(Date.now() + 30 * DAY)), features: 0b11 }) =>
      activationCodeFor({ product: 'ACME-CAD', hardwareHash: hardware, nonce: seen.nonce }, '7KQ2-MX4P-0111', g);
    const { code, signature } = answer();

    const symbols = code.replace(/-/g, '');
    const typo = cli('airgap-activate', symbols.slice(0, 50) + (symbols[50] === 'A' ? 'B' : 'A') + symbols.slice(51));
    assert.equal(typo.status, 1);
    assert.match(typo.stderr, /refused \(typo\): group 11 looks mistyped/);
    const elsewhere = cli('airgap-activate', answer(hardwareHash('hw-elsewhere')).code);
    assert.equal(elsewhere.status, 1);
    assert.match(elsewhere.stderr, /refused \(signature\)/);
    assert.doesNotMatch(elsewhere.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(cli('status').status, 3);

    // Typed in pieces, lower case: as a person would.
    const activated = ok(cli('airgap-activate', ...code.toLowerCase().split('-')));
    assert.match(activated.stdout, /Air-gap activation installed/);
    assert.match(activated.stdout, /air-gap activation 77/);
    const stored = airgapState();
    assert.equal(stored.activation.secret, airgapSecret(signature).toString('hex'));
    assert.equal(stored.activation.activationId, 77);
    assert.equal(stored.activation.features, 3);
    assert.equal(stored.request, undefined, 'the request is answered');
    if (process.platform !== 'win32') assert.equal(fs.statSync(path.join(dir, 'airgap.json')).mode & 0o777, 0o600);

    const status = ok(cli('status'));
    assert.match(status.stdout, /Air-gap activation valid/);
    assert.match(status.stdout, /expires:\s+\d{4}-/);
    assert.match(status.stdout, /features:\s+bits 0, 1/);

    const deactivated = ok(cli('airgap-deactivate'));
    const deactivationCode = /Deactivation code: (\S+)/.exec(deactivated.stdout)?.[1] ?? assert.fail(deactivated.stdout);
    const parsed = parseDeactivationCode(deactivationCode);
    assert.equal(parsed.activationId, 77);
    assert.equal(deactivationTagValid(airgapSecret(signature), 77, parsed.nonce, parsed.tag), true);
    assert.match(ok(cli('airgap-deactivate')).stdout, new RegExp(`Deactivation code: ${deactivationCode}\\n`), 'shown again, unchanged');
    const closing = cli('status');
    assert.equal(closing.status, 3, 'the activation is given back');
    assert.match(closing.stdout, /waiting for its confirmation code/);

    const wrong = cli('airgap-confirm', confirmationCode(airgapSecret(signature), 77, parsed.nonce === '000000' ? '000001' : '000000'));
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /does not answer/);
    const wrongKind = cli('airgap-confirm', requestCode);
    assert.equal(wrongKind.status, 1);
    assert.match(wrongKind.stderr, /refused \(format\): this is a request code, not a confirmation code/);

    const confirmed = ok(cli('airgap-confirm', confirmationCode(airgapSecret(signature), 77, parsed.nonce)));
    assert.match(confirmed.stdout, /Deactivation confirmed/);
    assert.deepEqual(airgapState(), {});
    const after = cli('status');
    assert.equal(after.status, 3);
    assert.match(after.stdout, /No license installed/);
  });

  it('reads the activation code from a file or the portal URL; needs a license key and a request', () => {
    ok(cli('init', '--product', 'ACME-CAD', '--user', 'alice@example.com', '--keys', 'portico-keys.json', '--hardware-id', 'hw-airgap-2'));
    const noKey = cli('airgap-request');
    assert.equal(noKey.status, 1);
    assert.match(noKey.stderr, /needs a license key/);

    ok(cli('init', '--product', 'ACME-CAD', '--key', 'K-1', '--keys', 'portico-keys.json', '--hardware-id', 'hw-airgap-2'));
    const noRequest = cli('airgap-activate', 'ABCDE');
    assert.equal(noRequest.status, 1);
    assert.match(noRequest.stderr, /airgap-request" first/);

    const requestCode = /Request code: (\S+)/.exec(ok(cli('airgap-request')).stdout)![1];
    const seen = parseAirgapRequest(requestCode);
    const { code } = activationCodeFor({ product: 'ACME-CAD', hardwareHash: seen.hardwareHash, nonce: seen.nonce }, 'K-1', { activationId: 9, expiresDay: 0, features: 0 });
    fs.writeFileSync(path.join(work, 'activation.txt'), `# Portico activation code\nhttps://licenses.example.com/airgap/activate?code=${code}\n`);
    assert.match(ok(cli('airgap-activate', 'activation.txt')).stdout, /expires:\s+never/);
    assert.equal(ok(cli('status')).status, 0);
  });
});
