import type { Knex } from 'knex';
import * as accounts from '../models/accounts.ts';
import * as idp from '../models/identity-providers.ts';
import * as licenses from '../models/licenses.ts';
import * as managers from '../models/managers.ts';
import * as orders from '../models/orders.ts';
import * as roles from '../models/roles.ts';
import * as assignments from '../models/license-users.ts';
import type { SecretBox } from '../crypto/secret-box.ts';
import { AppError, ValidationError, notFound } from '../lib/errors.ts';
import { inTransaction } from '../lib/transaction.ts';
import { recordAudit, type AuditRecord } from './audit.ts';
import { auditedChange } from './changes.ts';
import { recordLogin } from './auth.ts';
import type { Actor, ServiceDeps } from './context.ts';

/**
 * Single sign-on per customer account (docs/sso.md): the providers' configuration and what a
 * verified identity from one of them leads to — the account (created just in time), its roles on the
 * customer's orders, its seats on the customer's user-based licenses, within the purchased count and
 * the customer's seat rule. Protocol checks (state, nonce, PKCE, signatures, audience, expiry,
 * replay) happen before, in services/sso-oidc.ts and services/sso-saml.ts.
 */

/** Why a single sign-on was refused: the audit's `reason` and the key of the message shown (`sso.refused.<reason>`). */
export const REFUSAL_REASONS = [
  'disabled',
  'state_mismatch',
  'invalid_response',
  'replayed',
  'domain_not_verified',
  'email_missing',
  'no_mapping',
  'admin_account',
  'account_disabled',
  'provider_error',
] as const;

export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export class SsoRefused extends Error {
  /** Set once the refusal is in the audit log (a caller does not record it twice). */
  audited = false;
  constructor(
    readonly reason: RefusalReason,
    readonly detail: string | null = null,
  ) {
    super(`single sign-on refused: ${reason}${detail ? ` (${detail})` : ''}`);
  }
}

/** What a provider vouched for, after every protocol check passed. */
export interface VerifiedIdentity {
  subject: string;
  email: string | null;
  name: string | null;
  groups: string[];
}

export const secretContext = (providerId: number) => `sso:${providerId}`;

export const domainOf = (email: string) => {
  const at = email.lastIndexOf('@');
  return at < 0
    ? ''
    : email
        .slice(at + 1)
        .trim()
        .toLowerCase();
};

/** Records a refusal (with its reason) and throws it for the controller to show. */
export async function refuse(
  deps: ServiceDeps,
  actor: Actor,
  provider: Pick<idp.IdentityProvider, 'id' | 'customerId' | 'kind'> | null,
  reason: RefusalReason,
  detail: string | null = null,
  email: string | null = null,
): Promise<never> {
  await recordAudit(deps.db, { ...actor, label: email ?? actor.label }, deps.clock.now(), {
    action: 'sso.login_refused',
    objectType: provider ? 'identity_provider' : undefined,
    objectId: provider?.id ?? null,
    after: { reason, detail: detail?.slice(0, 300) ?? null, email, protocol: provider?.kind ?? null },
  });
  const err = new SsoRefused(reason, detail);
  err.audited = true;
  throw err;
}

// --- the login page's routing ---

/** Where an address signs in: an enabled provider of its confirmed domain, and whether its password login is off. */
export async function routeEmail(db: Knex, email: string) {
  const route = await idp.routeFor(db, domainOf(accounts.normaliseEmail(email)));
  if (!route) return { provider: null, passwordLogin: true };
  return { provider: route.provider.enabled ? route.provider : null, passwordLogin: route.domain.passwordLogin };
}

// --- completing a login ---

interface Grants {
  audits: AuditRecord[];
}

/**
 * Turns a verified identity into a Portico login: refuses what the provider may not vouch for, then
 * creates or finds the account and brings its roles and seats in line with its groups, in one
 * transaction with the `auth.login` event. The caller then logs the account in (a new session id).
 */
