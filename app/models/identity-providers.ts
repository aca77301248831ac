import type { Knex } from 'knex';
import { affected, isUniqueViolation, toBool, toDate } from './normalise.ts';

/** Identity providers of customer accounts and what single sign-on granted (db/migrations/0026). */

export type ProviderKind = 'oidc' | 'saml';
export type SeatRule = 'least_recently_used' | 'freeze';
export const SEAT_RULES: SeatRule[] = ['least_recently_used', 'freeze'];

export interface IdentityProvider {
  id: number;
  customerId: number;
  kind: ProviderKind;
  name: string;
  enabled: boolean;
  oidcIssuer: string | null;
  oidcClientId: string | null;
  /** Sealed with the secret box (context `sso:<id>`); never shown. */
  oidcClientSecret: string | null;
  oidcScopes: string | null;
  samlMetadataUrl: string | null;
  samlEntityId: string | null;
  samlSsoUrl: string | null;
  /** PEM bodies (base64) of the IdP's signing certificates, one per line. */
  samlCertificates: string | null;
  groupsClaim: string;
  createdAt: Date;
  updatedAt: Date;
}

const fromRow = (r: Record<string, unknown>): IdentityProvider => ({
  id: Number(r.id),
  customerId: Number(r.customer_id),
  kind: r.kind as ProviderKind,
  name: String(r.name),
  enabled: toBool(r.enabled),
  oidcIssuer: (r.oidc_issuer as string | null) ?? null,
  oidcClientId: (r.oidc_client_id as string | null) ?? null,
  oidcClientSecret: (r.oidc_client_secret as string | null) ?? null,
  oidcScopes: (r.oidc_scopes as string | null) ?? null,
  samlMetadataUrl: (r.saml_metadata_url as string | null) ?? null,
  samlEntityId: (r.saml_entity_id as string | null) ?? null,
  samlSsoUrl: (r.saml_sso_url as string | null) ?? null,
  samlCertificates: (r.saml_certificates as string | null) ?? null,
  groupsClaim: String(r.groups_claim),
  createdAt: toDate(r.created_at)!,
  updatedAt: toDate(r.updated_at)!,
});

export interface ProviderFields {
  name: string;
  enabled: boolean;
  oidcIssuer?: string | null;
  oidcClientId?: string | null;
  oidcClientSecret?: string | null;
  oidcScopes?: string | null;
  samlMetadataUrl?: string | null;
  samlEntityId?: string | null;
  samlSsoUrl?: string | null;
  samlCertificates?: string | null;
  groupsClaim: string;
}

const toRow = (f: Partial<ProviderFields>) => {
  const row: Record<string, unknown> = {};
  const map: [keyof ProviderFields, string][] = [
    ['name', 'name'],
    ['enabled', 'enabled'],
    ['oidcIssuer', 'oidc_issuer'],
    ['oidcClientId', 'oidc_client_id'],
    ['oidcClientSecret', 'oidc_client_secret'],
    ['oidcScopes', 'oidc_scopes'],
    ['samlMetadataUrl', 'saml_metadata_url'],
    ['samlEntityId', 'saml_entity_id'],
    ['samlSsoUrl', 'saml_sso_url'],
    ['samlCertificates', 'saml_certificates'],
    ['groupsClaim', 'groups_claim'],
  ];
  for (const [k, col] of map) if (f[k] !== undefined) row[col] = f[k];
  return row;
};

export async function find(db: Knex, id: number): Promise<IdentityProvider | undefined> {
  const row = await db('identity_providers').where({ id }).first();
  return row ? fromRow(row) : undefined;
}

export async function ofCustomer(db: Knex, customerId: number): Promise<IdentityProvider[]> {
  return (await db('identity_providers').where({ customer_id: customerId }).orderBy('id')).map(fromRow);
}

export async function insert(
  db: Knex,
  customerId: number,
  kind: ProviderKind,
  f: ProviderFields,
  now: Date,
): Promise<number> {
  const [id] = await db('identity_providers').insert({
    ...toRow(f),
    customer_id: customerId,
    kind,
    created_at: now,
    updated_at: now,
  });
  return Number(id);
}

export async function update(db: Knex, id: number, f: Partial<ProviderFields>, now: Date): Promise<void> {
  await db('identity_providers')
    .where({ id })
    .update({ ...toRow(f), updated_at: now });
}

export async function remove(db: Knex, id: number): Promise<void> {
  await db('identity_providers').where({ id }).delete();
}

// --- the customer's seat rule ---

export async function seatRule(db: Knex, customerId: number): Promise<SeatRule> {
  const row = await db('customer_sso_settings').where({ customer_id: customerId }).first('seat_rule');
  return (row?.seat_rule as SeatRule | undefined) ?? 'least_recently_used';
}

