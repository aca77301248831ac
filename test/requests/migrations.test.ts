import assert from 'node:assert/strict';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { migrateLatest, migrateTo, rollback } from '../../db/index.ts';
import { PERMISSIONS } from '../../app/policies/permissions.ts';
import { permissionsFor, permissionsOnOrder } from '../../app/policies/portal.ts';

describe('migrations', () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase({ migrate: false });
  });
  after(async () => database.drop());

  it('run up, down and up again, leaving the whole model with its keys', async () => {
    const { db } = database;
    const applied = await migrateLatest(db);
    assert.equal(applied[0], '0001_initial');
    assert.deepEqual((await rollback(db, true)).sort(), [...applied].sort());
    assert.equal(await db.schema.hasTable('accounts'), false);
    assert.deepEqual(await migrateLatest(db), applied);
    for (const table of [
      'products',
      'features',
      'license_policies',
      'customers',
      'orders',
      'licenses',
      'license_user_assignments',
      'devices',
      'activation_history',
      'accounts',
      'manager_orders',
      'manager_permissions',
      'manager_quotas',
      'manager_policies',
      'default_permissions',
      'roles',
      'role_permissions',
      'audit_events',
      'sessions',
      'password_reset_tokens',
      'brandings',
      'branding_hosts',
      'signing_keys',
      'mail_outbox',
      'one_time_codes',
      'request_nonces',
    ]) {
      assert.ok(await db.schema.hasTable(table), table);
    }
    // The default set's order part became the default role; its account part stays.
    assert.deepEqual(
      (await db('default_permissions').select('permission')).map((r) => r.permission),
      ['create_order'],
    );
    assert.equal((await db('roles').where({ is_default: true }).first()).name, 'Standard');
  });

  it('enforces the unique keys: product code, account email, license key, request nonce', async () => {
    const { db } = database;
    const now = new Date();
    await db('products').insert({
      name: 'A',
      code: 'same',
      authorization_method: 'key',
      created_at: now,
      updated_at: now,
    });
    await assert.rejects(
      db('products').insert({ name: 'B', code: 'same', authorization_method: 'key', created_at: now, updated_at: now }),
    );
    await db('accounts').insert({ email: 'a@b.c', name: 'A', role: 'admin', created_at: now, updated_at: now });
    await assert.rejects(
      db('accounts').insert({ email: 'a@b.c', name: 'B', role: 'admin', created_at: now, updated_at: now }),
    );
    await db('request_nonces').insert({ nonce: 'n1', kind: 'activation', created_at: now });
    await assert.rejects(db('request_nonces').insert({ nonce: 'n1', kind: 'activation', created_at: now }));
  });

  it('enforces foreign keys', async () => {
    await assert.rejects(
      database.db('features').insert({
        product_id: 987654,
        code: 'x',
        name: 'x',
        type: 'activation',
        created_at: new Date(),
        updated_at: new Date(),
      }),
    );
  });
});

/**
 * Migration 0012 (roles per order) on sample data: every manager's effective permissions on every
 * order they manage, and on orders they create, are the same before and after. Before, a manager
 * held one set for all orders and every manager could dispatch; after, account permissions plus the
 * role of each assignment.
 */
