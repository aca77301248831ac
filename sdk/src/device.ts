import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { devicePublicKeyString, type KeyInput } from './envelope.ts';
import { LicenseError } from './license-error.ts';

/**
 * The device's identity: an Ed25519 key pair made on first use (its private half never leaves the
 * machine; requests carry the public half and are signed with it) and a hardware id.
 */

export const DEVICE_KEY_FILE = 'device-key.pem';

export interface DeviceKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The public key as payloads carry it (`devicePublicKey`: 43 characters of base64url). */
  publicKeyString: string;
}

/** A DeviceKey from an Ed25519 private key (KeyObject or PKCS8 PEM). */
export function deviceKeyFrom(privateKey: KeyInput): DeviceKey {
  let key: KeyObject;
  try {
    key = typeof privateKey === 'string' ? crypto.createPrivateKey(privateKey) : privateKey;
  } catch {
    throw new LicenseError('key', 'the device key is not a readable private key');
  }
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519')
    throw new LicenseError('key', 'the device key is not an Ed25519 private key');
  const publicKey = crypto.createPublicKey(key);
  return { privateKey: key, publicKey, publicKeyString: devicePublicKeyString(publicKey) };
}

/**
 * The device key kept in `<dir>/device-key.pem` (PKCS8 PEM, mode 0600), made on first use; `dir`
 * is created with mode 0700 when missing. Two processes starting at once end up with the same key:
 * the file appears complete or not at all.
 */
export function loadOrCreateDeviceKey(dir: string): DeviceKey {
  const file = path.join(dir, DEVICE_KEY_FILE);
  const existing = readIfExists(file);
  if (existing !== undefined) return deviceKeyFrom(existing);

  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pem = crypto.generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const temp = path.join(dir, `.${DEVICE_KEY_FILE}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  fs.writeFileSync(temp, pem, { mode: 0o600, flag: 'wx' });
  try {
    fs.linkSync(temp, file); // fails with EEXIST when another process was first: its key wins
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    fs.rmSync(temp, { force: true });
  }
  return deviceKeyFrom(fs.readFileSync(file, 'utf8'));
}

function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const MACHINE_ID_FILES = ['/etc/machine-id', '/var/lib/dbus/machine-id'];
/** machine-id(5): the id is confidential and should be hashed with an application-specific key. */
const HARDWARE_ID_DOMAIN = 'portico-hardware-id-v1';

/**
 * A stable id for this machine: 32 hex characters (128 bits of SHA-256). From the systemd/D-Bus
 * machine id when there is one, else from the host name and the sorted MAC addresses of the
 * non-internal network interfaces. Vendors with a better source may pass their own id instead.
 */
export function hardwareId(): string {
  return hashId(machineIdSource());
}

function machineIdSource(): string {
  for (const file of MACHINE_ID_FILES) {
    const id = readIfReadable(file)?.trim();
    if (id) return `machine-id:${id}`;
  }
  const macs = new Set<string>();
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const a of addresses ?? []) {
      if (!a.internal && a.mac && a.mac !== '00:00:00:00:00:00') macs.add(a.mac.toLowerCase());
    }
  }
  return `host:${os.hostname()}\nmacs:${[...macs].sort().join(',')}`;
}

function readIfReadable(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function hashId(source: string): string {
  return crypto.createHash('sha256').update(`${HARDWARE_ID_DOMAIN}\n${source}`).digest('hex').slice(0, 32);
}
