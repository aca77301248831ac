import type { Knex } from 'knex';

/**
 * Indexes for the console's audit log, each in time order so the newest events of a filter are read
 * straight from it (and a CSV export can walk it batch after batch): by actor label (the e-mail
 * address, which also names actors without an account, such as failed logins), by object type, and
 * by object. The last replaces 0001's (object_type, object_id), which is its prefix.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('audit_events', (t) => {
    t.index(['actor_label', 'occurred_at'], 'audit_events_actor_label_occurred_at_index');
    t.index(['object_type', 'occurred_at'], 'audit_events_object_type_occurred_at_index');
    t.index(['object_type', 'object_id', 'occurred_at'], 'audit_events_object_occurred_at_index');
  });
  await db.schema.alterTable('audit_events', (t) => {
    t.dropIndex(['object_type', 'object_id']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('audit_events', (t) => {
    t.index(['object_type', 'object_id']);
  });
  await db.schema.alterTable('audit_events', (t) => {
    t.dropIndex([], 'audit_events_actor_label_occurred_at_index');
    t.dropIndex([], 'audit_events_object_type_occurred_at_index');
    t.dropIndex([], 'audit_events_object_occurred_at_index');
  });
}

/**
 * locks: what this migration holds on MySQL/MariaDB while it runs (docs/operations.md, "Upgrading";
 * `portico migrate:status` prints it before a start applies the migration).
 */
export const locks =
  'audit_events: builds three indexes (online, the table stays writable; minutes per 10 million events, with a short metadata lock at the start and end that waits for running transactions on the table)';
