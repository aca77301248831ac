import type { Knex } from 'knex';

/**
 * Signed webhooks (docs/webhooks.md). An endpoint belongs to the vendor (owner null) or to a manager
 * (owner = the manager's account, events of their orders only). Its secret is sealed with the secret
 * box; after a rotation the previous secret keeps signing beside the new one until previous_until.
 * An event is recorded once per change (uid = the `webhook-id` receivers de-duplicate on; dedupe_key
 * makes a periodic event such as license.expiring happen once); a delivery is one event for one
 * endpoint, and each attempt to send it is a row of the delivery log.
 */
const ts = (t: Knex.CreateTableBuilder, name: string) => t.datetime(name, { precision: 3 });

export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('webhook_endpoints', (t) => {
    t.increments('id');
    t.integer('owner_account_id').unsigned().nullable().references('accounts.id').onDelete('CASCADE');
    t.string('url', 2000).notNullable();
    t.string('description', 500).notNullable().defaultTo('');
    /** JSON array of event types. */
    t.text('event_types').notNullable();
    t.boolean('enabled').notNullable().defaultTo(true);
    /** `manual` or `failing` when disabled. */
    t.string('disabled_reason', 16).nullable();
    ts(t, 'disabled_at').nullable();
    t.text('secret_sealed').notNullable();
    t.text('previous_secret_sealed').nullable();
    ts(t, 'previous_until').nullable();
    /** The first failed attempt since the last delivered one: the endpoint is disabled after 24 h of that. */
    ts(t, 'failing_since').nullable();
    ts(t, 'created_at').notNullable();
    ts(t, 'updated_at').notNullable();
    t.index(['owner_account_id']);
  });
  await db.schema.createTable('webhook_events', (t) => {
    t.increments('id');
    t.string('uid', 40).notNullable().unique();
    t.string('type', 40).notNullable();
    t.integer('order_id').unsigned().nullable().references('orders.id').onDelete('SET NULL');
    t.string('dedupe_key', 191).nullable().unique();
    t.text('payload').notNullable();
    ts(t, 'created_at').notNullable();
    t.index(['order_id']);
  });
  await db.schema.createTable('webhook_deliveries', (t) => {
    t.increments('id');
    t.integer('event_id').unsigned().notNullable().references('webhook_events.id').onDelete('CASCADE');
    t.integer('endpoint_id').unsigned().notNullable().references('webhook_endpoints.id').onDelete('CASCADE');
    /** pending, delivered, failed, skipped (the endpoint's owner no longer sees the order). */
    t.string('state', 16).notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    ts(t, 'next_attempt_at').nullable();
    ts(t, 'delivered_at').nullable();
    ts(t, 'created_at').notNullable();
    ts(t, 'updated_at').notNullable();
    t.unique(['event_id', 'endpoint_id']);
    t.index(['endpoint_id', 'id']);
  });
  await db.schema.createTable('webhook_attempts', (t) => {
    t.increments('id');
    t.integer('delivery_id').unsigned().notNullable().references('webhook_deliveries.id').onDelete('CASCADE');
    t.integer('endpoint_id').unsigned().notNullable().references('webhook_endpoints.id').onDelete('CASCADE');
    t.integer('attempt').notNullable();
    /** Sent again by hand from the console ("send again"). */
    t.boolean('manual').notNullable().defaultTo(false);
    t.integer('status_code').nullable();
    t.integer('duration_ms').notNullable();
    t.text('response_excerpt').nullable();
    t.string('error', 500).nullable();
    ts(t, 'started_at').notNullable();
    t.index(['endpoint_id', 'id']);
    t.index(['delivery_id']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('webhook_attempts');
  await db.schema.dropTableIfExists('webhook_deliveries');
  await db.schema.dropTableIfExists('webhook_events');
  await db.schema.dropTableIfExists('webhook_endpoints');
}
