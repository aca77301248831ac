import type { Knex } from 'knex';
import { newKeyPair } from '../crypto/signing-keys.ts';
import { discardPrivateKey, hasPrivateKey, writePrivateKey } from '../lib/key-files.ts';
import * as keys from '../models/signing-keys.ts';
import { HttpError, notFound } from '../lib/errors.ts';
import { auditedChange } from './changes.ts';
import type { Actor, ServiceDeps } from './context.ts';

/**
 * Key rotation (docs/operations.md): generate a key (trusted: it verifies but does not sign yet, so clients can
 * learn it first), make it the active signing key, retire keys nobody should trust any more.
 * Audit events name keys by kid and status; key material never enters them.
 */

/** Makes a new key pair, writes the private key file (0600) and records the public half. */
export async function generateSigningKey(
  db: Knex,
  dataDir: string,
  now: Date,
  status: keys.KeyStatus,
): Promise<keys.SigningKeyInfo> {
  const pair = newKeyPair();
  writePrivateKey(dataDir, pair.kid, pair.privateKeyPem);
  return keys.insert(db, { kid: pair.kid, publicKeyPem: pair.publicKeyPem, status }, now);
}

/** On first start there is no key: make one. Returns the active key. */
export async function ensureSigningKey(db: Knex, dataDir: string, now: Date): Promise<keys.SigningKeyInfo> {
  return (await keys.findActive(db)) ?? generateSigningKey(db, dataDir, now, 'active');
}

const auditOf = (k: keys.SigningKeyInfo) => ({ kid: k.kid, algorithm: k.algorithm, status: k.status });

async function mustFind(db: ServiceDeps['db'], kid: string) {
  const key = await keys.find(db, kid);
  if (!key) throw notFound();
  return key;
}

export async function generateKey(deps: ServiceDeps, actor: Actor, dataDir: string): Promise<string> {
  let written: string | undefined;
  try {
    return await auditedChange(deps, actor, async (trx, now) => {
      const key = await generateSigningKey(trx, dataDir, now, 'trusted');
      written = key.kid;
      return {
        result: key.kid,
        audit: { action: 'signing_key.generated', objectType: 'signing_key', objectId: key.kid, after: auditOf(key) },
      };
    });
  } catch (err) {
    // The row was rolled back: a private key file without its row would only be a liability.
    if (written) discardPrivateKey(dataDir, written);
    throw err;
  }
}

/** The previously active key becomes trusted in the same transaction: exactly one key signs. */
export async function activateKey(deps: ServiceDeps, actor: Actor, dataDir: string, kid: string): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await mustFind(trx, kid);
    if (before.status === 'active') throw new HttpError(409, 'admin.keys.alreadyActive');
    if (before.status !== 'trusted') throw new HttpError(409, 'admin.keys.activateRetired');
    if (!hasPrivateKey(dataDir, kid)) throw new HttpError(409, 'admin.keys.privateKeyMissing');
    const previous = await keys.findActive(trx);
    if (!(await keys.activate(trx, kid, now))) throw new HttpError(409, 'admin.keys.activateRetired');
    return {
      result: undefined,
      audit: {
        action: 'signing_key.activated',
        objectType: 'signing_key',
        objectId: kid,
        before: { ...auditOf(before), activeKid: previous?.kid ?? null },
        after: { ...auditOf(await mustFind(trx, kid)), activeKid: kid },
      },
    };
  });
}

/** Only a trusted key retires: the active key must first be replaced. */
export async function retireKey(deps: ServiceDeps, actor: Actor, kid: string): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await mustFind(trx, kid);
    if (before.status === 'active') throw new HttpError(409, 'admin.keys.cannotRetireActive');
    if (before.status === 'retired') throw new HttpError(409, 'admin.keys.alreadyRetired');
    if (!(await keys.retire(trx, kid, now))) throw new HttpError(409, 'admin.keys.cannotRetireActive');
    return {
      result: undefined,
      audit: {
        action: 'signing_key.retired',
        objectType: 'signing_key',
        objectId: kid,
        before: auditOf(before),
        after: auditOf(await mustFind(trx, kid)),
      },
    };
  });
}
