import assert from 'node:assert/strict';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { migrateLatest, rollback } from '../../db/index.ts';

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
    assert.equal(Number((await db('default_permissions').count({ n: '*' }).first())!.n), 6);
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