describe('migration 0012: per-manager permissions become roles per order', () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase({ migrate: false });
  });
  after(async () => database.drop());

  it("changes nobody's effective powers", async () => {
    const { db } = database;
    await migrateTo(db, '0011_order_ref_per_customer');
    const now = new Date();
    const [customer] = await db('customers').insert({
      kind: 'company',
      name: 'Globex',
      created_at: now,
      updated_at: now,
    });
    const orderIds: number[] = [];
    for (const ref of ['A-1', 'A-2', 'A-3'])
      orderIds.push(
        Number(
          (await db('orders').insert({ order_ref: ref, customer_id: customer, created_at: now, updated_at: now }))[0],
        ),
      );
    const sets: Record<string, string[]> = {
      everything: [...PERMISSIONS].filter((p) => p !== 'dispatch_license'),
      nothing: [],
      defaults: [
        'manage_license_users',
        'manage_user_credentials',
        'issue_license',
        'create_order',
        'reset_license',
        'reset_device',
      ],
      operatorLike: ['manage_license_users', 'reset_device'],
      odd: ['revoke_device', 'create_bundle_order', 'edit_license'],
      oddTwin: ['edit_license', 'revoke_device', 'create_bundle_order'],
    };
    const managerIds: Record<string, number> = {};
    for (const [name, perms] of Object.entries(sets)) {
      const [id] = await db('accounts').insert({
        email: `${name.toLowerCase()}@example.com`,
        name,
        role: 'manager',
        created_at: now,
        updated_at: now,
      });
      managerIds[name] = Number(id);
      if (perms.length)
        await db('manager_permissions').insert(perms.map((permission) => ({ account_id: id, permission })));
      for (const orderId of orderIds.slice(0, name === 'nothing' ? 1 : 3))
        await db('manager_orders').insert({ account_id: id, order_id: orderId, created_at: now });
    }
    // Before: one set per manager, dispatching open to every manager.
    const snapshot = async () => {
      const out: Record<string, string[]> = {};
      for (const [name, id] of Object.entries(managerIds)) {
        const perms = (await db('manager_permissions').where({ account_id: id })).map((r) => String(r.permission));
        for (const o of await db('manager_orders').where({ account_id: id }))
          out[`${name}@${o.order_id}`] = [...perms, 'dispatch_license'].sort();
      }
      return out;
    };
    const expected = await snapshot();

    await migrateTo(db, '0012_roles_per_order');
    const migrated: Record<string, string[]> = {};
    for (const [name, id] of Object.entries(managerIds)) {
      const account = { id, role: 'manager' as const };
      for (const o of await db('manager_orders').where({ account_id: id }))
        migrated[`${name}@${o.order_id}`] = [...(await permissionsOnOrder(db, account, Number(o.order_id)))].sort();
      // Orders they create: account permissions plus the role they get there.
      const own = (await db('accounts').where({ id }).first()).own_order_role_id;
      const ownPerms = (await db('role_permissions').where({ role_id: own })).map((r) => String(r.permission));
      assert.deepEqual(
        [...new Set([...(await permissionsFor(db, account)), ...ownPerms])].sort(),
        [...sets[name]!, 'dispatch_license'].sort(),
        `${name} on orders they create`,
      );
    }
    assert.deepEqual(migrated, expected);

    // Matching sets share a role; the built-in ones are used where they match; one role is the default.
    const roleOf = async (name: string) =>
      (await db('manager_orders').where({ account_id: managerIds[name] }).first()).role_id;
    assert.equal(await roleOf('odd'), await roleOf('oddTwin'));
    assert.equal(await roleOf('everything'), (await db('roles').where({ builtin: 'manager' }).first()).id);
    assert.equal(Number((await db('roles').where({ is_default: true }).count({ n: '*' }).first())!.n), 1);
    assert.deepEqual((await db('manager_orders').whereNull('role_id')).length, 0, 'every assignment has a role');
  });
});

describe('migration 0012 down and up again', () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase({ migrate: false });
  });
  after(async () => database.drop());

  it('keeps every assignment and permission (no table that others reference is rebuilt)', async () => {
    const { db } = database;
    await migrateTo(db, '0011_order_ref_per_customer');
    const now = new Date();
    const [id] = await db('accounts').insert({
      email: 'm@example.com',
      name: 'M',
      role: 'manager',
      created_at: now,
      updated_at: now,
    });
    await db('manager_permissions').insert(
      ['create_order', 'reset_device'].map((permission) => ({ account_id: id, permission })),
    );
    const [c] = await db('customers').insert({ kind: 'company', name: 'G', created_at: now, updated_at: now });
    const [o] = await db('orders').insert({ order_ref: 'X', customer_id: c, created_at: now, updated_at: now });
    await db('manager_orders').insert({ account_id: id, order_id: o, created_at: now });
    await migrateLatest(db);
    assert.equal((await db('manager_orders').select()).length, 1);
    assert.deepEqual(
      (await db('manager_permissions').select('permission')).map((r) => r.permission),
      ['create_order'],
    );
    await rollback(db);
    assert.equal((await db('manager_orders').select()).length, 1, 'the assignment survives the way down');
    assert.deepEqual(
      (await db('manager_permissions').orderBy('permission').select('permission')).map((r) => r.permission),
      ['create_order', 'reset_device'],
      'the role went back into the manager’s set',
    );
    await migrateLatest(db);
    assert.equal((await db('manager_orders').whereNotNull('role_id').select()).length, 1);
  });
});

describe('migrations at start with several processes (migrateLatest)', () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase({ migrate: false });
  });
  after(async () => database.drop());

  it('waits while another process holds the migration lock, then applies what is pending; with nothing pending it writes nothing', async () => {
    const { db } = database;
    await migrateTo(db, '0011_order_ref_per_customer');
    // Another process is migrating: knex refuses at once ("already locked"); migrateLatest waits.
    await db('knex_migrations_lock').update({ is_locked: 1 });
    await assert.rejects(migrateLatest(db, { waitMs: 300 }), { name: 'MigrationLocked' });
    const released = new Promise((resolve) => setTimeout(resolve, 700)).then(() =>
      db('knex_migrations_lock').update({ is_locked: 0 }),
    );
    const applied = await migrateLatest(db, { waitMs: 10_000 });
    await released;
    assert.ok(applied.includes('0012_roles_per_order'), applied.join(' '));
    // Nothing pending: not even the lock row is written (through two Galera nodes, two such writes conflict).
    await db('knex_migrations_lock').update({ is_locked: 1 });
    assert.deepEqual(await migrateLatest(db, { waitMs: 0 }), []);
    assert.deepEqual(await db('knex_migrations_lock').select('is_locked'), [{ is_locked: 1 }]);
    await db('knex_migrations_lock').update({ is_locked: 0 });
  });
});
