import type { Knex } from 'knex';
import { ORDER_PERMISSIONS, type BuiltInRole, type OrderPermission } from '../policies/permissions.ts';
import { toBool } from './normalise.ts';

/** Roles (docs/user-portal.md, "Roles"): a named set of order permissions that a manager–order assignment carries. */
export interface Role {
  id: number;
  name: string;
  builtin: BuiltInRole | null;
  isDefault: boolean;
  permissions: OrderPermission[];
}

interface RoleRow {
  id: number;
  name: string;
  builtin: string | null;
  is_default: unknown;
}

/** Permissions in the order of ORDER_PERMISSIONS, whatever order the rows came in. */
const ordered = (perms: Iterable<string>) => {
  const set = new Set(perms);
  return ORDER_PERMISSIONS.filter((p) => set.has(p));
};

async function withPermissions(db: Knex, rows: RoleRow[]): Promise<Role[]> {
  const perms = rows.length
    ? await db('role_permissions')
        .whereIn(
          'role_id',
          rows.map((r) => r.id),
        )
        .select('role_id', 'permission')
    : [];
  return rows.map((r) => ({
    id: Number(r.id),
    name: String(r.name),
    builtin: (r.builtin as BuiltInRole | null) ?? null,
    isDefault: toBool(r.is_default),
    permissions: ordered(perms.filter((p) => Number(p.role_id) === Number(r.id)).map((p) => String(p.permission))),
  }));
}

/** Built-in roles first (Viewer, Operator, Manager), then the vendor's by name. */
export async function list(db: Knex): Promise<Role[]> {
  const rows = await db<RoleRow>('roles')
    .orderByRaw('CASE WHEN builtin IS NULL THEN 1 ELSE 0 END')
    .orderBy('id')
    .select('id', 'name', 'builtin', 'is_default');
  const roles = await withPermissions(db, rows);
  return [
    ...roles.filter((r) => r.builtin),
    ...roles.filter((r) => !r.builtin).sort((a, b) => a.name.localeCompare(b.name)),
  ];
}

export async function find(db: Knex, id: number): Promise<Role | undefined> {
  const row = await db<RoleRow>('roles').where({ id }).first('id', 'name', 'builtin', 'is_default');
  return row ? (await withPermissions(db, [row]))[0] : undefined;
}

export async function findDefault(db: Knex): Promise<Role> {
  const row = await db<RoleRow>('roles').where({ is_default: true }).first('id', 'name', 'builtin', 'is_default');
  return (await withPermissions(db, [row!]))[0];
}

export async function findBuiltIn(db: Knex, builtin: BuiltInRole): Promise<Role> {
  const row = await db<RoleRow>('roles').where({ builtin }).first('id', 'name', 'builtin', 'is_default');
  return (await withPermissions(db, [row!]))[0];
}

/** The permissions of `accountId`'s role on `orderId`, or null when the account is not assigned to it (one query). */
export async function permissionsOn(db: Knex, accountId: number, orderId: number): Promise<OrderPermission[] | null> {
  const rows = await db('manager_orders')
    .leftJoin('role_permissions', 'role_permissions.role_id', 'manager_orders.role_id')
    .where({ 'manager_orders.account_id': accountId, 'manager_orders.order_id': orderId })
    .select('role_permissions.permission');
  if (!rows.length) return null;
  return ordered(rows.filter((r) => r.permission !== null).map((r) => String(r.permission)));
}

/**
 * What a manager's roles allow on any of the orders of one customer (in one query): the Management
 * API's customer routes act through any such order, as the portal edits a customer through one.
 */
export async function permissionsOnCustomer(
  db: Knex,
  accountId: number,
  customerId: number,
): Promise<OrderPermission[]> {
  const rows = await db('manager_orders')
    .join('orders', 'orders.id', 'manager_orders.order_id')
    .join('role_permissions', 'role_permissions.role_id', 'manager_orders.role_id')
    .where({ 'manager_orders.account_id': accountId, 'orders.customer_id': customerId })
    .distinct('role_permissions.permission');
  return ordered(rows.map((r: Record<string, unknown>) => String(r.permission)));
}

export async function insert(db: Knex, name: string, permissions: readonly string[], now: Date): Promise<number> {
  const [id] = await db('roles').insert({ name, builtin: null, is_default: false, created_at: now, updated_at: now });
  await setPermissions(db, Number(id), permissions);
  return Number(id);
}

export async function rename(db: Knex, id: number, name: string, now: Date): Promise<void> {
  await db('roles').where({ id }).update({ name, updated_at: now });
}

export async function setPermissions(db: Knex, id: number, permissions: readonly string[]): Promise<void> {
  await db('role_permissions').where({ role_id: id }).delete();
  if (permissions.length)
    await db('role_permissions').insert(permissions.map((permission) => ({ role_id: id, permission })));
}

export async function makeDefault(db: Knex, id: number, now: Date): Promise<void> {
  await db('roles').whereNot({ id }).where({ is_default: true }).update({ is_default: false, updated_at: now });
  await db('roles').where({ id }).update({ is_default: true, updated_at: now });
}

/** How many assignments (and managers' own-order settings) use the role: a role in use cannot be deleted. */
export async function uses(db: Knex, id: number): Promise<number> {
  const [a, b] = await Promise.all([
    db('manager_orders').where({ role_id: id }).count({ n: '*' }).first(),
    db('accounts').where({ own_order_role_id: id }).count({ n: '*' }).first(),
  ]);
  return Number(a?.n ?? 0) + Number(b?.n ?? 0);
}

export async function remove(db: Knex, id: number): Promise<number> {
  return Number(await db('roles').where({ id }).whereNull('builtin').delete());
}

/** True when every permission of `inner` is also in `outer` (a role "no stronger than" another). */
export const within = (inner: readonly string[], outer: readonly string[]) => inner.every((p) => outer.includes(p));
