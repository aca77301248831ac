import type { Knex } from 'knex';

/**
 * The job queue every server process shares (app/lib/queue.ts): mail, webhooks, periodic checks.
 * A job is claimed with a lease (state running, locked_by, locked_until); unique_key lets a second
 * enqueue of the same job (a periodic check, once per period) be refused by the database itself.
 */
const ts = (t: Knex.CreateTableBuilder, name: string) => t.datetime(name, { precision: 3 });

export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('jobs', (t) => {
    t.increments('id');
    t.string('kind', 64).notNullable();
    t.text('payload').notNullable();
    t.string('state', 16).notNullable(); // queued | running | done | failed
    t.integer('attempts').notNullable().defaultTo(0);
    t.integer('max_attempts').notNullable();
    ts(t, 'run_at').notNullable();
    ts(t, 'locked_until').nullable();
    t.string('locked_by', 100).nullable();
    t.text('last_error').nullable();
    t.string('unique_key', 191).nullable().unique('jobs_unique_key');
    ts(t, 'created_at').notNullable();
    ts(t, 'finished_at').nullable();
    t.index(['state', 'run_at'], 'jobs_claim_index');
    t.index(['state', 'locked_until'], 'jobs_lease_index');
    t.index(['kind', 'id'], 'jobs_kind_index');
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('jobs');
}
