import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initArgs } from '../helpers/cli.ts';
import { projectRoot } from '../helpers/process.ts';
import { readActivationRequestPayload, verifyDeviceSigned } from '../../sdk/src/index.ts';

/**
 * The portico-device binary itself, once, as a child process (`npm run device` runs tsx on
 * sdk/src/cli.ts): its exit codes reach the shell and its output goes to the right stream. Every
 * command's behaviour is tested in process through runCli (test/helpers/cli.ts).
 */

const TSX = path.join(projectRoot, 'node_modules', '.bin', 'tsx');
const CLI = path.join(projectRoot, 'sdk', 'src', 'cli.ts');

function device(cwd: string, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      TSX,
      [CLI, ...args],
      { cwd, encoding: 'utf8', env: { ...process.env, PORTICO_DEVICE_DIR: '' } },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
      },
    );
  });
}

describe('the portico-device binary as a child process (smoke test)', function () {
  this.timeout(60_000);
  let work: string;
  before(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-device-bin-'));
    const { publicKey } = crypto.generateKeyPairSync('ed25519');
    fs.writeFileSync(
      path.join(work, 'portico-keys.json'),
      JSON.stringify({
        keys: [
          { kid: 'ed25519-binTestKey000000', status: 'active', pem: publicKey.export({ type: 'spki', format: 'pem' }) },
        ],
      }),
    );
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('init and request exit 0 and write a signed request; status exits 3; a usage error exits 2 on stderr; PORTICO_DEVICE_DIR unset means ./.portico-device', async () => {
    const init = await device(work, ...initArgs('K-1', 'hw-binary'));
    assert.equal(init.code, 0, init.stdout + init.stderr);
    assert.match(init.stdout, /ACME-CAD/);
    assert.ok(
      fs.existsSync(path.join(work, '.portico-device', 'device-key.pem')),
      'the default state folder, relative to the working directory',
    );

    const request = await device(work, 'request');
    assert.equal(request.code, 0, request.stdout + request.stderr);
    const payload = readActivationRequestPayload(
      verifyDeviceSigned(fs.readFileSync(path.join(work, 'activation-request.req'), 'utf8'), 'activation-request')
        .payload,
    );
    assert.equal(payload.hardwareId, 'hw-binary');

    const status = await device(work, 'status');
    assert.equal(status.code, 3, 'no license installed');
    assert.match(status.stdout, /No license installed/);

    const usage = await device(work, 'frobnicate');
    assert.equal(usage.code, 2);
    assert.equal(usage.stdout, '');
    assert.match(usage.stderr, /^portico-device: .+\nUsage: portico-device/);
    assert.doesNotMatch(usage.stderr, /\n\s+at /, 'no stack trace');
  });
});
