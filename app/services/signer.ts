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

/**
 * THE signer, built once per app: everything the server signs goes through it. It resolves the
 * active key on every call (through the handle given, so inside the transaction that issues the
 * artifact), so a rotation made by one process is used by every other at once. Before signing a
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

export function createSigner(dataDir: string): Signer {
  const activeKey = async (db: Knex) => {
    const active = await signingKeys.findActive(db);
    if (!active) throw new Error('No active signing key: generate and activate one in the console (Keys)');
    return { kid: active.kid, key: loadPrivateKey(dataDir, active.kid) };
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
    trustedKeys: trustedKeyMap,
  };
}