export async function completeLogin(
  deps: ServiceDeps,
  actor: Actor,
  provider: idp.IdentityProvider,
  identity: VerifiedIdentity,
): Promise<accounts.Account> {
  const email = identity.email ? accounts.normaliseEmail(identity.email) : null;
  if (!email || !/^[^@\s]+@[^@\s]+$/.test(email) || email.length > 254)
    return refuse(deps, actor, provider, 'email_missing');
  const route = await idp.routeFor(deps.db, domainOf(email));
  // A provider vouches only for the domains the vendor confirmed for it: nobody else's address.
  if (!route || route.provider.id !== provider.id)
    return refuse(deps, actor, provider, 'domain_not_verified', domainOf(email), email);
  const fresh = await idp.find(deps.db, provider.id);
  if (!fresh?.enabled) return refuse(deps, actor, provider, 'disabled', null, email);

  const now = deps.clock.now();
  const mappings = (await idp.mappingsOf(deps.db, provider.id)).filter((m) => identity.groups.includes(m.groupName));
  const outcome = await inTransaction(deps.db, async (trx) => {
    const linked = await idp.accountOfSubject(trx, provider.id, identity.subject);
    let account = linked ? await accounts.findById(trx, linked) : await accounts.findByEmail(trx, email);
    if (account?.role === 'admin') return { refused: 'admin_account' as const };
    if (account?.disabled) return { refused: 'account_disabled' as const };
    const grants: Grants = { audits: [] };
    if (!account) {
      if (!mappings.length) return { refused: 'no_mapping' as const };
      const role: accounts.Role = mappings.some((m) => m.kind === 'role') ? 'manager' : 'end_user';
      const id = await accounts.insert(
        trx,
        { email, name: identity.name?.slice(0, 200) || email, passwordHash: null, role, language: 'en' },
        now,
      );
      account = (await accounts.findById(trx, id))!;
      grants.audits.push({
        action: 'sso.account_created',
        objectType: 'account',
        objectId: id,
        after: { ...accounts.auditView(account), providerId: provider.id },
      });
    }
    if (!linked) await idp.linkIdentity(trx, provider.id, identity.subject, account.id, now);
    else await idp.touchIdentity(trx, provider.id, identity.subject, now);
    if (account.role === 'manager') await syncRoles(trx, provider, account, mappings, grants, now);
    else await syncSeats(trx, provider, account, mappings, grants, now);
    for (const audit of grants.audits) await recordAudit(trx, { ...actor, label: email }, now, audit);
    // The groups as the provider sent them: what the vendor maps (Entra sends object ids, Google names).
    await recordLogin(trx, actor, account, now, {
      via: provider.kind,
      providerId: provider.id,
      groups: identity.groups.slice(0, 50),
    });
    return { account };
  });
  if ('refused' in outcome) {
    const detail = outcome.refused === 'no_mapping' ? `groups: ${identity.groups.join(', ') || '(none)'}` : null;
    return refuse(deps, actor, provider, outcome.refused!, detail, email);
  }
  return outcome.account;
}

/** A manager's roles on the customer's orders: what the groups map to; what single sign-on gave and the groups no longer name goes. */
async function syncRoles(
  trx: Knex,
  provider: idp.IdentityProvider,
  account: accounts.Account,
  mappings: idp.Mapping[],
  grants: Grants,
  now: Date,
) {
  const wanted = new Map<number, number>();
  for (const m of mappings) if (m.kind === 'role' && !wanted.has(m.orderId!)) wanted.set(m.orderId!, m.roleId!);
  const granted = new Set(await idp.ssoRolesOf(trx, account.id, provider.id));
  for (const [orderId, roleId] of wanted) {
    const order = await orders.findById(trx, orderId);
    if (!order || order.customerId !== provider.customerId) continue;
    const current = await managers.assignment(trx, account.id, orderId);
    if (!current) {
      await managers.assignOrder(trx, account.id, orderId, roleId, null, now);
      await idp.markRole(trx, orderId, account.id, provider.id);
      grants.audits.push(roleAudit('sso.role_granted', account, orderId, roleId));
    } else if (granted.has(orderId) && current.roleId !== roleId) {
      await managers.setOrderRole(trx, account.id, orderId, roleId);
      grants.audits.push(roleAudit('sso.role_granted', account, orderId, roleId));
    }
  }
  for (const orderId of granted) {
    if (wanted.has(orderId)) continue;
    await managers.unassignOrder(trx, account.id, orderId);
    await idp.unmarkRole(trx, orderId, account.id);
    grants.audits.push(roleAudit('sso.role_removed', account, orderId, null));
  }
}

