import type { Knex } from 'knex';
import type { Config } from '../../config/index.ts';
import { type SecretBox, dataDirSecretBox } from '../crypto/secret-box.ts';
import { AppError } from '../lib/errors.ts';
import {
  DEFAULT_TIMEOUT_SECONDS,
  DEFAULT_USER_FILTER,
  directoryLogin,
  directoryStandings,
  type LdapSettings,
} from '../lib/ldap.ts';
import type { Logger } from '../lib/logger.ts';
import { inTransaction } from '../lib/transaction.ts';
import * as accounts from '../models/accounts.ts';
import { findStoredLdap, saveStoredLdap, type StoredLdap } from '../models/ldap-settings.ts';
import { auditedChange } from './changes.ts';
import { recordAudit } from './audit.ts';
import { systemActor, type Actor, type ServiceDeps } from './context.ts';
import { endOtherSessions } from './auth.ts';
import type { PasswordAuthority } from './throttles.ts';

/**
 * LDAP / Active Directory sign-in for the vendor's staff (docs/operations.md, "LDAP for the vendor's
 * staff"; docs/decisions.md). The login form's password check (services/throttles.ts checkPassword,
 * after its throttles) asks `ldapAuthority` first:
 *
 * - an address of a local account (one with no `directory_dn`: the first admin, every local admin,
 *   managers and end users) is never sent to the directory: its local password decides (break-glass);
 * - any other address (unknown here, or an account made from the directory) is looked up and bound in
 *   the directory. A member of the admin group gets its admin account (made at the first login, no
 *   local password); a non-member is refused, and an account it had is disabled.
 */

export const BIND_PASSWORD_CONTEXT = 'ldap:bind-password';

export interface LdapDeps extends ServiceDeps {
  config: Config;
  logger: Logger;
}

export type LdapSource =
  | { source: 'environment'; settings: LdapSettings }
  | { source: 'console'; settings: LdapSettings | null; stored: StoredLdap }
  | { source: 'none' };

const boxFor = (config: Config, box?: SecretBox) => box ?? dataDirSecretBox(config.dataDir);

/** Where the staff login's LDAP settings come from: the environment wins; `settings` is null while off. */
export async function ldapSource(deps: LdapDeps, box?: SecretBox): Promise<LdapSource> {
  if (deps.config.ldap) return { source: 'environment', settings: deps.config.ldap };
  const stored = await findStoredLdap(deps.db);
  if (!stored) return { source: 'none' };
  const bindPassword = stored.bindPasswordSealed
    ? boxFor(deps.config, box).open(stored.bindPasswordSealed, BIND_PASSWORD_CONTEXT)
    : null;
  if (stored.enabled && bindPassword === null)
    deps.logger.warn('ldap: the stored bind password cannot be opened (another secret-box key?): LDAP login is off');
  const settings =
    stored.enabled && bindPassword !== null
      ? {
          url: stored.url,
          startTls: stored.startTls,
          allowPlain: stored.allowPlain,
          caPem: stored.caPem,
          bindDn: stored.bindDn,
          bindPassword,
          userBase: stored.userBase,
          userFilter: stored.userFilter,
          adminGroup: stored.adminGroup,
          timeoutMs: stored.timeoutSeconds * 1000,
        }
      : null;
  return { source: 'console', settings, stored };
}

export interface LdapInput {
  enabled: boolean;
  url: string;
  startTls: boolean;
  allowPlain: boolean;
  caPem: string | null;
  bindDn: string;
  /** Empty: keep the stored one. */
  bindPassword: string | null;
  userBase: string;
  userFilter: string;
  adminGroup: string;
  timeoutSeconds: number;
}

export const EMPTY_LDAP: StoredLdap = {
  enabled: false,
  url: '',
  startTls: true,
  allowPlain: false,
  caPem: null,
  bindDn: '',
  bindPasswordSealed: null,
  userBase: '',
  userFilter: DEFAULT_USER_FILTER,
  adminGroup: '',
  timeoutSeconds: DEFAULT_TIMEOUT_SECONDS,
};