export async function setSeatRule(db: Knex, customerId: number, rule: SeatRule, now: Date): Promise<void> {
  const updated = affected(
    await db('customer_sso_settings').where({ customer_id: customerId }).update({ seat_rule: rule, updated_at: now }),
  );
  if (!updated) await db('customer_sso_settings').insert({ customer_id: customerId, seat_rule: rule, updated_at: now });
}

// --- domains ---

export interface Domain {
  id: number;
  providerId: number;
  domain: string;
  verifiedAt: Date | null;
  passwordLogin: boolean;
}

const domainFromRow = (r: Record<string, unknown>): Domain => ({
  id: Number(r.id),
  providerId: Number(r.provider_id),
  domain: String(r.domain),
  verifiedAt: toDate(r.verified_at),
  passwordLogin: toBool(r.password_login),
});

export async function domainsOf(db: Knex, providerId: number): Promise<Domain[]> {
  return (await db('sso_domains').where({ provider_id: providerId }).orderBy('domain')).map(domainFromRow);
}

export async function findDomain(db: Knex, providerId: number, id: number): Promise<Domain | undefined> {
  const row = await db('sso_domains').where({ id, provider_id: providerId }).first();
  return row ? domainFromRow(row) : undefined;
}

/** Adds a domain (unconfirmed); false when the domain already belongs to a provider. */
export async function addDomain(db: Knex, providerId: number, domain: string, now: Date): Promise<boolean> {
  try {
    await db('sso_domains').insert({ provider_id: providerId, domain, password_login: true, created_at: now });
    return true;
  } catch (err) {
    if (isUniqueViolation(err)) return false;
    throw err;
  }
}

export async function updateDomain(
  db: Knex,
  id: number,
  changes: { verifiedAt?: Date | null; verifiedBy?: number | null; passwordLogin?: boolean },
): Promise<void> {
  const row: Record<string, unknown> = {};
  if (changes.verifiedAt !== undefined) row.verified_at = changes.verifiedAt;
  if (changes.verifiedBy !== undefined) row.verified_by = changes.verifiedBy;
  if (changes.passwordLogin !== undefined) row.password_login = changes.passwordLogin;
  await db('sso_domains').where({ id }).update(row);
}

export async function removeDomain(db: Knex, id: number): Promise<void> {
  await db('sso_domains').where({ id }).delete();
}

/** Where an address's domain is routed: its confirmed domain row and provider (enabled or not), if any. */
export async function routeFor(
  db: Knex,
  domain: string,
): Promise<{ domain: Domain; provider: IdentityProvider } | undefined> {
  const row = await db('sso_domains').where({ domain }).whereNotNull('verified_at').first();
  if (!row) return undefined;
  const provider = await find(db, Number(row.provider_id));
  return provider ? { domain: domainFromRow(row), provider } : undefined;
}

// --- mappings ---

export interface Mapping {
  id: number;
  providerId: number;
  groupName: string;
  kind: 'role' | 'seat';
  orderId: number | null;
  roleId: number | null;
  licenseId: number | null;
}

const mappingFromRow = (r: Record<string, unknown>): Mapping => ({
  id: Number(r.id),
  providerId: Number(r.provider_id),
  groupName: String(r.group_name),
  kind: r.kind as Mapping['kind'],
  orderId: r.order_id === null ? null : Number(r.order_id),
  roleId: r.role_id === null ? null : Number(r.role_id),
  licenseId: r.license_id === null ? null : Number(r.license_id),
});

export async function mappingsOf(db: Knex, providerId: number): Promise<Mapping[]> {
  return (await db('sso_mappings').where({ provider_id: providerId }).orderBy('id')).map(mappingFromRow);
}

/** The mappings with what they name, for the pages. */
export async function mappingViews(db: Knex, providerId: number) {
  const rows = await db('sso_mappings')
    .leftJoin('orders', 'orders.id', 'sso_mappings.order_id')
    .leftJoin('roles', 'roles.id', 'sso_mappings.role_id')
    .leftJoin('licenses', 'licenses.id', 'sso_mappings.license_id')
    .leftJoin('products', 'products.id', 'licenses.product_id')
    .where('sso_mappings.provider_id', providerId)
    .orderBy('sso_mappings.id')
    .select(
      'sso_mappings.*',
      'orders.order_ref',
      'roles.name as role_name',
      'products.name as product_name',
      'licenses.max_activations',
      'licenses.unlimited_activations',
    );
  return rows.map((r: Record<string, unknown>) => ({
    ...mappingFromRow(r),
    orderRef: (r.order_ref as string | null) ?? null,
    roleName: (r.role_name as string | null) ?? null,
    productName: (r.product_name as string | null) ?? null,
    seats: toBool(r.unlimited_activations) ? null : r.max_activations === null ? null : Number(r.max_activations),
  }));
}

