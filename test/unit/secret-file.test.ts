import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readOrCreateSecretFile } from '../../app/lib/session-secret.ts';
import { projectRoot } from '../helpers/process.ts';

/** One process that waits for the agreed instant, then reads or creates the secret and prints it. */
function racer(dir: string, at: number): Promise<string> {
  const code = `
    const { readOrCreateSecretFile } = await import('./app/lib/session-secret.ts');
    const crypto = await import('node:crypto');
    while (Date.now() < ${at}) {}
    process.stdout.write(readOrCreateSecretFile(${JSON.stringify(dir)}, 'session-secret', () => crypto.randomBytes(48).toString('base64url')));
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: projectRoot });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (status) => (status === 0 ? resolve(out) : reject(new Error(err))));
  });
}

describe('secrets kept in DATA_DIR (session secret, secret-box key)', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-secret-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('eight processes starting at the same instant all get the same whole secret; no temporary file stays', async function () {
    this.timeout(60_000);
    const at = Date.now() + 4_000;
    const secrets = await Promise.all(Array.from({ length: 8 }, () => racer(dir, at)));
    assert.equal(secrets[0].length, 64);
    assert.deepEqual(new Set(secrets), new Set([secrets[0]]));
    assert.deepEqual(fs.readdirSync(dir), ['session-secret']);
    assert.equal(fs.statSync(path.join(dir, 'session-secret')).mode & 0o777, 0o600);
  });

  it('a later start reads the secret kept; an empty file is refused with a clear message, not used', () => {
    const first = readOrCreateSecretFile(dir, 'k', () => 'first-secret');
    assert.equal(
      readOrCreateSecretFile(dir, 'k', () => 'second-secret'),
      first,
    );
    fs.writeFileSync(path.join(dir, 'empty'), '');
    assert.throws(() => readOrCreateSecretFile(dir, 'empty', () => 'x'), /empty: remove it/);
  });
});
