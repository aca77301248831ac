import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * SESSION_SECRET when set; otherwise a secret generated once and kept in DATA_DIR/session-secret
 * (mode 0600), so sessions survive restarts with nothing configured. Several processes must share
 * either the variable or the data folder.
 */
export function resolveSessionSecret(configured: string | undefined, dataDir: string): string {
  return (
    configured || readOrCreateSecretFile(dataDir, 'session-secret', () => crypto.randomBytes(48).toString('base64url'))
  );
}

/**
 * The secret kept in DATA_DIR/<name> (mode 0600), created by `generate` on first use. When several
 * processes start at once, the first file written wins and every process reads that one.
 */
export function readOrCreateSecretFile(dataDir: string, name: string, generate: () => string): string {
  const file = path.join(dataDir, name);
  try {
    return readSecret(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // Written whole to a file of this process's own, then linked into place: link() fails when the name
  // exists, so the first process wins and no process ever reads a half-written (or empty) file.
  const secret = generate();
  const temp = `${file}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`;
  fs.writeFileSync(temp, secret, { mode: 0o600, flag: 'wx' });
  try {
    fs.linkSync(temp, file);
    return secret;
  } catch (err) {
    // Another process put its secret there first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readSecret(file);
    throw err;
  } finally {
    fs.rmSync(temp, { force: true });
  }
}

function readSecret(file: string): string {
  const secret = fs.readFileSync(file, 'utf8').trim();
  if (!secret) throw new Error(`${file} is empty: remove it and start again to make a new secret`);
  return secret;
}
