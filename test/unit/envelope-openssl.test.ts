import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeEnvelope, encodeEnvelope, signEnvelope, signingInput, verifyEnvelope } from '../../sdk/src/index.ts';
import { kidFor, publicKeyDocument } from '../../app/crypto/signing-keys.ts';
import { projectRoot } from '../helpers/process.ts';

/**
 * docs/file-formats.md promises that a license file verifies with plain OpenSSL. This test runs the
 * documented shell block itself (not a copy), so the documentation and the format cannot drift apart.
 */

const OPENSSL = '/usr/bin/openssl';
const doc = fs.readFileSync(path.join(projectRoot, 'docs', 'file-formats.md'), 'utf8');

/** The fenced block that follows `<!-- <marker>` in the documentation. */
function docBlock(marker: string): string {
  const at = doc.indexOf(`<!-- ${marker}`);
  assert.ok(at >= 0, `docs/file-formats.md has no "<!-- ${marker}" marker`);
  const match = /```[a-z]*\n([\s\S]*?)```/.exec(doc.slice(at));
  assert.ok(match, `no code block after "<!-- ${marker}"`);
  return match[1];
}

/** A published key, as the server lists it at /.well-known/portico-keys.json. */
interface PublishedKey {
  kid: string;
  publicKeyPem: string;
  status: 'active' | 'trusted' | 'retired';
}

function keyInfo(publicKeyPem: string, status: PublishedKey['status']): PublishedKey {
  return { kid: kidFor(publicKeyPem), publicKeyPem, status };
}

const pemOf = (key: crypto.KeyObject) => key.export({ type: 'spki', format: 'pem' }).toString();

