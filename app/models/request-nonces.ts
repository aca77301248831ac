import type { Knex } from 'knex';

/**
 * Every request a device made (activation or deactivation, offline, online or air-gap) by its nonce:
 * the primary key makes a request count once across processes; a repeat finds its first answer here.
 */

export type NonceKind = 'activation' | 'deactivation';

export interface RequestNonceRow {
  nonce: string;
  kind: NonceKind;
  license_id: number | null;
  device_id: number | null;
  created_at: Date | number | string;
  expires_at: Date | number | string | null;
}

export interface RequestNonce {
  nonce: string;
  kind: NonceKind;
  licenseId: number | null;
  deviceId: number | null;
}

const table = (db: Knex) => db<RequestNonceRow>('request_nonces');

export async function find(db: Knex, nonce: string): Promise<RequestNonce | undefined> {
  const row = await table(db).where({ nonce }).first();
  return row
    ? {
        nonce: row.nonce,
        kind: row.kind,
        licenseId: row.license_id === null ? null : Number(row.license_id),
        deviceId: row.device_id === null ? null : Number(row.device_id),
      }
    : undefined;
}

/** Records a request as answered; a second insert of the same nonce breaks the primary key. */
export async function insert(
  db: Knex,
  n: { nonce: string; kind: NonceKind; licenseId: number; deviceId: number },
  now: Date,
): Promise<void> {
  await table(db).insert({
    nonce: n.nonce,
    kind: n.kind,
    license_id: n.licenseId,
    device_id: n.deviceId,
    created_at: now,
  });
}

/** The nonce of the request that made an activation (its first), which its license files are bound to. */
export async function activationNonceOf(db: Knex, deviceId: number): Promise<string | null> {
  const row = await table(db).where({ device_id: deviceId, kind: 'activation' }).orderBy('created_at').first('nonce');
  return row ? String(row.nonce) : null;
}
