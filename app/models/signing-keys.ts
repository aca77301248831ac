import type { Knex } from 'knex';
import { bumpGeneration } from '../lib/generation-cache.ts';
import { affected, toDate } from './normalise.ts';

/**
 * Signing keys' public halves and status (docs/operations.md). The private halves never enter the database:
 * they live in DATA_DIR/keys (lib/key-files.ts).
 */

export type KeyStatus = 'active' | 'trusted' | 'retired';

export interface SigningKeyRow {
  kid: string;
  algorithm: string;
  public_key_pem: string;
  status: KeyStatus;
  created_at: Date | number | string;
  activated_at: Date | number | string | null;
  retired_at: Date | number | string | null;
}

export interface SigningKeyInfo {
  kid: string;
  algorithm: string;
  publicKeyPem: string;
  status: KeyStatus;
  createdAt: Date;
  activatedAt: Date | null;
  retiredAt: Date | null;
}

function fromRow(r: SigningKeyRow): SigningKeyInfo {
  return {
    kid: String(r.kid),
    algorithm: String(r.algorithm),
    publicKeyPem: String(r.public_key_pem),
    status: r.status,
    createdAt: toDate(r.created_at)!,
    activatedAt: toDate(r.activated_at),
    retiredAt: toDate(r.retired_at),
  };
}

const table = (db: Knex) => db<SigningKeyRow>('signing_keys');

export async function insert(
  db: Knex,
  key: { kid: string; publicKeyPem: string; status: KeyStatus },
  now: Date,
): Promise<SigningKeyInfo> {
  await bumpGeneration(db, now);
  const activatedAt = key.status === 'active' ? now : null;
  await table(db).insert({
    kid: key.kid,
    algorithm: 'Ed25519',
    public_key_pem: key.publicKeyPem,
    status: key.status,
    created_at: now,
    activated_at: activatedAt,
  });
  return {
    kid: key.kid,
    algorithm: 'Ed25519',
    publicKeyPem: key.publicKeyPem,
    status: key.status,
    createdAt: now,
    activatedAt,
    retiredAt: null,
  };
}

/** The key that signs, if any. */
export async function findActive(db: Knex): Promise<SigningKeyInfo | undefined> {
  const row = await table(db).where({ status: 'active' }).first();
  return row ? fromRow(row) : undefined;
}

/** Keys that verify signatures: the active one and those still trusted after a rotation. */
export async function listTrusted(db: Knex): Promise<SigningKeyInfo[]> {
  return (await table(db).whereIn('status', ['active', 'trusted']).orderBy('created_at', 'desc')).map(fromRow);
}

/** Every key, whatever its status: the active one first, then the newest. */
export async function listAll(db: Knex): Promise<SigningKeyInfo[]> {
  const keys = (await table(db).orderBy('created_at', 'desc').orderBy('kid')).map(fromRow);
  return [...keys.filter((k) => k.status === 'active'), ...keys.filter((k) => k.status !== 'active')];
}

export async function find(db: Knex, kid: string): Promise<SigningKeyInfo | undefined> {
  const row = await table(db).where({ kid }).first();
  return row ? fromRow(row) : undefined;
}

/**
 * Makes a trusted key the one that signs; the key that signed until now stays trusted (it still
 * verifies what it signed). Run it in a transaction. False when the key is no longer trusted.
 */
export async function activate(db: Knex, kid: string, now: Date): Promise<boolean> {
  await bumpGeneration(db, now);
  await table(db).where({ status: 'active' }).whereNot({ kid }).update({ status: 'trusted' });
  return (
    affected(await table(db).where({ kid, status: 'trusted' }).update({ status: 'active', activated_at: now })) === 1
  );
}

/** Retires a trusted key: it no longer verifies anything. False when the key is not trusted. */
export async function retire(db: Knex, kid: string, now: Date): Promise<boolean> {
  await bumpGeneration(db, now);
  return (
    affected(await table(db).where({ kid, status: 'trusted' }).update({ status: 'retired', retired_at: now })) === 1
  );
}
