import type { Knex } from 'knex';
import { isSqlite } from '../knexfile.ts';

/**
 * Notifications (docs/notifications.md): who turned which kind off, and the branding an order's mail
 * carries. Opt-outs are kept per e-mail address, not per account: a dispatch recipient has no account
 * and must be able to turn reminders off too; an account's preferences page reads and writes the rows
 * of its own address. `orders.branding_id` is the branding a job's mail about the order carries (no
 * request host to take it from); NULL means the installation's default.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('notification_optouts', (t) => {
    t.string('email', 254).notNullable(); // lower-cased
    t.string('kind', 32).notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.primary(['email', 'kind']);
  });
  if (isSqlite(db)) {
    // knex adds a column with a foreign key on SQLite by rebuilding the table (copy, DROP, rename),
    // and with foreign keys on, dropping `orders` fails as soon as a license or a manager assignment
    // references an order: every installation with data. SQLite adds such a column in place (its
    // default is NULL), to the same end schema.
    await db.raw(
      'ALTER TABLE `orders` ADD COLUMN `branding_id` integer NULL REFERENCES `brandings` (`id`) ON DELETE SET NULL',
    );
    return;
  }
  await db.schema.alterTable('orders', (t) => {
    t.integer('branding_id').unsigned().nullable().references('brandings.id').onDelete('SET NULL');
  });
}

export async function down(db: Knex): Promise<void> {
  if (isSqlite(db)) {
    // In place too (SQLite 3.35+): a rebuild of `orders` would cascade-delete the manager assignments.
    await db.raw('ALTER TABLE `orders` DROP COLUMN `branding_id`');
    await db.schema.dropTableIfExists('notification_optouts');
    return;
  }
  await db.schema.alterTable('orders', (t) => {
    t.dropForeign(['branding_id']);
    t.dropColumn('branding_id');
  });
  await db.schema.dropTableIfExists('notification_optouts');
}

/**
 * locks: what this migration holds on MySQL/MariaDB while it runs (docs/operations.md, "Upgrading";
 * `portico migrate:status` prints it before a start applies the migration).
 */
export const locks =
  'orders: adds a column with a foreign key, which MySQL/MariaDB do by copying the table (ALGORITHM=COPY): writes to orders wait until the copy is done (seconds per 100,000 orders)';
