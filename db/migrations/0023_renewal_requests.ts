import type { Knex } from 'knex';

/**
 * Renewal requests (docs/user-portal.md, "Requesting a renewal"): a manager of an order or a user of a
 * license asks the vendor to renew it or to add seats; the vendor handles it in the console. `open_key`
 * is set while the request is open (new, in progress) and cleared when it is done or declined: its
 * unique index is what allows one open request of a kind per order or license, whatever the number of
 * processes asking at the same instant (NULLs never collide, in SQLite as in MySQL/MariaDB).
 */
const ts = (t: Knex.CreateTableBuilder, name: string) => t.datetime(name, { precision: 3 });

export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('renewal_requests', (t) => {
    t.increments('id');
    t.integer('order_id').unsigned().notNullable().references('orders.id').onDelete('CASCADE');
    t.integer('license_id').unsigned().nullable().references('licenses.id').onDelete('CASCADE');
    /** `renewal` or `more_seats`. */
    t.string('kind', 16).notNullable();
    /** How many more seats (more_seats only). */
    t.integer('seats').nullable();
    t.text('message').notNullable();
    t.integer('requester_account_id').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
    /** `new`, `in_progress`, `done`, `declined`. */
    t.string('state', 16).notNullable();
    t.string('open_key', 64).nullable().unique();
    t.text('vendor_note').nullable();
    t.integer('handled_by_account_id').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
    ts(t, 'handled_at').nullable();
    ts(t, 'created_at').notNullable();
    ts(t, 'updated_at').notNullable();
    t.index(['state', 'id']);
    t.index(['order_id', 'id']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('renewal_requests');
}