const roleAudit = (
  action: 'sso.role_granted' | 'sso.role_removed',
  account: accounts.Account,
  orderId: number,
  roleId: number | null,
): AuditRecord => ({
  action,
  objectType: 'account',
  objectId: account.id,
  orderId,
  after: { email: account.email, orderId, roleId },
});

/** The seats a user-based license has for users: its max activations, none when unlimited (docs/sso.md, "Seats"). */
export const seatCount = (l: Pick<licenses.License, 'unlimitedActivations' | 'maxActivations'>) =>
  l.unlimitedActivations ? Number.POSITIVE_INFINITY : l.maxActivations;

/**
 * An end user's seats on the customer's user-based licenses: one per license their groups map to,
 * up to the license's count. When every seat is taken, the customer's seat rule decides: the seat
 * single sign-on gave and used least recently goes to the newcomer, or (freeze) the newcomer waits
 * until an admin frees a seat. Seats single sign-on gave whose group is gone are taken back.
 */
async function syncSeats(
  trx: Knex,
  provider: idp.IdentityProvider,
  account: accounts.Account,
  mappings: idp.Mapping[],
  grants: Grants,
  now: Date,
) {
  const wanted = [...new Set(mappings.filter((m) => m.kind === 'seat').map((m) => m.licenseId!))];
  const rule = await idp.seatRule(trx, provider.customerId);
  for (const licenseId of wanted) {
    await licenses.lockLicense(trx, licenseId);
    const license = await licenses.findById(trx, licenseId, now);
    if (license?.authorizationMethod !== 'user') continue;
    const order = await orders.findById(trx, license.orderId);
    if (!order || order.customerId !== provider.customerId) continue;
    const seat = (what: AuditRecord['action'], after: Record<string, unknown>): AuditRecord => ({
      action: what,
      objectType: 'license',
      objectId: licenseId,
      orderId: license.orderId,
      after: { accountId: account.id, email: account.email, rule, ...after },
    });
    const count = seatCount(license);
    if (await assignments.find(trx, licenseId, account.id)) {
      await idp.touchSeat(trx, licenseId, account.id, now);
      await idp.removeWait(trx, licenseId, account.id);
      if (rule === 'least_recently_used') await reclaimOver(trx, licenseId, count, account.id, seat, grants);
      continue;
    }
    if (rule === 'least_recently_used') await reclaimOver(trx, licenseId, count - 1, account.id, seat, grants);
    const used = await idp.countAssigned(trx, licenseId);
    if (used >= count) {
      if (await idp.addWait(trx, licenseId, account.id, now))
        grants.audits.push(seat('sso.seat_waiting', { used, seats: count }));
      continue;
    }
    await assignments.insert(trx, licenseId, account.id, 1, now);
    await idp.markSeat(trx, licenseId, account.id, provider.id, now);
    await idp.removeWait(trx, licenseId, account.id);
    grants.audits.push(seat('sso.seat_assigned', { used: used + 1, seats: count }));
  }
  for (const licenseId of await idp.ssoSeatsOf(trx, account.id, provider.id)) {
    if (wanted.includes(licenseId)) continue;
    await licenses.lockLicense(trx, licenseId);
    await assignments.remove(trx, licenseId, account.id);
    await idp.unmarkSeat(trx, licenseId, account.id);
    const license = await licenses.findById(trx, licenseId, now);
    grants.audits.push({
      action: 'sso.seat_removed',
      objectType: 'license',
      objectId: licenseId,
      orderId: license?.orderId ?? null,
      after: { accountId: account.id, email: account.email, reason: 'group_removed' },
    });
  }
  const waiting = await idp.waitsOf(trx, account.id);
  for (const licenseId of waiting) if (!wanted.includes(licenseId)) await idp.removeWait(trx, licenseId, account.id);
}

