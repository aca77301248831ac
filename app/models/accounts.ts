import type { Knex } from 'knex';
import { toBool, toDate } from './normalise.ts';

export type Role = 'admin' | 'manager' | 'end_user';
export const ROLES: Role[] = ['admin', 'manager', 'end_user'];

export interface Account {
  id: number;
  email: string;
  name: string;
  passwordHash: string | null;
  language: string;
  role: Role;
  mustChangePassword: boolean;
  disabled: boolean;
  totpSecret: string | null;
  totpEnabledAt: Date | null;
  lastLoginAt: Date | null;
  /** The LDAP entry a staff account signs in through (no local password; services/ldap.ts), else null. */
  directoryDn: string | null;
  createdAt: Date;
  updatedAt: Date;
}

type Row = Record<string, unknown>;

function fromRow(r: Row): Account {
  return {
    id: Number(r.id),
    email: String(r.email),
    name: String(r.name),
    passwordHash: (r.password_hash as string | null) ?? null,
    language: String(r.language),
    role: r.role as Role,
    mustChangePassword: toBool(r.must_change_password),
    disabled: toBool(r.disabled),
    totpSecret: (r.totp_secret as string | null) ?? null,
    totpEnabledAt: toDate(r.totp_enabled_at),
    lastLoginAt: toDate(r.last_login_at),
    directoryDn: (r.directory_dn as string | null) ?? null,
    createdAt: toDate(r.created_at)!,
    updatedAt: toDate(r.updated_at)!,
  };
}

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

export async function findById(db: Knex, id: number): Promise<Account | undefined> {
  const row = await db('accounts').where({ id }).first();
  return row ? fromRow(row) : undefined;
}

export async function findByEmail(db: Knex, email: string): Promise<Account | undefined> {
  const row = await db('accounts')
    .where({ email: normaliseEmail(email) })
    .first();
  return row ? fromRow(row) : undefined;
}

/** The enabled accounts made from the directory (the periodic directory check asks about each). */
export async function enabledDirectoryAccounts(db: Knex): Promise<Account[]> {
  return (await db('accounts').whereNotNull('directory_dn').where({ disabled: false }).orderBy('id')).map(fromRow);
}

export async function countByRole(db: Knex, role: Role): Promise<number> {
  const row = await db('accounts').where({ role }).count({ n: '*' }).first();
  return Number(row?.n ?? 0);
}

export interface NewAccount {
  email: string;
  name: string;
  passwordHash: string | null;
  role: Role;
  language: string;
  mustChangePassword?: boolean;
  directoryDn?: string | null;
}

export async function insert(db: Knex, a: NewAccount, now: Date): Promise<number> {
  const [id] = await db('accounts').insert({
    email: normaliseEmail(a.email),
    name: a.name,
    password_hash: a.passwordHash,
    role: a.role,
    language: a.language,
    must_change_password: a.mustChangePassword ?? false,
    disabled: false,
    ...(a.directoryDn ? { directory_dn: a.directoryDn } : {}),
    created_at: now,
    updated_at: now,
  });
  return Number(id);
}

export interface AccountChanges {
  name?: string;
  passwordHash?: string;
  language?: string;
  mustChangePassword?: boolean;
  disabled?: boolean;
  lastLoginAt?: Date;
  directoryDn?: string | null;
}

export async function update(db: Knex, id: number, c: AccountChanges, now: Date): Promise<void> {
  const row: Row = { updated_at: now };
  if (c.name !== undefined) row.name = c.name;
  if (c.passwordHash !== undefined) row.password_hash = c.passwordHash;
  if (c.language !== undefined) row.language = c.language;
  if (c.mustChangePassword !== undefined) row.must_change_password = c.mustChangePassword;
  if (c.disabled !== undefined) row.disabled = c.disabled;
  if (c.lastLoginAt !== undefined) row.last_login_at = c.lastLoginAt;
  if (c.directoryDn !== undefined) row.directory_dn = c.directoryDn;
  await db('accounts').where({ id }).update(row);
}

/** The fields of an account that an audit event may show (never the hash or TOTP secret). */
export function auditView(a: Account) {
  return {
    email: a.email,
    name: a.name,
    role: a.role,
    language: a.language,
    mustChangePassword: a.mustChangePassword,
    disabled: a.disabled,
  };
}

/** The end-user accounts among `ids`. */
export async function endUsersAmong(db: Knex, ids: number[]): Promise<number[]> {
  if (!ids.length) return [];
  const rows = await db('accounts').whereIn('id', ids).where({ role: 'end_user' }).select('id');
  return rows.map((r: { id: number }) => Number(r.id));
}
