import type { Knex } from 'knex';

/**
 * Order numbers are unique per customer, not across the installation: resellers number their own
 * orders and their numbers collide, and a global key told a manager that a number existed outside
 * their scope (docs/decisions.md, "Search"). Every existing number is unique already, so the new key
 * holds for the data as it is. A plain index on order_ref keeps the look-ups by number (search, the
 * console's manager assignment) on an index.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('orders', (t) => {
    t.unique(['customer_id', 'order_ref'], { indexName: 'orders_customer_order_ref_unique' });
    t.index(['order_ref'], 'orders_order_ref_index');
  });
  await db.schema.alterTable('orders', (t) => {
    t.dropUnique(['order_ref']);
  });
}

/** Fails while two customers share a number: rename one first. */
export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('orders', (t) => {
    t.unique(['order_ref']);
  });
  await db.schema.alterTable('orders', (t) => {
    t.dropIndex(['order_ref'], 'orders_order_ref_index');
    t.dropUnique(['customer_id', 'order_ref'], 'orders_customer_order_ref_unique');
  });
}
