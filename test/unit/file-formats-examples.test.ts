import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AIRGAP_BITS,
  AIRGAP_LEGACY_BITS,
  airgapActivationMessage,
  airgapCommitment,
  airgapExpiresDay,
  airgapHour,
  confirmationCode,
  createAirgapRequest,
  createDeactivationCode,
  createLegacyDeactivationCode,
  decodeCode,
  devicePublicKeyString,
  encodeActivationCode,
  encodeCode,
  hardwareHash,
  legacyConfirmationCode,
  parseAirgapRequest,
  parseDeactivationCode,
  productHash,
  verifyActivationCode,
  verifyConfirmationCode,
} from '../../sdk/src/index.ts';

/**
 * The air-gap worked examples of docs/file-formats.md §11, recomputed from the values the document
 * gives: a document and code that disagree fail here.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const doc = fs.readFileSync(path.join(ROOT, 'docs', 'file-formats.md'), 'utf8');

/** The fenced block that follows `<!-- <marker> -->` in the documentation. */
function docBlock(marker: string): string {
  const at = doc.indexOf(`<!-- ${marker} -->`);
  assert.ok(at >= 0, `docs/file-formats.md has no "<!-- ${marker} -->" marker`);
  const match = /```[a-z]*\n([\s\S]*?)```/.exec(doc.slice(at));
  assert.ok(match, `no code block after "<!-- ${marker} -->"`);
  return match[1];
}

/** The "name: value" lines of a block. */
function fields(block: string): Map<string, string> {
  return new Map(
    block
      .trim()
      .split('\n')
      .map((line) => {
        const m = /^([^:]+?):\s+(\S.*)$/.exec(line);
        assert.ok(m, `not a "name: value" line: ${line}`);
        return [m[1], m[2].trim()];
      }),
  );
}

/** Ed25519 private key from its 32-byte seed (RFC 8410 PKCS#8 prefix). */
function keyFromSeed(seed: Buffer): crypto.KeyObject {
  return crypto.createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]),
    format: 'der',
    type: 'pkcs8',
  });
}

