import crypto, { type KeyObject } from 'node:crypto';
import type { Knex } from 'knex';
import { signEnvelope } from '../../sdk/src/envelope.ts';
import {
  readDeactivationReceiptPayload,
  readLicensePayload,
  type DeactivationReceiptPayload,
  type LicensePayload,
} from '../../sdk/src/payloads.ts';
import type { JsonObject } from '../../sdk/src/json.ts';
import { publicKeyObject } from '../crypto/signing-keys.ts';
import { loadPrivateKey } from '../lib/key-files.ts';
import * as signingKeys from '../models/signing-keys.ts';
import type { GenerationCache } from '../lib/generation-cache.ts';

/**
 * THE signer, built once per app: everything the server signs goes through it. It resolves the
 * active key through the handle given (inside the transaction that issues the artifact) and the
 * app's generation cache, so a rotation made by one process is used by it at once and by every
 * other within the cache's interval. Before signing a
 * file it reads the payload with the SDK's own reader: the server never signs what its clients
 * would refuse (an internal error instead, never a signed file).
 */
export interface Signer {
  license(db: Knex, typ: 'license' | 'refresh', payload: LicensePayload): Promise<string>;
  receipt(db: Knex, payload: DeactivationReceiptPayload): Promise<string>;
  /** A bare Ed25519 signature (64 bytes), for the air-gap activation code (the message is built by the SDK). */
  signature(db: Knex, message: Buffer): Promise<Buffer>;
  /** kid → public key of every key whose signatures the server accepts (active and trusted, never retired). */
  trustedKeys(db: Knex): Promise<Map<string, KeyObject>>;
}

/** A payload the SDK would refuse: a bug, never a file. */
export class UnsignablePayloadError extends Error {}

function assertReadable(read: (p: JsonObject) => unknown, payload: object): void {
  try {
    read(payload as JsonObject);
  } catch (err) {
    throw new UnsignablePayloadError(`refusing to sign a payload the SDK would refuse: ${(err as Error).message}`);
  }
}

/** kid → public key of every key whose signatures the server accepts. */
export async function trustedKeyMap(db: Knex): Promise<Map<string, KeyObject>> {
  return new Map((await signingKeys.listTrusted(db)).map((k) => [k.kid, publicKeyObject(k.publicKeyPem)]));
}

/**
 * `cache` (optional: the app's generation cache) keeps the active key's id and the trusted keys
 * between requests; a key change bumps its generation (models/signing-keys.ts). A private key file
 * never changes for its kid, so each is read from disk once.
 */
export function createSigner(dataDir: string, cache?: GenerationCache): Signer {
  const privateKeys = new Map<string, KeyObject>();
  const cached = <T>(db: Knex, key: string, load: (h: Knex) => Promise<T>) =>
    cache ? cache.get(db, key, load) : load(db);
  const activeKey = async (db: Knex) => {
    const active = await cached(db, 'signing.active', (h) => signingKeys.findActive(h));
    if (!active) throw new Error('No active signing key: generate and activate one in the console (Keys)');
    let key = privateKeys.get(active.kid);
    if (!key) {
      key = loadPrivateKey(dataDir, active.kid);
      privateKeys.set(active.kid, key);
    }
    return { kid: active.kid, key };
  };
  return {
    async license(db, typ, payload) {
      assertReadable(readLicensePayload, payload);
      const { kid, key } = await activeKey(db);
      return signEnvelope(typ, kid, payload, key);
    },
    async receipt(db, payload) {
      assertReadable(readDeactivationReceiptPayload, payload);
      const { kid, key } = await activeKey(db);
      return signEnvelope('deactivation-receipt', kid, payload, key);
    },
    async signature(db, message) {
      return crypto.sign(null, message, (await activeKey(db)).key);
    },
    trustedKeys: (db) => cached(db, 'signing.trusted', trustedKeyMap),
  };
}
