import crypto from 'node:crypto';
import type { Knex } from 'knex';
import * as accounts from '../models/accounts.ts';
import * as licenses from '../models/licenses.ts';
import * as assignments from '../models/license-users.ts';
import * as devices from '../models/devices.ts';
import { hashPassword } from '../lib/passwords.ts';
import { HttpError, ValidationError, notFound } from '../lib/errors.ts';
import { auditedChange } from './changes.ts';
import { mailAccountLink, type LinkMailDeps } from './auth.ts';
import type { Actor, ServiceDeps } from './context.ts';

/**
 * License users are portal accounts with role end_user, assigned to user-based licenses with an
 * activation limit of their own. New users get an e-mailed invitation (a link to set a password) or
 * a one-time password that the vendor passes on; either way they choose their own at first login.
 */

/** A readable one-time password: 16 symbols without look-alikes (≈ 90 bits). */
export function oneTimePassword(): string {
  const alphabet = 'abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789';
  return Array.from(crypto.randomBytes(16), (b) => alphabet[b % alphabet.length]).join('').replace(/(.{4})(?!$)/g, '$1-');
}

/** The end-user account for an address, created (without password) when missing. */
export async function findOrCreateEndUser(trx: Knex, email: string, name: string | null, language: string, now: Date): Promise<{ account: accounts.Account; created: boolean }> {
  const existing = await accounts.findByEmail(trx, email);
  if (existing) {
    if (existing.role !== 'end_user') throw new ValidationError({ email: 'licenseUsers.emailUsedByOtherRole' });
    return { account: existing, created: false };
  }
  const id = await accounts.insert(trx, { email, name: name || email.split('@')[0]!, passwordHash: null, role: 'end_user', language }, now);
  return { account: (await accounts.findById(trx, id))!, created: true };
}

export type CredentialMode = 'email' | 'password';

export interface NewLicenseUser {
  email: string;
  name: string;
  language: string;
  credentials: CredentialMode;
}

/** Creates a license user; returns the one-time password when that mode was chosen (shown once, never stored). */
export async function createLicenseUser(deps: LinkMailDeps, actor: Actor, input: NewLicenseUser): Promise<{ id: number; oneTimePassword: string | null }> {
  const password = input.credentials === 'password' ? oneTimePassword() : null;
  const passwordHash = password ? await hashPassword(password) : null;
  const account = await auditedChange(deps, actor, async (trx, now) => {
    if (await accounts.findByEmail(trx, input.email)) throw new ValidationError({ email: 'validation.emailTaken' });
    const id = await accounts.insert(trx, { email: input.email, name: input.name, language: input.language, role: 'end_user', passwordHash, mustChangePassword: !!password }, now);
    const created = (await accounts.findById(trx, id))!;
    return { result: created, audit: { action: 'license_user.created', objectType: 'account', objectId: id, after: { ...accounts.auditView(created), credentials: input.credentials } } };
  });
  if (!password) await mailAccountLink(deps, account, 'invite');
  return { id: account.id, oneTimePassword: password };
}

async function userBasedLicense(trx: Knex, licenseId: number, now: Date) {
  const license = await licenses.findById(trx, licenseId, now);
  if (!license) throw notFound();
  if (license.authorizationMethod !== 'user') throw new HttpError(409, 'licenseUsers.notUserBased');
  return license;
}

export async function assignInTransaction(trx: Knex, licenseId: number, accountId: number, maxActivations: number, now: Date): Promise<void> {
  if (await assignments.find(trx, licenseId, accountId)) throw new ValidationError({ email: 'licenseUsers.alreadyAssigned' });
  await assignments.insert(trx, licenseId, accountId, maxActivations, now);
}

/** Assigns a user (by e-mail, created and invited if new) to a user-based license. */
export async function assignUser(deps: LinkMailDeps, actor: Actor, licenseId: number, input: { email: string; name: string | null; maxActivations: number }): Promise<void> {
  const { account, created } = await auditedChange(deps, actor, async (trx, now) => {
    const license = await userBasedLicense(trx, licenseId, now);
    const found = await findOrCreateEndUser(trx, input.email, input.name, 'en', now);
    await assignInTransaction(trx, licenseId, found.account.id, input.maxActivations, now);
    return {
      result: found,
      audit: { action: 'license_user.assigned', objectType: 'license', objectId: licenseId, orderId: license.orderId, after: { accountId: found.account.id, email: found.account.email, maxActivations: input.maxActivations, accountCreated: found.created } },
    };
  });
  if (created) await mailAccountLink(deps, account, 'invite');
}

export async function setAssignmentLimit(deps: ServiceDeps, actor: Actor, licenseId: number, accountId: number, maxActivations: number): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const license = await userBasedLicense(trx, licenseId, now);
    const before = await assignments.find(trx, licenseId, accountId);
    if (!before) throw notFound();
    await assignments.setLimit(trx, licenseId, accountId, maxActivations);
    return { result: undefined, audit: { action: 'license_user.limit_changed', objectType: 'license', objectId: licenseId, orderId: license.orderId, before: { accountId, maxActivations: before.maxActivations }, after: { accountId, maxActivations } } };
  });
}

/** Unassigns a user; refused while the user still has active devices on the license. */
export async function unassignUser(deps: ServiceDeps, actor: Actor, licenseId: number, accountId: number): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const license = await userBasedLicense(trx, licenseId, now);
    const before = await assignments.find(trx, licenseId, accountId);
    if (!before) throw notFound();
    if (await devices.hasActiveForUser(trx, licenseId, accountId)) throw new HttpError(409, 'licenseUsers.hasActiveDevices');
    await assignments.remove(trx, licenseId, accountId);
    return { result: undefined, audit: { action: 'license_user.unassigned', objectType: 'license', objectId: licenseId, orderId: license.orderId, before: { accountId, maxActivations: before.maxActivations } } };
  });
}

/**
 * Resets an end user's password: `password` sets a one-time password (returned, shown once; the user
 * must change it at first login), `email` sends a reset link.
 */
export async function resetEndUserPassword(deps: LinkMailDeps, actor: Actor, accountId: number, mode: CredentialMode): Promise<string | null> {
  const password = mode === 'password' ? oneTimePassword() : null;
  const passwordHash = password ? await hashPassword(password) : undefined;
  const account = await auditedChange(deps, actor, async (trx, now) => {
    const account = await accounts.findById(trx, accountId);
    if (!account || account.role !== 'end_user') throw notFound();
    if (passwordHash) {
      await accounts.update(trx, accountId, { passwordHash, mustChangePassword: true }, now);
      await trx('password_reset_tokens').where({ account_id: accountId }).whereNull('used_at').update({ used_at: now });
    }
    return { result: account, audit: { action: mode === 'password' ? 'license_user.one_time_password_set' : 'license_user.reset_link_sent', objectType: 'account', objectId: accountId } };
  });
  if (mode === 'email') await mailAccountLink(deps, account, account.passwordHash ? 'reset' : 'invite');
  return password;
}