/** Least recently used first: takes back seats single sign-on gave (never `keep`'s) until at most `limit` are used. */
async function reclaimOver(
  trx: Knex,
  licenseId: number,
  limit: number,
  keep: number,
  seat: (what: AuditRecord['action'], after: Record<string, unknown>) => AuditRecord,
  grants: Grants,
) {
  let used = await idp.countAssigned(trx, licenseId);
  if (used <= limit) return;
  for (const holder of await idp.seatsByLastUse(trx, licenseId)) {
    if (used <= limit) break;
    if (holder.accountId === keep) continue;
    await assignments.remove(trx, licenseId, holder.accountId);
    await idp.unmarkSeat(trx, licenseId, holder.accountId);
    used -= 1;
    grants.audits.push({
      ...seat('sso.seat_reclaimed', { lastUsedAt: holder.lastUsedAt.toISOString() }),
      after: {
        accountId: holder.accountId,
        email: holder.email,
        rule: 'least_recently_used',
        lastUsedAt: holder.lastUsedAt.toISOString(),
      },
    });
  }
}

// --- configuration (console, and managers allowed on the customer) ---

export interface ProviderInput {
  kind: idp.ProviderKind;
  name: string;
  enabled: boolean;
  groupsClaim: string;
  oidcIssuer?: string | null;
  oidcClientId?: string | null;
  /** Empty: keep the stored secret. */
  oidcClientSecret?: string | null;
  oidcScopes?: string | null;
  samlMetadataUrl?: string | null;
  samlEntityId?: string | null;
  samlSsoUrl?: string | null;
  samlCertificates?: string | null;
}

const providerAudit = (p: idp.IdentityProvider) => ({
  customerId: p.customerId,
  kind: p.kind,
  name: p.name,
  enabled: p.enabled,
  oidcIssuer: p.oidcIssuer,
  oidcClientId: p.oidcClientId,
  oidcScopes: p.oidcScopes,
  samlEntityId: p.samlEntityId,
  samlSsoUrl: p.samlSsoUrl,
  samlMetadataUrl: p.samlMetadataUrl,
  groupsClaim: p.groupsClaim,
  secretSet: !!p.oidcClientSecret,
});

const fieldsFrom = (input: ProviderInput): idp.ProviderFields => ({
  name: input.name,
  enabled: input.enabled,
  groupsClaim: input.groupsClaim,
  ...(input.kind === 'oidc'
    ? {
        oidcIssuer: input.oidcIssuer ?? null,
        oidcClientId: input.oidcClientId ?? null,
        oidcScopes: input.oidcScopes ?? null,
      }
    : {
        samlMetadataUrl: input.samlMetadataUrl ?? null,
        samlEntityId: input.samlEntityId ?? null,
        samlSsoUrl: input.samlSsoUrl ?? null,
        samlCertificates: input.samlCertificates ?? null,
      }),
});

export async function createProvider(
  deps: ServiceDeps & { secretBox: SecretBox },
  actor: Actor,
  customerId: number,
  input: ProviderInput,
): Promise<number> {
  return auditedChange(deps, actor, async (trx, now) => {
    const id = await idp.insert(trx, customerId, input.kind, fieldsFrom(input), now);
    if (input.kind === 'oidc' && input.oidcClientSecret)
      await idp.update(
        trx,
        id,
        { oidcClientSecret: deps.secretBox.seal(input.oidcClientSecret, secretContext(id)) },
        now,
      );
    const created = (await idp.find(trx, id))!;
    return {
      result: id,
      audit: {
        action: 'identity_provider.created',
        objectType: 'identity_provider',
        objectId: id,
        after: providerAudit(created),
      },
    };
  });
}

