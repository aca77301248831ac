import type { Knex } from 'knex';

/**
 * Usage history (docs/decisions.md, "Usage history and pages"): one row per license per UTC day,
 * written by the daily job `usage.snapshot` (app/services/usage.ts), unique per license and day so
 * that two runs (or two processes) write one row and a re-run overwrites it. `day` is the date as
 * text (YYYY-MM-DD): the same on both databases, and it sorts. An order's history is derived from
 * its licenses' rows (order_id is kept with each row for that, indexed by order and day).
 *
 * `floating_peaks` is the running maximum of floating slots held at once per license and day,
 * raised with a guarded update in the transaction that takes a slot (the daily job alone sees only
 * the end of the day).
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('license_usage_days', (t) => {
    t.increments('id');
    t.integer('license_id').unsigned().notNullable().references('licenses.id').onDelete('CASCADE');
    t.integer('order_id').unsigned().notNullable().references('orders.id').onDelete('CASCADE');
    t.string('day', 10).notNullable();
    t.integer('seats_used').notNullable().defaultTo(0);
    t.integer('seats_bought').nullable(); // null: unlimited
    t.integer('floating_peak').nullable(); // null: not a floating license
    t.integer('activations').notNullable().defaultTo(0);
    t.integer('refusals').notNullable().defaultTo(0);
    t.string('refusal_reasons', 1000).notNullable().defaultTo('{}'); // JSON: { code: count }
    t.integer('devices_7d').notNullable().defaultTo(0);
    t.integer('devices_30d').notNullable().defaultTo(0);
    t.integer('devices_90d').notNullable().defaultTo(0);
    t.integer('devices_older').notNullable().defaultTo(0);
    t.datetime('taken_at', { precision: 3 }).notNullable();
    t.unique(['license_id', 'day']);
    t.index(['order_id', 'day']);
    t.index(['day']);
  });
  await db.schema.createTable('floating_peaks', (t) => {
    t.integer('license_id').unsigned().notNullable().references('licenses.id').onDelete('CASCADE');
    t.string('day', 10).notNullable();
    t.integer('peak').notNullable();
    t.primary(['license_id', 'day']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('floating_peaks');
  await db.schema.dropTableIfExists('license_usage_days');
}