/** What an audit event may show of the settings (never the password, sealed or not). */
const auditView = ({ bindPasswordSealed, caPem, ...rest }: StoredLdap) => ({
  ...rest,
  caPem: caPem ? 'set' : null,
  bindPassword: bindPasswordSealed ? 'set' : null,
});

/**
 * Saves the console's LDAP settings (validated by the form; forms/ldap.ts), sealing a new bind
 * password; one `settings.ldap_updated` event. Refused (409) while the environment configures LDAP.
 */
export async function saveLdapSettings(deps: LdapDeps, actor: Actor, input: LdapInput, box?: SecretBox): Promise<void> {
  if (deps.config.ldap) throw AppError.conflict('ldap.settings.fromEnvironment');
  await auditedChange(deps, actor, async (trx, now) => {
    const before = (await findStoredLdap(trx)) ?? EMPTY_LDAP;
    const { bindPassword, ...rest } = input;
    const after: StoredLdap = {
      ...rest,
      bindPasswordSealed: bindPassword
        ? boxFor(deps.config, box).seal(bindPassword, BIND_PASSWORD_CONTEXT)
        : before.bindPasswordSealed,
    };
    await saveStoredLdap(trx, after, now);
    return {
      result: undefined,
      audit: {
        action: 'settings.ldap_updated',
        objectType: 'settings',
        objectId: 'ldap',
        before: auditView(before),
        after: { ...auditView(after), bindPasswordChanged: !!bindPassword },
      },
    };
  });
}

/** Whether a stored bind password exists (the console's form says so instead of showing it). */
export const hasStoredBindPassword = (source: LdapSource) =>
  source.source === 'console' && !!source.stored.bindPasswordSealed;

/**
 * The directory's answer for a login, or undefined when the local password decides (LDAP off, or
 * a local account). Throws 503 (directory unavailable) and 403 (not in the admin group, or the
 * address belongs to a local account) after auditing; the login form shows either message.
 */
export function ldapAuthority(deps: LdapDeps, actor: Actor): PasswordAuthority {
  return async (address, password, account) => {
    if (account && !account.directoryDn) return undefined;
    const source = await ldapSource(deps);
    if (source.source === 'none' || !source.settings) return undefined;
    const answer = await directoryLogin(source.settings, address, password);
    const now = deps.clock.now();
    const refuse = async (reason: string, subject: accounts.Account | undefined, extra: object = {}) =>
      recordAudit(deps.db, { ...actor, accountId: subject?.id ?? null, label: subject?.email ?? address }, now, {
        action: 'auth.login_failed',
        objectType: subject ? 'account' : undefined,
        objectId: subject?.id,
        after: { email: address, reason, via: 'ldap', ...extra },
      });
    switch (answer.kind) {
      case 'unknown_user':
        return { failed: 'ldap_unknown_user' };
      case 'ambiguous_user':
        deps.logger.warn({ email: address }, 'ldap: the user filter matched more than one entry; login refused');
        return { failed: 'ldap_ambiguous_user' };
      case 'wrong_password':
        return { failed: 'ldap_wrong_password' };
      case 'unavailable':
        deps.logger.warn({ cause: answer.cause }, 'ldap: the directory could not answer a login');
        await refuse('ldap_unavailable', account);
        throw AppError.http(503, 'ldap.login.unavailable');
    }
    const email = accounts.normaliseEmail(answer.email ?? address);
    if (email.length > 254 || !/^[^\s@]+@[^\s@]+$/.test(email)) {
      // The entry's `mail` is no address an account can have: refused, said in the log.
      deps.logger.warn({ dn: answer.dn }, 'ldap: the entry has no usable e-mail address; login refused');
      await refuse('ldap_no_usable_email', account, { dn: answer.dn });
      throw AppError.http(403, 'ldap.login.notPermitted');
    }
    const existing = account ?? (await accounts.findByEmail(deps.db, email));
    if (existing && !existing.directoryDn) {
      // The directory's address is a local account's: never taken over (a local admin signs in with its password).
      await refuse('ldap_local_account_exists', existing, { dn: answer.dn });
      throw AppError.http(403, 'ldap.login.notPermitted');
    }
    if (!answer.member) {
      if (existing && !existing.disabled)
        await disableByDirectory(deps, { ...actor, accountId: existing.id, label: existing.email }, existing, {
          dn: answer.dn,
          group: source.settings!.adminGroup,
        });
      await refuse('ldap_not_in_group', existing, { dn: answer.dn });
      throw AppError.http(403, 'ldap.login.notPermitted');
    }
    if (existing) {
      if (existing.directoryDn !== answer.dn)
        await accounts.update(deps.db, existing.id, { directoryDn: answer.dn }, now);
      return { account: (await accounts.findById(deps.db, existing.id))! };
    }
    return { account: await createFromDirectory(deps, actor, email, answer.name ?? email, answer.dn) };
  };
}

