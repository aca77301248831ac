import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { toDate } from '../models/normalise.ts';

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
}

export function keysDir(dataDir: string): string {
  return path.join(dataDir, 'keys');
}

function rawPublicKey(publicKeyPem: string): Buffer {
  const jwk = crypto.createPublicKey(publicKeyPem).export({ format: 'jwk' }) as { x: string };
  return Buffer.from(jwk.x, 'base64url');
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
  };
}

/** Makes a new key pair, writes the private key file (0600) and records the public half. */
export async function generateSigningKey(db: Knex, dataDir: string, now: Date, status: KeyStatus): Promise<SigningKeyInfo> {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const kid = kidFor(publicKeyPem);
  const dir = keysDir(dataDir);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(dir, `${kid}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  await db('signing_keys').insert({ kid, algorithm: 'Ed25519', public_key_pem: publicKeyPem, status, created_at: now, activated_at: status === 'active' ? now : null });
  return { kid, algorithm: 'Ed25519', publicKeyPem, status, createdAt: now };
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

export function loadPrivateKey(dataDir: string, kid: string): crypto.KeyObject {
  if (!/^[\w-]+$/.test(kid)) throw new Error('invalid kid');
  return crypto.createPrivateKey(fs.readFileSync(path.join(keysDir(dataDir), `${kid}.pem`)));
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