export async function updateProvider(
  deps: ServiceDeps & { secretBox: SecretBox },
  actor: Actor,
  provider: idp.IdentityProvider,
  input: ProviderInput,
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const fields: Partial<idp.ProviderFields> = fieldsFrom({ ...input, kind: provider.kind });
    if (provider.kind === 'oidc' && input.oidcClientSecret)
      fields.oidcClientSecret = deps.secretBox.seal(input.oidcClientSecret, secretContext(provider.id));
    await idp.update(trx, provider.id, fields, now);
    const after = (await idp.find(trx, provider.id))!;
    return {
      result: undefined,
      audit: {
        action: 'identity_provider.updated',
        objectType: 'identity_provider',
        objectId: provider.id,
        before: providerAudit(provider),
        after: { ...providerAudit(after), secretChanged: !!input.oidcClientSecret },
      },
    };
  });
}

export async function deleteProvider(deps: ServiceDeps, actor: Actor, provider: idp.IdentityProvider): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    await idp.remove(trx, provider.id);
    return {
      result: undefined,
      audit: {
        action: 'identity_provider.deleted',
        objectType: 'identity_provider',
        objectId: provider.id,
        before: providerAudit(provider),
      },
    };
  });
}

const DOMAIN = /^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$/;

export async function addDomain(deps: ServiceDeps, actor: Actor, provider: idp.IdentityProvider, text: string) {
  const domain = text.trim().toLowerCase().replace(/^@/, '');
  if (!DOMAIN.test(domain)) throw new ValidationError({ domain: 'sso.domains.invalid' });
  await auditedChange(deps, actor, async (trx, now) => {
    if (!(await idp.addDomain(trx, provider.id, domain, now)))
      throw new ValidationError({ domain: 'sso.domains.taken' });
    return {
      result: undefined,
      audit: { action: 'sso_domain.added', objectType: 'identity_provider', objectId: provider.id, after: { domain } },
    };
  });
}

/** Confirming a domain routes its addresses to the provider: the vendor's act (console), never a manager's. */
export async function changeDomain(
  deps: ServiceDeps,
  actor: Actor,
  provider: idp.IdentityProvider,
  domainId: number,
  change: 'verify' | 'unverify' | 'password_on' | 'password_off' | 'remove',
) {
  await auditedChange(deps, actor, async (trx, now) => {
    const domain = await idp.findDomain(trx, provider.id, domainId);
    if (!domain) throw notFound();
    if (change === 'remove') await idp.removeDomain(trx, domain.id);
    else if (change === 'verify')
      await idp.updateDomain(trx, domain.id, { verifiedAt: now, verifiedBy: actor.accountId });
    else if (change === 'unverify') await idp.updateDomain(trx, domain.id, { verifiedAt: null, verifiedBy: null });
    else await idp.updateDomain(trx, domain.id, { passwordLogin: change === 'password_on' });
    return {
      result: undefined,
      audit: {
        action: change === 'remove' ? 'sso_domain.removed' : 'sso_domain.changed',
        objectType: 'identity_provider',
        objectId: provider.id,
        before: { domain: domain.domain, verified: !!domain.verifiedAt, passwordLogin: domain.passwordLogin },
        after: change === 'remove' ? undefined : { domain: domain.domain, change },
      },
    };
  });
}

export interface MappingInput {
  groupName: string;
  kind: 'role' | 'seat';
  orderId: number | null;
  roleId: number | null;
  licenseId: number | null;
}

/**
 * A group → role or seat mapping. The order or license must be the customer's; a manager (`limit`)
 * may map only to orders where their own role allows managing managers, and only to roles no
 * stronger than their own there.
 */
