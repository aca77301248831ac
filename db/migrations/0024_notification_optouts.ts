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
  // On SQLite, knex adds a column with a foreign key by rebuilding the table, and rebuilding `orders`
  // would cascade deletes into every table that references it (manager_orders, …; see 0012). SQLite
  // adds a nullable column with a REFERENCES clause in place, so say it in SQL there (and `down`
  // leaves it: after a rollback it is still there).
  if (isSqlite(db)) {
    if (!(await db.schema.hasColumn('orders', 'branding_id')))
      await db.raw(
        'ALTER TABLE orders ADD COLUMN branding_id integer NULL REFERENCES brandings(id) ON DELETE SET NULL',
      );
  } else
    await db.schema.alterTable('orders', (t) => {
      t.integer('branding_id').unsigned().nullable().references('brandings.id').onDelete('SET NULL');
    });
}

export async function down(db: Knex): Promise<void> {
  // SQLite keeps the column on the way down: dropping it would rebuild `orders` (see up).
  if (!isSqlite(db))
    await db.schema.alterTable('orders', (t) => {
      t.dropForeign(['branding_id']);
      t.dropColumn('branding_id');
    });
  await db.schema.dropTableIfExists('notification_optouts');
}
