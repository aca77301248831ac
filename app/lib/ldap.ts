import tls from 'node:tls';
import { Client, Filter, FilterParser, InvalidCredentialsError } from 'ldapts';

/**
 * The LDAP conversation of a staff login (docs/operations.md, "LDAP for the vendor's staff"), with
 * ldapts: over TLS only (LDAPS, or StartTLS before anything else is said), the service account binds
 * and searches the person by the filter (the login escaped per RFC 4515), then the found entry binds
 * with the typed password, then the service account asks whether that entry is in the admin group.
 * Nothing here touches the database: services/ldap.ts decides what the answer means.
 */

export interface LdapSettings {
  /** ldaps://host[:port] or ldap://host[:port] (then StartTLS, unless plain LDAP is allowed). */
  url: string;
  startTls: boolean;
  /** Plain LDAP without TLS: passwords in clear on the wire. Only for a lab or a test (documented). */
  allowPlain: boolean;
  /** PEM of the certificate authority (or the server's self-signed certificate); null: the system's. */
  caPem: string | null;
  bindDn: string;
  bindPassword: string;
  userBase: string;
  /** With `{login}` where the typed login goes (escaped). */
  userFilter: string;
  /** Members of this group (memberOf on the entry, or member/uniqueMember on the group) are console admins. */
  adminGroup: string;
  timeoutMs: number;
}

export const DEFAULT_USER_FILTER = '(&(objectClass=person)(|(mail={login})(uid={login})))';
export const DEFAULT_TIMEOUT_SECONDS = 5;

export type DirectoryAnswer =
  | { kind: 'ok'; dn: string; email: string | null; name: string | null; member: boolean }
  | { kind: 'unknown_user' }
  | { kind: 'ambiguous_user' }
  | { kind: 'wrong_password' }
  /** Unreachable, timed out, TLS refused, the service account refused: `cause` is for the log only. */
  | { kind: 'unavailable'; cause: string };

/** The user filter with the login put in, escaped (`*`, `(`, `)`, `\` and NUL can change nothing). */
export function userFilterFor(template: string, login: string): string {
  return template.split('{login}').join(Filter.escape(login));
}

/** Whether the transport is encrypted, or plain LDAP was explicitly allowed. */
export function transportProblem(s: Pick<LdapSettings, 'url' | 'startTls' | 'allowPlain'>): string | null {
  if (s.url.startsWith('ldaps://') || s.startTls || s.allowPlain) return null;
  return 'plain LDAP sends passwords in clear: use ldaps://, or StartTLS, or allow plain LDAP explicitly (lab only)';
}

/** Field → problem for settings from any source (the console maps them to messages; the environment to one line). */
export function settingsProblems(s: LdapSettings): Partial<Record<keyof LdapSettings, string>> {
  const problems: Partial<Record<keyof LdapSettings, string>> = {};
  if (!/^ldaps?:\/\/[A-Za-z0-9.\-[\]:]+\/?$/.test(s.url))
    problems.url = 'must be ldaps://host[:port] or ldap://host[:port]';
  else if (transportProblem(s)) problems.url = transportProblem(s)!;
  if (s.url.startsWith('ldaps://') && s.startTls) problems.startTls = 'StartTLS is for ldap:// only';
  if (!s.userFilter.includes('{login}')) problems.userFilter = 'must contain {login}';
  else
    try {
      FilterParser.parseString(userFilterFor(s.userFilter, 'someone@example.com'));
    } catch {
      problems.userFilter = 'is not a valid LDAP filter';
    }
  for (const key of ['bindDn', 'userBase', 'adminGroup'] as const)
    if (!/^[^=,]+=[^=]/.test(s[key].trim()))
      problems[key] = 'must be a distinguished name such as cn=x,dc=example,dc=com';
  if (!s.bindPassword) problems.bindPassword = 'is required';
  if (s.caPem !== null && !s.caPem.includes('-----BEGIN CERTIFICATE-----'))
    problems.caPem = 'must be a PEM certificate';
  return problems;
}

/** DNs compared as the directory would for our purpose: case and spaces around separators ignored. */
export function sameDn(a: string, b: string): boolean {
  const norm = (dn: string) =>
    dn
      .replace(/\s*([,=+])\s*/g, '$1')
      .trim()
      .toLowerCase();
  return norm(a) === norm(b);
}

const first = (v: unknown): string | null => {
  const value = Array.isArray(v) ? v[0] : v;
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : null;
};
const all = (v: unknown): string[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]).map(String);

function tlsOptions(s: LdapSettings): tls.ConnectionOptions {
  const host = new URL(s.url).hostname.replace(/^\[|\]$/g, '');
  return {
    minVersion: 'TLSv1.2',
    rejectUnauthorized: true,
    ...(s.caPem ? { ca: [s.caPem] } : {}),
    // The name checked against the certificate is the configured host's, for LDAPS and for StartTLS
    // alike (an upgraded socket has no host of its own to check against).
    ...(/^[\d.]+$|:/.test(host) ? {} : { servername: host }),
    checkServerIdentity: (_name, cert) => tls.checkServerIdentity(host, cert),
  };
}

