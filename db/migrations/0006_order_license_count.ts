import type { Knex } from 'knex';

/**
 * How many licenses an order holds, kept with the order: the order pages and order lists showed it
 * by counting the order's licenses on every view (30 ms on SQLite and 100 ms of MariaDB's time for an
 * order of a million). Licenses are never deleted, only added (models/catalog.ts insertLicense and
 * services/licenses.ts bulk issue add to it in the same transaction).
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('orders', (t) => {
    t.integer('license_count').unsigned().notNullable().defaultTo(0);
  });
  await db('orders').update({
    license_count: db.raw('(SELECT COUNT(*) FROM licenses WHERE licenses.order_id = orders.id)'),
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('orders', (t) => {
    t.dropColumn('license_count');
  });
}

/**
 * locks: what this migration holds on MySQL/MariaDB while it runs (docs/operations.md, "Upgrading";
 * `portico migrate:status` prints it before a start applies the migration).
 */
export const locks =
  'orders: adds a column and fills it with one UPDATE of every order (row locks on all orders until it commits: order writes wait)';