describe('verifying a license file with openssl, as docs/file-formats.md says', () => {
  const steps = docBlock('test: verify-license');
  let dir: string;

  before(function () {
    if (!fs.existsSync(OPENSSL)) this.skip();
  });

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-openssl-'));
  });

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /**
   * Writes the two files the documentation starts from and pastes its block into a plain shell
   * (no -e: the block itself must stop on a failure, as it does for a person).
   */
  function runDocumentedSteps(
    licenseText: string,
    keys: PublishedKey[],
    shell = 'bash',
    opensslDir = path.dirname(OPENSSL),
  ) {
    fs.writeFileSync(path.join(dir, 'license.lic'), licenseText);
    // Exactly what GET /.well-known/portico-keys.json sends (Express's res.json is JSON.stringify).
    fs.writeFileSync(path.join(dir, 'portico-keys.json'), JSON.stringify(publicKeyDocument(keys)));
    const result = spawnSync(shell, [], {
      input: steps,
      cwd: dir,
      encoding: 'utf8',
      env: { PATH: `${opensslDir}:/bin`, LC_ALL: 'C' },
    });
    return { status: result.status, stdout: result.stdout, output: `${result.stdout}${result.stderr}` };
  }

  /** A refusal: a non-zero exit, no success line, and nothing of the payload on either stream. */
  function assertRefused(run: ReturnType<typeof runDocumentedSteps>, payloadText: string) {
    assert.notEqual(run.status, 0, run.output);
    assert.doesNotMatch(run.output, /Verified Successfully/);
    assert.match(run.output, /NOT VERIFIED/);
    for (const value of ['ACME-CAD', '7KQ2-MX4P', 'product', 'hardwareId'])
      assert.equal(run.output.includes(value), false, `"${value}" was printed:\n${run.output}`);
    assert.equal(run.output.includes(payloadText), false);
  }

  const server = crypto.generateKeyPairSync('ed25519');
  const active = keyInfo(pemOf(crypto.generateKeyPairSync('ed25519').publicKey), 'active');
  const signer = keyInfo(pemOf(server.publicKey), 'trusted');
  const payload = {
    product: 'ACME-CAD',
    licenseKey: '7KQ2-MX4P-0111-ZT9R',
    hardwareId: 'c0ffee42',
    features: [{ code: 'export', name: 'Éxport' }],
  };

  it('a genuine license file verifies (CRLF and text around the armour included)', () => {
    const license = signEnvelope('license', signer.kid, payload, server.privateKey);
    const { status, stdout, output } = runDocumentedSteps(
      `Your license:\r\n${license.replaceAll('\n', '\r\n')}\r\nThanks`,
      [active, signer],
    );
    assert.equal(status, 0, output);
    assert.equal(stdout, `Signature Verified Successfully\n${JSON.stringify(payload)}\n`);
    // The documentation says bash or sh: the steps use nothing bash-only.
    const { status: shStatus, output: shOutput } = runDocumentedSteps(license, [active, signer], 'sh');
    assert.equal(shStatus, 0, shOutput);
    assert.match(shOutput, /^Signature Verified Successfully$/m);
  });

  it('a license file with one byte of its payload changed fails', () => {
    const decoded = decodeEnvelope(signEnvelope('license', signer.kid, payload, server.privateKey));
    const payloadBytes = Buffer.from(decoded.payloadBytes);
    payloadBytes[payloadBytes.indexOf('c0ffee42') + 3] ^= 0x01;
    const run = runDocumentedSteps(encodeEnvelope({ ...decoded, payloadBytes }), [active, signer]);
    assertRefused(run, payloadBytes.toString('utf8'));
    assert.match(run.output, /Signature Verification Failure/);
    assert.equal(
      runDocumentedSteps(encodeEnvelope({ ...decoded, payloadBytes }), [active, signer], 'sh').status,
      1,
      'sh too',
    );
  });

  it('fails as well with an openssl that exits 0 after "Signature Verification Failure"', () => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-openssl-bin-'));
    try {
      fs.writeFileSync(path.join(bin, 'openssl'), `#!/bin/sh\n${OPENSSL} "$@"\nexit 0\n`, { mode: 0o755 });
      const decoded = decodeEnvelope(signEnvelope('license', signer.kid, payload, server.privateKey));
      const payloadBytes = Buffer.from(decoded.payloadBytes);
      payloadBytes[payloadBytes.indexOf('c0ffee42') + 3] ^= 0x01;
      const run = runDocumentedSteps(encodeEnvelope({ ...decoded, payloadBytes }), [active, signer], 'bash', bin);
      assertRefused(run, payloadBytes.toString('utf8'));
      assert.match(run.output, /Signature Verification Failure/);
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });

  it('another artifact type relabelled as a license fails', () => {
    const receipt = decodeEnvelope(signEnvelope('deactivation-receipt', signer.kid, payload, server.privateKey));
    assertRefused(
      runDocumentedSteps(encodeEnvelope({ ...receipt, typ: 'license' }), [active, signer]),
      JSON.stringify(payload),
    );
  });

  it('a license signed by a key that is not published fails', () => {
    const license = signEnvelope('license', signer.kid, payload, server.privateKey);
    assertRefused(runDocumentedSteps(license, [active]), JSON.stringify(payload));
  });

  it('the worked example in the documentation verifies, with the SDK and with openssl', () => {
    const examplePem = docBlock('example: public key');
    const exampleLicense = docBlock('example: license');
    const example = keyInfo(examplePem, 'active');
    const verified = verifyEnvelope(exampleLicense, {
      expectedType: 'license',
      trustedKeys: new Map([[example.kid, examplePem]]),
    });
    assert.ok(doc.includes(`Its kid is \`${example.kid}\``));
    assert.ok(doc.includes(JSON.stringify(verified.payload)));
    const decoded = decodeEnvelope(exampleLicense);
    assert.ok(doc.includes(decoded.signature.toString('hex').slice(0, 64)));
    assert.equal(signingInput('license', example.kid, decoded.payloadBytes).length, 183);

    const { status, output } = runDocumentedSteps(exampleLicense, [example]);
    assert.equal(status, 0, output);
    assert.match(output, /^Signature Verified Successfully$/m);
  });
});