export async function addMapping(
  deps: ServiceDeps,
  actor: Actor,
  provider: idp.IdentityProvider,
  input: MappingInput,
  limit: { accountId: number } | null,
) {
  await auditedChange(deps, actor, async (trx, now) => {
    let orderId: number;
    if (input.kind === 'role') {
      const order = input.orderId ? await orders.findById(trx, input.orderId) : undefined;
      if (!order || order.customerId !== provider.customerId)
        throw new ValidationError({ order_id: 'sso.mappings.orderInvalid' });
      const role = input.roleId ? await roles.find(trx, input.roleId) : undefined;
      if (!role) throw new ValidationError({ role_id: 'sso.mappings.roleInvalid' });
      if (limit) {
        const own = await roles.permissionsOn(trx, limit.accountId, order.id);
        if (!own?.includes('manage_managers') || !roles.within(role.permissions, own))
          throw new ValidationError({ role_id: 'sso.mappings.roleTooStrong' });
      }
      orderId = order.id;
    } else {
      const license = input.licenseId ? await licenses.findById(trx, input.licenseId, now) : undefined;
      const order = license ? await orders.findById(trx, license.orderId) : undefined;
      if (!license || !order || order.customerId !== provider.customerId || license.authorizationMethod !== 'user')
        throw new ValidationError({ license_id: 'sso.mappings.licenseInvalid' });
      if (limit) {
        const own = await roles.permissionsOn(trx, limit.accountId, order.id);
        if (!own?.includes('manage_license_users'))
          throw new ValidationError({ license_id: 'sso.mappings.licenseInvalid' });
      }
      orderId = order.id;
    }
    const id = await idp.insertMapping(
      trx,
      {
        providerId: provider.id,
        groupName: input.groupName,
        kind: input.kind,
        orderId: input.kind === 'role' ? orderId : null,
        roleId: input.kind === 'role' ? input.roleId : null,
        licenseId: input.kind === 'seat' ? input.licenseId : null,
      },
      now,
    );
    return {
      result: undefined,
      audit: {
        action: 'sso_mapping.added',
        objectType: 'identity_provider',
        objectId: provider.id,
        orderId,
        after: { mappingId: id, ...input },
      },
    };
  });
}

export async function removeMapping(
  deps: ServiceDeps,
  actor: Actor,
  provider: idp.IdentityProvider,
  mappingId: number,
) {
  await auditedChange(deps, actor, async (trx) => {
    const mapping = await idp.findMapping(trx, provider.id, mappingId);
    if (!mapping) throw notFound();
    await idp.removeMapping(trx, mapping.id);
    return {
      result: undefined,
      audit: { action: 'sso_mapping.removed', objectType: 'identity_provider', objectId: provider.id, before: mapping },
    };
  });
}

export async function setSeatRule(deps: ServiceDeps, actor: Actor, customerId: number, rule: idp.SeatRule) {
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await idp.seatRule(trx, customerId);
    await idp.setSeatRule(trx, customerId, rule, now);
    return {
      result: undefined,
      audit: {
        action: 'customer.seat_rule_changed',
        objectType: 'customer',
        objectId: customerId,
        before: { rule: before },
        after: { rule },
      },
    };
  });
}

/** The seats of the licenses the customer's providers map groups to: used / count, rule, who waits. */
export async function seatOverview(db: Knex, customerId: number, now: Date) {
  const providers = await idp.ofCustomer(db, customerId);
  const licenseIds = new Set<number>();
  for (const p of providers)
    for (const m of await idp.mappingsOf(db, p.id)) if (m.licenseId) licenseIds.add(m.licenseId);
  const rows = [];
  for (const id of licenseIds) {
    const license = await licenses.findById(db, id, now);
    if (!license) continue;
    const count = seatCount(license);
    rows.push({
      licenseId: id,
      productName: license.productName,
      orderRef: license.orderRef,
      used: await idp.countAssigned(db, id),
      seats: Number.isFinite(count) ? count : null,
    });
  }
  return { rule: await idp.seatRule(db, customerId), licenses: rows, waits: await idp.waitsOn(db, [...licenseIds]) };
}

export const refusalError = (reason: RefusalReason) =>
  new AppError('refusal', `sso_${reason}`, 403, `sso.refused.${reason}`);