/**
 * A directory account whose person left the admin group (or the directory): disabled and every
 * session of it ended at once, in one transaction with its audit event.
 */
async function disableByDirectory(
  deps: LdapDeps,
  actor: Actor,
  account: accounts.Account,
  detail: object,
): Promise<void> {
  const now = deps.clock.now();
  await inTransaction(deps.db, async (trx) => {
    await accounts.update(trx, account.id, { disabled: true }, now);
    await endOtherSessions(trx, { ...actor, accountId: null }, account.id);
    await recordAudit(trx, actor, now, {
      action: 'account.disabled_by_directory',
      objectType: 'account',
      objectId: account.id,
      before: { disabled: false },
      after: { disabled: true, ...detail },
    });
  });
}

/** Whether staff sign in through LDAP now (configured and switched on, by the console or the environment). */
export async function directoryInUse(deps: LdapDeps): Promise<boolean> {
  const source = await ldapSource(deps);
  return source.source !== 'none' && source.settings !== null;
}

/** How often the directory is asked about every enabled directory account (the `ldap.check` job, app/jobs.ts). */
export const DIRECTORY_CHECK_EVERY_MS = 5 * 60_000;

/**
 * The periodic directory check (job `ldap.check`): every enabled account made from the directory is
 * looked up by its DN; one whose entry is gone or no longer in the admin group is disabled and its
 * sessions end, without waiting for its next login. A directory that cannot answer disables nobody
 * (said in the log; the next run asks again). Returns how many were disabled.
 */
export async function checkDirectoryAccounts(deps: LdapDeps): Promise<number> {
  const source = await ldapSource(deps);
  if (source.source === 'none' || !source.settings) return 0;
  const staff = await accounts.enabledDirectoryAccounts(deps.db);
  if (!staff.length) return 0;
  const answer = await directoryStandings(
    source.settings,
    staff.map((a) => a.directoryDn!),
  );
  if (answer.kind === 'unavailable') {
    deps.logger.warn(
      { cause: answer.cause },
      'ldap: the directory could not answer the periodic check; nobody disabled',
    );
    return 0;
  }
  let disabled = 0;
  for (const account of staff) {
    const standing = answer.standings.get(account.directoryDn!);
    if (standing === 'member') continue;
    await disableByDirectory(deps, { ...systemActor('directory check') }, account, {
      dn: account.directoryDn,
      group: source.settings.adminGroup,
      via: 'check',
      standing,
    });
    disabled++;
  }
  return disabled;
}

/** The first directory login: an admin account with no local password (a second login at the same instant finds it). */
async function createFromDirectory(
  deps: LdapDeps,
  actor: Actor,
  email: string,
  name: string,
  dn: string,
): Promise<accounts.Account> {
  const now = deps.clock.now();
  try {
    const id = await inTransaction(deps.db, async (trx: Knex) => {
      const id = await accounts.insert(
        trx,
        {
          email,
          name: name.slice(0, 200),
          passwordHash: null,
          role: 'admin',
          language: deps.config.defaultLanguage,
          directoryDn: dn,
        },
        now,
      );
      await recordAudit(trx, { ...actor, accountId: id, label: email }, now, {
        action: 'account.created_from_directory',
        objectType: 'account',
        objectId: id,
        after: { email, name, role: 'admin', dn },
      });
      return id;
    });
    return (await accounts.findById(deps.db, id))!;
  } catch (err) {
    const raced = await accounts.findByEmail(deps.db, email);
    if (raced?.directoryDn) return raced;
    throw err;
  }
}
