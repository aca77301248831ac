import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { affected, toDate } from '../models/normalise.ts';
import { rawEd25519PublicKey } from '../../sdk/src/envelope.ts';

/**
 * Ed25519 signing keys. Metadata and public keys live in the database (so every process and the
 * console see them); private keys live only in DATA_DIR/keys/<kid>.pem with mode 0600.
 */

export type KeyStatus = 'active' | 'trusted' | 'retired';

export interface SigningKeyInfo {
  kid: string;
  algorithm: string;
  publicKeyPem: string;
  status: KeyStatus;
  createdAt: Date;
  activatedAt: Date | null;
  retiredAt: Date | null;
}

export function keysDir(dataDir: string): string {
  return path.join(dataDir, 'keys');
}

function rawPublicKey(publicKeyPem: string): Buffer {
  return rawEd25519PublicKey(crypto.createPublicKey(publicKeyPem));
}

/** The kid names the key by its own bytes: the first 12 bytes of SHA-256 of the raw public key. */
export function kidFor(publicKeyPem: string): string {
  return 'ed25519-' + crypto.createHash('sha256').update(rawPublicKey(publicKeyPem)).digest('base64url').slice(0, 16);
}

function fromRow(r: Record<string, unknown>): SigningKeyInfo {
  return {
    kid: String(r.kid),
    algorithm: String(r.algorithm),
    publicKeyPem: String(r.public_key_pem),
    status: r.status as KeyStatus,
    createdAt: toDate(r.created_at)!,
    activatedAt: toDate(r.activated_at),
    retiredAt: toDate(r.retired_at),
  };
}

/** Makes a new key pair, writes the private key file (0600) and records the public half. */
export async function generateSigningKey(db: Knex, dataDir: string, now: Date, status: KeyStatus): Promise<SigningKeyInfo> {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const kid = kidFor(publicKeyPem);
  fs.mkdirSync(keysDir(dataDir), { recursive: true, mode: 0o700 });
  fs.writeFileSync(privateKeyPath(dataDir, kid), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  await db('signing_keys').insert({ kid, algorithm: 'Ed25519', public_key_pem: publicKeyPem, status, created_at: now, activated_at: status === 'active' ? now : null });
  return { kid, algorithm: 'Ed25519', publicKeyPem, status, createdAt: now, activatedAt: status === 'active' ? now : null, retiredAt: null };
}

/** On first start there is no key: make one. Returns the active key. */
export async function ensureSigningKey(db: Knex, dataDir: string, now: Date): Promise<SigningKeyInfo> {
  const active = await db('signing_keys').where({ status: 'active' }).first();
  if (active) return fromRow(active);
  return generateSigningKey(db, dataDir, now, 'active');
}

/** Keys that verify signatures: the active one and those still trusted after a rotation. */
export async function listTrustedKeys(db: Knex): Promise<SigningKeyInfo[]> {
  return (await db('signing_keys').whereIn('status', ['active', 'trusted']).orderBy('created_at', 'desc')).map(fromRow);
}

function privateKeyPath(dataDir: string, kid: string): string {
  if (!/^[\w-]+$/.test(kid)) throw new Error('invalid kid');
  return path.join(keysDir(dataDir), `${kid}.pem`);
}

/**
 * Private keys parsed once per process: a kid names its key by the key's own bytes, so the file of a
 * kid never changes (only disappears, see discardPrivateKey). Which key signs is still read from the
 * database per call, so a rotation in one process is seen by every other at once.
 */
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

const publicKeys = new Map<string, crypto.KeyObject>();

/** The key object of a public key PEM, parsed once per process. */
export function publicKeyObject(publicKeyPem: string): crypto.KeyObject {
  let key = publicKeys.get(publicKeyPem);
  if (!key) {
    key = crypto.createPublicKey(publicKeyPem);
    publicKeys.set(publicKeyPem, key);
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

/** Every key, whatever its status: the active one first, then the newest. */
export async function listAllKeys(db: Knex): Promise<SigningKeyInfo[]> {
  const keys = (await db('signing_keys').orderBy('created_at', 'desc').orderBy('kid')).map(fromRow);
  return [...keys.filter((k) => k.status === 'active'), ...keys.filter((k) => k.status !== 'active')];
}

export async function findKey(db: Knex, kid: string): Promise<SigningKeyInfo | undefined> {
  const row = await db('signing_keys').where({ kid }).first();
  return row ? fromRow(row) : undefined;
}

/**
 * Makes a trusted key the one that signs; the key that signed until now stays trusted (it still
 * verifies what it signed). Run it in a transaction. False when the key is no longer trusted.
 */
export async function activateKey(db: Knex, kid: string, now: Date): Promise<boolean> {
  await db('signing_keys').where({ status: 'active' }).whereNot({ kid }).update({ status: 'trusted' });
  return affected(await db('signing_keys').where({ kid, status: 'trusted' }).update({ status: 'active', activated_at: now })) === 1;
}

/** Retires a trusted key: it no longer verifies anything. False when the key is not trusted. */
export async function retireKey(db: Knex, kid: string, now: Date): Promise<boolean> {
  return affected(await db('signing_keys').where({ kid, status: 'trusted' }).update({ status: 'retired', retired_at: now })) === 1;
}

/** The public description served at /.well-known/portico-keys.json (JWK fields plus the PEM). */
export function publicKeyDocument(keys: SigningKeyInfo[]) {
  return {
    keys: keys.map((k) => ({
      kid: k.kid,
      kty: 'OKP',
      crv: 'Ed25519',
      alg: 'EdDSA',
      use: 'sig',
      x: rawPublicKey(k.publicKeyPem).toString('base64url'),
      status: k.status,
      pem: k.publicKeyPem,
    })),
  };
}
