import type { Knex } from 'knex';
import { isSqlite } from '../knexfile.ts';

/**
 * The notification engine (docs/notifications.md). `notifications` holds one row per occurrence
 * (a license entering an expiry window, a device's lease running out, a digest sent…): its UNIQUE
 * `dedupe_key` is what makes each one happen once, whatever the number of processes checking at the
 * same instant — the row is inserted in the same transaction as the mails and digest items it causes.
 * `notification_digest_items` are the occurrences waiting for a manager's daily digest: `digest_id`
 * is set by the guarded update that claims them for exactly one digest. `devices.lease_ends_at` is when
 * the newest license or refresh file issued to the device stops working (set wherever a file is issued).
 */
const ts = (t: Knex.CreateTableBuilder, name: string) => t.datetime(name, { precision: 3 });

export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('notifications', (t) => {
    t.increments('id');
    t.string('dedupe_key', 191).notNullable().unique();
    /** Tells this insert from a concurrent one with the same key (the drivers report an ignored insert differently). */
    t.string('uid', 32).notNullable().unique();
    t.string('kind', 32).notNullable();
    t.integer('order_id').unsigned().nullable().references('orders.id').onDelete('CASCADE');
    t.integer('license_id').unsigned().nullable().references('licenses.id').onDelete('CASCADE');
    t.integer('device_id').unsigned().nullable().references('devices.id').onDelete('CASCADE');
    t.integer('account_id').unsigned().nullable().references('accounts.id').onDelete('CASCADE');
    /** What the mail or digest said (JSON): window, dates, counts. */
    t.text('detail').nullable();
    ts(t, 'occurred_at').notNullable();
    t.index(['occurred_at']);
    t.index(['kind', 'occurred_at']);
  });
  await db.schema.createTable('notification_digest_items', (t) => {
    t.increments('id');
    t.integer('notification_id').unsigned().notNullable().references('notifications.id').onDelete('CASCADE');
    t.integer('account_id').unsigned().notNullable().references('accounts.id').onDelete('CASCADE');
    /** The digest (a `manager_digest` notification) that took it; NULL while it waits. */
    t.integer('digest_id').unsigned().nullable().references('notifications.id').onDelete('SET NULL');
    ts(t, 'created_at').notNullable();
    t.unique(['notification_id', 'account_id']);
    t.index(['account_id', 'digest_id']);
  });
  await db.schema.alterTable('devices', (t) => {
    ts(t, 'lease_ends_at').nullable();
    t.index(['lease_ends_at']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('devices', (t) => t.dropIndex(['lease_ends_at']));
  // In place on SQLite (3.35+): knex's drop column rebuilds the table, and rebuilding `devices` would
  // cascade-delete the activation history that references it.
  if (isSqlite(db)) await db.raw('ALTER TABLE devices DROP COLUMN lease_ends_at');
  else await db.schema.alterTable('devices', (t) => t.dropColumn('lease_ends_at'));
  await db.schema.dropTableIfExists('notification_digest_items');
  await db.schema.dropTableIfExists('notifications');
}

/**
 * locks: what this migration holds on MySQL/MariaDB while it runs (docs/operations.md, "Upgrading";
 * `portico migrate:status` prints it before a start applies the migration).
 */
export const locks =
  'devices: adds a column (instant) and builds an index on it online (writes go on; short metadata locks at its start and end; minutes per 10 million devices)';
