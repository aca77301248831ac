import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { TestApp } from './app.ts';
import { devicePublicKeyString } from '../../sdk/src/envelope.ts';

/** Objects for the Management API's license tests (test/requests/manage-api-licenses*.test.ts). */

let hw = 0;

/** An active offline device of `licenseId`, with a device key (so a refresh file can be made for it). */
export async function offlineDevice(t: TestApp, licenseId: number): Promise<number> {
  const hardwareId = `HW-API-${++hw}`;
  const { publicKey } = crypto.generateKeyPairSync('ed25519');
  const [id] = await t.db('devices').insert({
    license_id: licenseId,
    hardware_id: hardwareId,
    active_hardware_id: hardwareId,
    hostname: `${hardwareId.toLowerCase()}.local`,
    channel: 'offline',
    device_public_key: devicePublicKeyString(publicKey),
    activated_at: new Date(),
  });
  await t.db('licenses').where({ id: licenseId }).increment('times_activated', 1);
  // The signer refuses a payload without the activation's request nonce, as the SDK would.
  await t.db('request_nonces').insert({
    nonce: crypto.randomBytes(16).toString('base64url'),
    kind: 'activation',
    license_id: licenseId,
    device_id: id,
    created_at: new Date(),
  });
  return Number(id);
}

/** Every request of a matrix case reads its path once: a pool hands each one a fresh object. */
export function pool(ids: number[]) {
  return () => {
    const id = ids.shift();
    assert.ok(id, 'the pool has objects left');
    return id;
  };
}

/** The audit labels of manageApiWorld's vendor token and managerAll's personal token. */
export const VENDOR_LABEL = /^api client "shop" \(portico_ak_\w{4}…\)$/;
export const MANAGER_LABEL = /^personal token "ci" of user\d+-\d+@example\.com \(portico_pat_\w{4}…\)$/;

/** The newest audit row of `action` on the object; it must name the token `label` matches. */
export async function auditedAs(db: Knex, action: string, objectType: string, objectId: number, label: RegExp) {
  const row = await db('audit_events')
    .where({ action, object_type: objectType, object_id: String(objectId) })
    .orderBy('id', 'desc')
    .first();
  assert.ok(row, `an audit row ${action}`);
  assert.match(String(row.actor_label), label);
  return row;
}
