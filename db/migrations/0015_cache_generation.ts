import type { Knex } from 'knex';

/**
 * One row whose token changes with every change of cached data (settings, brandings, signing keys):
 * each process compares it at most once per interval to know its caches are current
 * (app/lib/generation-cache.ts).
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('cache_generation', (t) => {
    t.integer('id').unsigned().primary();
    t.string('token', 64).notNullable();
    t.datetime('updated_at', { precision: 3 }).notNullable();
  });
  await db('cache_generation').insert({ id: 1, token: 'initial', updated_at: new Date() });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('cache_generation');
}