describe('docs/file-formats.md: the air-gap worked examples', () => {
  const example = fields(docBlock('example: airgap v2'));
  const value = (name: string) => example.get(name) ?? assert.fail(`the example has no "${name}"`);
  const key = keyFromSeed(Buffer.alloc(32, 7));

  it('names every value it claims, and the example key is the one of §5', () => {
    assert.deepEqual(
      [...example.keys()],
      [
        'product',
        'hardware id',
        'request made at',
        'secret S',
        'license key',
        'license expires at',
        'features',
        'product hash',
        'hardware hash',
        'hour',
        'commitment',
        'request bits (hex)',
        'request code',
        'expiry day',
        'signature (hex)',
        'activation code',
        'deactivation bits (hex)',
        'deactivation code',
        'confirmation code',
      ],
    );
    const publicPem = crypto.createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
    assert.equal(docBlock('example: public key'), publicPem);
    const kid = `ed25519-${crypto
      .createHash('sha256')
      .update(Buffer.from(devicePublicKeyString(key), 'base64url'))
      .digest('base64url')
      .slice(0, 16)}`;
    assert.ok(doc.includes(`kid \`${kid}\``), kid);
  });

  it('request: hashes, commitment, bits and code', () => {
    const now = new Date(value('request made at'));
    const { code, request, secret } = createAirgapRequest({
      product: value('product'),
      hardwareId: value('hardware id'),
      now,
      secret: Buffer.from(value('secret S'), 'hex'),
    });
    assert.equal(secret, value('secret S'));
    assert.equal(String(productHash(value('product'))), value('product hash'));
    assert.equal(hardwareHash(value('hardware id')), value('hardware hash'));
    assert.equal(String(airgapHour(now)), value('hour'));
    const input = docBlock('example: airgap v2 commitment input').trim().replaceAll('\\n', '\n');
    assert.equal(crypto.createHash('sha256').update(input).digest('hex').slice(0, 20), value('commitment'));
    assert.equal(
      airgapCommitment({
        productHash: Number(value('product hash')),
        hardwareHash: value('hardware hash'),
        secret: value('secret S'),
      }),
      value('commitment'),
    );
    assert.equal(request.commitment, value('commitment'));
    assert.equal(
      Buffer.from(decodeCode('request', code, AIRGAP_BITS.request)).toString('hex'),
      value('request bits (hex)'),
    );
    assert.equal(code, value('request code'));
    assert.deepEqual(parseAirgapRequest(code, now), {
      productHash: Number(value('product hash')),
      hardwareHash: value('hardware hash'),
      commitment: value('commitment'),
      hour: Number(value('hour')),
      issuedAt: now,
    });
  });

  it('activation: message, signature and code, which verifies on the device', () => {
    const expiresDay = airgapExpiresDay(new Date(value('license expires at')));
    assert.equal(String(expiresDay), value('expiry day'));
    const grant = { expiresDay, features: Number(value('features')) };
    const message = airgapActivationMessage({
      ...grant,
      productCode: value('product'),
      hardwareHash: value('hardware hash'),
      commitment: value('commitment'),
      licenseKey: value('license key'),
    });
    assert.equal(message.toString('ascii'), docBlock('example: airgap v2 message').replace(/\n$/, ''));
    const signature = crypto.sign(null, message, key);
    assert.equal(signature.toString('hex'), value('signature (hex)'));
    const code = encodeActivationCode({ ...grant, signature });
    assert.equal(code, value('activation code'));
    const { request } = createAirgapRequest({
      product: value('product'),
      hardwareId: value('hardware id'),
      secret: Buffer.from(value('secret S'), 'hex'),
    });
    const verified = verifyActivationCode(code, {
      trustedKeys: new Map([['example', crypto.createPublicKey(key)]]),
      request,
      licenseKey: value('license key'),
      now: new Date('2026-02-11T17:00:00Z'),
    });
    assert.equal(verified.expiresAt?.toISOString(), new Date(value('license expires at')).toISOString());
  });

  it('deactivation and confirmation', () => {
    const code = createDeactivationCode({ hardwareHash: value('hardware hash'), secret: value('secret S') }).code;
    assert.equal(code, value('deactivation code'));
    assert.equal(
      Buffer.from(decodeCode('deactivation', code, AIRGAP_BITS.deactivation)).toString('hex'),
      value('deactivation bits (hex)'),
    );
    assert.deepEqual(parseDeactivationCode(code), {
      version: 2,
      hardwareHash: value('hardware hash'),
      secret: value('secret S'),
    });
    const confirmation = confirmationCode({ secret: value('secret S'), hardwareHash: value('hardware hash') });
    assert.equal(confirmation, value('confirmation code'));
    assert.equal(
      verifyConfirmationCode(confirmation, { secret: value('secret S'), hardwareHash: value('hardware hash') }),
      true,
    );
  });

  it('the version 1 examples of §11.8', () => {
    const section = doc.slice(doc.indexOf('### 11.8'), doc.indexOf('### 11.9'));
    const quoted = (label: string) =>
      new RegExp(`${label}\\s+\`([0-9A-Z-]+)\``).exec(section)?.[1] ?? assert.fail(`§11.8 names no ${label}`);
    // product ACME-CAD, hardware id c0ffee42, nonce 0123456789ab, hour 1000: version 1, 4 bits, then the fields.
    const requestBytes = Buffer.from(
      `1${productHash('ACME-CAD').toString(16)}${hardwareHash('c0ffee42')}0123456789ab03e8`,
      'hex',
    );
    assert.equal(encodeCode('request', requestBytes, AIRGAP_LEGACY_BITS.request), quoted('request code'));
    const secret = Buffer.alloc(16, 7);
    assert.equal(
      createLegacyDeactivationCode({ activationId: 42, secret, nonce: 'a1b2c3' }).code,
      quoted('deactivation code'),
    );
    assert.equal(legacyConfirmationCode(secret, 42, 'a1b2c3'), quoted('confirmation code'));
  });
});