const causeOf = (err: unknown) =>
  err instanceof Error ? `${err.name}: ${(err as { code?: unknown }).code ?? ''} ${err.message}`.trim() : String(err);

/**
 * One conversation with the directory over TLS, as the service account: `run` says which step it is
 * in (for the log) and answers; any failure on the way becomes `unavailable` with its step and cause.
 */
async function conversation<T extends { kind: string }>(
  s: LdapSettings,
  run: (client: Client, step: (name: string) => void) => Promise<T>,
): Promise<T | { kind: 'unavailable'; cause: string }> {
  const problem = transportProblem(s);
  if (problem) return { kind: 'unavailable', cause: problem };
  const options = tlsOptions(s);
  const client = new Client({
    url: s.url,
    timeout: s.timeoutMs,
    connectTimeout: s.timeoutMs,
    ...(s.url.startsWith('ldaps://') ? { tlsOptions: options } : {}),
  });
  let current = 'connect';
  try {
    if (s.url.startsWith('ldap://') && s.startTls) {
      current = 'starttls';
      await client.startTLS(options);
    }
    current = 'service bind';
    await client.bind(s.bindDn, s.bindPassword);
    return await run(client, (name) => {
      current = name;
    });
  } catch (err) {
    // The configured group does not exist ("no such object"): a configuration fault, said as such in the log.
    if (current === 'group check' && (err as { code?: number }).code === 32)
      return { kind: 'unavailable', cause: `admin group not found: ${causeOf(err)}` };
    return { kind: 'unavailable', cause: `${current}: ${causeOf(err)}` };
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/** Whether the entry is in the admin group: its memberOf, else the group's member/uniqueMember (asked as the service account). */
async function inAdminGroup(
  client: Client,
  s: LdapSettings,
  entry: { dn: string; memberOf?: unknown },
): Promise<boolean> {
  if (all(entry.memberOf).some((g) => sameDn(g, s.adminGroup))) return true;
  const dn = Filter.escape(entry.dn);
  const { searchEntries: groups } = await client.search(s.adminGroup, {
    scope: 'base',
    filter: `(|(member=${dn})(uniqueMember=${dn}))`,
    attributes: ['1.1'],
    sizeLimit: 1,
  });
  return groups.length > 0;
}

/** One login against the directory. Never throws: every failure is one of the answers. */
export async function directoryLogin(s: LdapSettings, login: string, password: string): Promise<DirectoryAnswer> {
  // An empty password is an "unauthenticated bind" (RFC 4513 5.1.2), which many servers accept.
  if (!password) return { kind: 'wrong_password' };
  return conversation<DirectoryAnswer>(s, async (client, step) => {
    step('user search');
    const { searchEntries } = await client.search(s.userBase, {
      scope: 'sub',
      filter: userFilterFor(s.userFilter, login),
      attributes: ['mail', 'displayName', 'cn', 'memberOf'],
      sizeLimit: 2,
    });
    if (searchEntries.length === 0) return { kind: 'unknown_user' };
    if (searchEntries.length > 1) return { kind: 'ambiguous_user' };
    const entry = searchEntries[0]!;
    step('user bind');
    try {
      await client.bind(entry.dn, password);
    } catch (err) {
      if (err instanceof InvalidCredentialsError) return { kind: 'wrong_password' };
      throw err;
    }
    step('group check');
    await client.bind(s.bindDn, s.bindPassword);
    return {
      kind: 'ok',
      dn: entry.dn,
      email: first(entry.mail),
      name: first(entry.displayName) ?? first(entry.cn),
      member: await inAdminGroup(client, s, entry),
    };
  });
}

/** Where a directory account stands now: still in the admin group, out of it, or its entry is gone. */
export type DirectoryStanding = 'member' | 'not_member' | 'gone';

/**
 * Where each entry (by DN) stands now, asked as the service account in one conversation (the periodic
 * check of signed-in staff, services/ldap.ts). Never throws: unavailable when the directory cannot
 * answer, so that an outage disables nobody.
 */
export async function directoryStandings(
  s: LdapSettings,
  dns: readonly string[],
): Promise<{ kind: 'ok'; standings: Map<string, DirectoryStanding> } | { kind: 'unavailable'; cause: string }> {
  return conversation(s, async (client, step) => {
    const standings = new Map<string, DirectoryStanding>();
    for (const dn of dns) {
      step('entry lookup');
      let entry: { dn: string; memberOf?: unknown } | undefined;
      try {
        ({
          searchEntries: [entry],
        } = await client.search(dn, { scope: 'base', filter: '(objectClass=*)', attributes: ['memberOf'] }));
      } catch (err) {
        // "No such object": the entry was deleted (or moved) — the person left.
        if ((err as { code?: number }).code !== 32) throw err;
      }
      if (!entry) {
        standings.set(dn, 'gone');
        continue;
      }
      step('group check');
      standings.set(dn, (await inAdminGroup(client, s, entry)) ? 'member' : 'not_member');
    }
    return { kind: 'ok' as const, standings };
  });
}
