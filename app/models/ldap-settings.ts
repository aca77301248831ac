import type { Knex } from 'knex';

/**
 * The console's LDAP settings for the vendor's staff (services/ldap.ts): one JSON value under the
 * `ldap` key of `settings`. The service account's password is stored sealed (crypto/secret-box.ts).
 */
export interface StoredLdap {
  enabled: boolean;
  url: string;
  startTls: boolean;
  allowPlain: boolean;
  caPem: string | null;
  bindDn: string;
  /** SecretBox.seal(password, 'ldap:bind-password'); null until one is saved. */
  bindPasswordSealed: string | null;
  userBase: string;
  userFilter: string;
  adminGroup: string;
  timeoutSeconds: number;
}

const KEY = 'ldap';

export async function findStoredLdap(db: Knex): Promise<StoredLdap | null> {
  const row = await db('settings').where({ key: KEY }).first('value');
  if (!row) return null;
  try {
    const parsed = JSON.parse(String(row.value)) as StoredLdap;
    return parsed && typeof parsed === 'object' && typeof parsed.url === 'string' ? parsed : null;
  } catch {
    return null;
  }
}

export async function saveStoredLdap(db: Knex, value: StoredLdap, now: Date): Promise<void> {
  await db('settings')
    .insert({ key: KEY, value: JSON.stringify(value), updated_at: now })
    .onConflict('key')
    .merge(['value', 'updated_at']);
}
