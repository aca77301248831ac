import type { Knex } from 'knex';

/**
 * Roles per order (docs/user-portal.md, "Roles"): a role is a named set of order permissions, and each
 * manager–order assignment carries one. Until now a manager held one permission set for every order;
 * this migration gives each assignment the role whose permissions equal the order part of that set
 * (a built-in role when one matches, else a role made for it), so nobody's effective powers change.
 * Dispatching, open to every manager before, becomes the `dispatch_license` permission, which every
 * migrated role holds. The account permissions (creating orders and policies, API clients) stay
 * per manager. The role a manager gets on orders they create starts as their migrated role.
 *
 * Delegation columns: who invited a manager to an order (null: the vendor), and who granted a quota
 * as a sub-quota out of their own (null: the vendor).
 *
 * The lists are written out here, not imported: a migration must not change when the code does.
 */
const ORDER_PERMISSIONS = [
  'issue_license',
  'dispatch_license',
  'manage_managers',
  'manage_license_users',
  'manage_user_credentials',
  'reset_license',
  'reset_device',
  'revoke_device',
  'borrow_license',
  'edit_customer',
  'edit_license',
];
const BUILT_IN: [string, string, string[]][] = [
  ['viewer', 'Viewer', []],
  ['operator', 'Operator', ['dispatch_license', 'manage_license_users', 'reset_device']],
  ['manager', 'Manager', ORDER_PERMISSIONS],
];

const ts = (t: Knex.CreateTableBuilder, name: string) => t.datetime(name, { precision: 3 });
const setKey = (perms: string[]) => [...new Set(perms)].sort().join(',');

export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('roles', (t) => {
    t.increments('id');
    t.string('name', 80).notNullable().unique();
    t.string('builtin', 16).nullable().unique(); // viewer | operator | manager; null: the vendor's own
    t.boolean('is_default').notNullable().defaultTo(false);
    ts(t, 'created_at').notNullable();
    ts(t, 'updated_at').notNullable();
  });
  await db.schema.createTable('role_permissions', (t) => {
    t.integer('role_id').unsigned().notNullable().references('roles.id').onDelete('CASCADE');
    t.string('permission', 48).notNullable();
    t.primary(['role_id', 'permission']);
  });
  await db.schema.alterTable('manager_orders', (t) => {
    t.integer('role_id').unsigned().nullable().references('roles.id');
    t.integer('invited_by').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
    t.index(['invited_by']);
  });
  // No foreign key here, and `down` leaves the column: on SQLite adding a key or dropping a column
  // rebuilds the table, and rebuilding `accounts` would cascade deletes into every table that
  // references it. The roles service refuses to delete a role this column names (models/roles.ts `uses`).
  if (!(await db.schema.hasColumn('accounts', 'own_order_role_id')))
    await db.schema.alterTable('accounts', (t) => {
      t.integer('own_order_role_id').unsigned().nullable();
    });
  await db.schema.alterTable('manager_quotas', (t) => {
    t.integer('granted_by').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
  });

  const now = new Date();
  const bySet = new Map<string, number>();
  const addRole = async (name: string, builtin: string | null, perms: string[]) => {
    const [id] = await db('roles').insert({ name, builtin, is_default: false, created_at: now, updated_at: now });
    const roleId = Number(id);
    if (perms.length) await db('role_permissions').insert(perms.map((permission) => ({ role_id: roleId, permission })));
    bySet.set(setKey(perms), roleId);
    return roleId;
  };
  for (const [builtin, name, perms] of BUILT_IN) await addRole(name, builtin, perms);
  let migrated = 0;
  const roleFor = async (permissions: string[], name: () => string) => {
    const perms = [...permissions.filter((p) => ORDER_PERMISSIONS.includes(p)), 'dispatch_license'];
    return bySet.get(setKey(perms)) ?? addRole(name(), null, [...new Set(perms)].sort());
  };

  const defaults = (await db('default_permissions').select('permission')).map((r) => String(r.permission));
  const defaultRole = await roleFor(defaults, () => 'Standard');
  await db('roles').where({ id: defaultRole }).update({ is_default: true });

  const managers = (await db('accounts').where({ role: 'manager' }).orderBy('id').select('id')).map((r) =>
    Number(r.id),
  );
  for (const id of managers) {
    const perms = (await db('manager_permissions').where({ account_id: id }).select('permission')).map((r) =>
      String(r.permission),
    );
    const roleId = await roleFor(perms, () => `Migrated role ${++migrated}`);
    await db('manager_orders').where({ account_id: id }).update({ role_id: roleId });
    await db('accounts').where({ id }).update({ own_order_role_id: roleId });
  }
  await db('manager_permissions').whereIn('permission', ORDER_PERMISSIONS).delete();
  await db('default_permissions').whereIn('permission', ORDER_PERMISSIONS).delete();
}

/**
 * Back to one set per manager: the union of their roles' permissions (a manager with different roles
 * on different orders gets the larger set), and the default role's permissions as the default set.
 */
export async function down(db: Knex): Promise<void> {
  const rows = await db('manager_orders')
    .join('role_permissions', 'role_permissions.role_id', 'manager_orders.role_id')
    .whereNot('role_permissions.permission', 'dispatch_license')
    .distinct('manager_orders.account_id', 'role_permissions.permission');
  const own = await db('accounts')
    .join('role_permissions', 'role_permissions.role_id', 'accounts.own_order_role_id')
    .whereNot('role_permissions.permission', 'dispatch_license')
    .distinct('accounts.id as account_id', 'role_permissions.permission');
  const wanted = new Map<string, { account_id: number; permission: string }>();
  for (const r of [...rows, ...own])
    wanted.set(`${r.account_id}:${r.permission}`, { account_id: Number(r.account_id), permission: r.permission });
  const existing = new Set(
    (await db('manager_permissions').select('account_id', 'permission')).map((r) => `${r.account_id}:${r.permission}`),
  );
  const add = [...wanted].filter(([k]) => !existing.has(k)).map(([, v]) => v);
  for (let i = 0; i < add.length; i += 200) await db('manager_permissions').insert(add.slice(i, i + 200));
  const defaults = await db('roles')
    .join('role_permissions', 'role_permissions.role_id', 'roles.id')
    .where('roles.is_default', true)
    .whereNot('role_permissions.permission', 'dispatch_license')
    .select('role_permissions.permission');
  if (defaults.length) await db('default_permissions').insert(defaults.map((r) => ({ permission: r.permission })));

  await db.schema.alterTable('manager_quotas', (t) => {
    t.dropForeign(['granted_by']);
    t.dropColumn('granted_by');
  });
  await db('accounts').update({ own_order_role_id: null });
  await db.schema.alterTable('manager_orders', (t) => {
    t.dropForeign(['role_id']);
    t.dropForeign(['invited_by']);
    t.dropIndex(['invited_by']);
    t.dropColumn('role_id');
    t.dropColumn('invited_by');
  });
  await db.schema.dropTable('role_permissions');
  await db.schema.dropTable('roles');
}
