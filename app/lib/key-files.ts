import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Private signing keys on disk: DATA_DIR/keys/<kid>.pem, mode 0600 in a 0700 folder, never in the
 * database, logs or responses. Parsed once per process: a kid names its key by the key's own bytes,
 * so the file of a kid never changes (it only disappears, see discardPrivateKey).
 */

export function keysDir(dataDir: string): string {
  return path.join(dataDir, 'keys');
}

function privateKeyPath(dataDir: string, kid: string): string {
  if (!/^[\w-]+$/.test(kid)) throw new Error('invalid kid');
  return path.join(keysDir(dataDir), `${kid}.pem`);
}

/** Writes a new key's file; never overwrites one. */
export function writePrivateKey(dataDir: string, kid: string, privateKeyPem: string): void {
  fs.mkdirSync(keysDir(dataDir), { recursive: true, mode: 0o700 });
  fs.writeFileSync(privateKeyPath(dataDir, kid), privateKeyPem, { mode: 0o600, flag: 'wx' });
}

const privateKeys = new Map<string, crypto.KeyObject>();

export function loadPrivateKey(dataDir: string, kid: string): crypto.KeyObject {
  const file = privateKeyPath(dataDir, kid);
  let key = privateKeys.get(file);
  if (!key) {
    key = crypto.createPrivateKey(fs.readFileSync(file));
    privateKeys.set(file, key);
  }
  return key;
}

/** Whether this process can sign with the key (its private half is in DATA_DIR/keys). */
export function hasPrivateKey(dataDir: string, kid: string): boolean {
  return fs.existsSync(privateKeyPath(dataDir, kid));
}

/** Deletes the private key file of a key that was never recorded (its generation was rolled back). */
export function discardPrivateKey(dataDir: string, kid: string): void {
  privateKeys.delete(privateKeyPath(dataDir, kid));
  fs.rmSync(privateKeyPath(dataDir, kid), { force: true });
}