export async function insertMapping(db: Knex, m: Omit<Mapping, 'id'>, now: Date): Promise<number> {
  const [id] = await db('sso_mappings').insert({
    provider_id: m.providerId,
    group_name: m.groupName,
    kind: m.kind,
    order_id: m.orderId,
    role_id: m.roleId,
    license_id: m.licenseId,
    created_at: now,
  });
  return Number(id);
}

export async function findMapping(db: Knex, providerId: number, id: number): Promise<Mapping | undefined> {
  const row = await db('sso_mappings').where({ id, provider_id: providerId }).first();
  return row ? mappingFromRow(row) : undefined;
}

export async function removeMapping(db: Knex, id: number): Promise<void> {
  await db('sso_mappings').where({ id }).delete();
}

// --- identities ---

export async function accountOfSubject(db: Knex, providerId: number, subject: string): Promise<number | undefined> {
  const row = await db('sso_identities').where({ provider_id: providerId, subject }).first('account_id');
  return row ? Number(row.account_id) : undefined;
}

export async function linkIdentity(db: Knex, providerId: number, subject: string, accountId: number, now: Date) {
  await db('sso_identities').insert({
    provider_id: providerId,
    subject,
    account_id: accountId,
    created_at: now,
    last_login_at: now,
  });
}

export async function touchIdentity(db: Knex, providerId: number, subject: string, now: Date) {
  await db('sso_identities').where({ provider_id: providerId, subject }).update({ last_login_at: now });
}

// --- seats and roles granted by single sign-on ---

/**
 * The seats single sign-on gave the account that it still holds. A mark whose assignment was removed
 * by hand (a manager or the vendor unassigned the user) counts for nothing and is overwritten.
 */
export async function ssoSeatsOf(db: Knex, accountId: number, providerId: number): Promise<number[]> {
  return (
    await db('sso_seats')
      .join('license_user_assignments', (j) =>
        j
          .on('license_user_assignments.license_id', 'sso_seats.license_id')
          .andOn('license_user_assignments.account_id', 'sso_seats.account_id'),
      )
      .where({ 'sso_seats.account_id': accountId, 'sso_seats.provider_id': providerId })
      .select('sso_seats.license_id')
  ).map((r: { license_id: number }) => Number(r.license_id));
}

export async function markSeat(db: Knex, licenseId: number, accountId: number, providerId: number, now: Date) {
  await db('sso_seats')
    .insert({ license_id: licenseId, account_id: accountId, provider_id: providerId, last_used_at: now })
    .onConflict(['license_id', 'account_id'])
    .merge(['provider_id', 'last_used_at']);
}

export async function touchSeat(db: Knex, licenseId: number, accountId: number, now: Date) {
  await db('sso_seats').where({ license_id: licenseId, account_id: accountId }).update({ last_used_at: now });
}

export async function unmarkSeat(db: Knex, licenseId: number, accountId: number) {
  await db('sso_seats').where({ license_id: licenseId, account_id: accountId }).delete();
}

/** The seats single sign-on gave on a license that their holders still hold, least recently used first. */
export async function seatsByLastUse(db: Knex, licenseId: number) {
  return (
    await db('sso_seats')
      .join('accounts', 'accounts.id', 'sso_seats.account_id')
      .join('license_user_assignments', (j) =>
        j
          .on('license_user_assignments.license_id', 'sso_seats.license_id')
          .andOn('license_user_assignments.account_id', 'sso_seats.account_id'),
      )
      .where('sso_seats.license_id', licenseId)
      .orderBy('sso_seats.last_used_at')
      .orderBy('sso_seats.account_id')
      .select('sso_seats.account_id', 'accounts.email', 'sso_seats.last_used_at')
  ).map((r: Record<string, unknown>) => ({
    accountId: Number(r.account_id),
    email: String(r.email),
    lastUsedAt: toDate(r.last_used_at)!,
  }));
}

export async function countAssigned(db: Knex, licenseId: number): Promise<number> {
  const row = await db('license_user_assignments').where({ license_id: licenseId }).count({ n: '*' }).first();
  return Number(row?.n ?? 0);
}

export async function addWait(db: Knex, licenseId: number, accountId: number, now: Date): Promise<boolean> {
  try {
    await db('sso_seat_waits').insert({ license_id: licenseId, account_id: accountId, since: now });
    return true;
  } catch (err) {
    if (isUniqueViolation(err)) return false;
    throw err;
  }
}

export async function removeWait(db: Knex, licenseId: number, accountId: number) {
  return affected(await db('sso_seat_waits').where({ license_id: licenseId, account_id: accountId }).delete());
}

