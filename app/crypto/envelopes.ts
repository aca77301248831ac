import type { KeyObject } from 'node:crypto';
import type { Knex } from 'knex';
import { signEnvelope, type EnvelopeType } from '../../sdk/src/envelope.ts';
import { listTrustedKeys, loadPrivateKey, publicKeyObject } from './signing-keys.ts';

/**
 * What only the server adds to the SDK's envelope code: its own keys. Signing uses the active key
 * (its private half from DATA_DIR/keys); verifying trusts the active and the still-trusted keys,
 * never retired ones. Keys are read per call, so a rotation in one process is seen by every other.
 */

export async function signAsServer(db: Knex, dataDir: string, typ: EnvelopeType, payload: object): Promise<string> {
  const active = (await listTrustedKeys(db)).find((k) => k.status === 'active');
  if (!active) throw new Error('No active signing key: generate and activate one in the console (Keys)');
  return signEnvelope(typ, active.kid, payload, loadPrivateKey(dataDir, active.kid));
}

/** kid → public key of every key whose signatures the server accepts. */
export async function trustedKeyMap(db: Knex): Promise<Map<string, KeyObject>> {
  return new Map((await listTrustedKeys(db)).map((k) => [k.kid, publicKeyObject(k.publicKeyPem)]));
}