export async function waitsOn(db: Knex, licenseIds: number[]) {
  if (!licenseIds.length) return [];
  return (
    await db('sso_seat_waits')
      .join('accounts', 'accounts.id', 'sso_seat_waits.account_id')
      .whereIn('sso_seat_waits.license_id', licenseIds)
      .orderBy('sso_seat_waits.since')
      .select('sso_seat_waits.license_id', 'accounts.email', 'sso_seat_waits.since')
  ).map((r: Record<string, unknown>) => ({
    licenseId: Number(r.license_id),
    email: String(r.email),
    since: toDate(r.since)!,
  }));
}

/** The orders single sign-on gave the account a role on that it still has (a hand-removed one counts for nothing). */
export async function ssoRolesOf(db: Knex, accountId: number, providerId: number): Promise<number[]> {
  return (
    await db('sso_roles')
      .join('manager_orders', (j) =>
        j
          .on('manager_orders.order_id', 'sso_roles.order_id')
          .andOn('manager_orders.account_id', 'sso_roles.account_id'),
      )
      .where({ 'sso_roles.account_id': accountId, 'sso_roles.provider_id': providerId })
      .select('sso_roles.order_id')
  ).map((r: { order_id: number }) => Number(r.order_id));
}

export async function markRole(db: Knex, orderId: number, accountId: number, providerId: number) {
  await db('sso_roles')
    .insert({ order_id: orderId, account_id: accountId, provider_id: providerId })
    .onConflict(['order_id', 'account_id'])
    .merge(['provider_id']);
}

export async function unmarkRole(db: Knex, orderId: number, accountId: number) {
  await db('sso_roles').where({ order_id: orderId, account_id: accountId }).delete();
}

// --- one-time keys ---

/** Stores a one-time key; false when it exists already (a replay). */
export async function putOnce(db: Knex, key: string, value: string | null, expiresAt: Date): Promise<boolean> {
  try {
    await db('sso_once').insert({ key, value, expires_at: expiresAt });
    return true;
  } catch (err) {
    if (isUniqueViolation(err)) return false;
    throw err;
  }
}

export async function getOnce(db: Knex, key: string, now: Date): Promise<string | null | undefined> {
  const row = await db('sso_once').where({ key }).where('expires_at', '>', now).first('value');
  return row ? ((row.value as string | null) ?? null) : undefined;
}

export async function hasOnce(db: Knex, key: string): Promise<boolean> {
  return !!(await db('sso_once').where({ key }).first('key'));
}

/** Takes a one-time key: its value for the one caller whose delete took effect, else undefined. */
export async function takeOnce(db: Knex, key: string, now: Date): Promise<string | null | undefined> {
  const value = await getOnce(db, key, now);
  if (value === undefined) return undefined;
  return affected(await db('sso_once').where({ key }).delete()) === 1 ? value : undefined;
}

export async function purgeOnce(db: Knex, now: Date): Promise<number> {
  return affected(await db('sso_once').where('expires_at', '<=', now).delete());
}

export async function waitsOf(db: Knex, accountId: number): Promise<number[]> {
  return (await db('sso_seat_waits').where({ account_id: accountId }).select('license_id')).map(
    (r: { license_id: number }) => Number(r.license_id),
  );
}

/** What a customer's mappings may name: its orders and its user-based licenses (at most 500 each, newest first). */
export async function customerTargets(db: Knex, customerId: number) {
  const [orderRows, licenseRows] = await Promise.all([
    db('orders').where({ customer_id: customerId }).orderBy('id', 'desc').limit(500).select('id', 'order_ref'),
    db('licenses')
      .join('orders', 'orders.id', 'licenses.order_id')
      .join('products', 'products.id', 'licenses.product_id')
      .where({ 'orders.customer_id': customerId, 'products.authorization_method': 'user' })
      .orderBy('licenses.id', 'desc')
      .limit(500)
      .select('licenses.id', 'orders.order_ref', 'products.name as product_name'),
  ]);
  return {
    orders: orderRows.map((r: Record<string, unknown>) => ({ id: Number(r.id), orderRef: String(r.order_ref) })),
    licenses: licenseRows.map((r: Record<string, unknown>) => ({
      id: Number(r.id),
      orderRef: String(r.order_ref),
      productName: String(r.product_name),
    })),
  };
}

/** Whether the manager is assigned to any order of the customer. */
export async function managesCustomer(db: Knex, accountId: number, customerId: number): Promise<boolean> {
  return !!(await db('manager_orders')
    .join('orders', 'orders.id', 'manager_orders.order_id')
    .where({ 'manager_orders.account_id': accountId, 'orders.customer_id': customerId })
    .first('manager_orders.order_id'));
}
