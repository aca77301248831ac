import type { Knex } from 'knex';

/**
 * Indexes for the dashboards (docs/decisions.md, "Dashboards"), each serving one of their figures
 * from an index range:
 * - licenses (order_id, enabled, expires_at, times_activated, max_activations, unlimited_activations):
 *   an order's licenses expiring within N days are one range; its seats used and purchased are
 *   summed from the index alone (no table row read).
 * - activation_history (event, occurred_at, channel): activations and refusals of the last 30 days
 *   by channel, counted from the index alone; (event, detail, occurred_at): refusals of one reason.
 * - audit_events (order_id, action, occurred_at): the newest refusals of a manager's orders.
 * - devices (license_id, deactivated_at, last_seen_at): a license's active devices not seen since.
 * And dashboard_figures: figures too costly to read on every view, kept with the time they were
 * computed (a past day's activity once and for all, a large order's seats for a few minutes).
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('licenses', (t) => {
    t.index(
      ['order_id', 'enabled', 'expires_at', 'times_activated', 'max_activations', 'unlimited_activations'],
      'licenses_order_dashboard_index',
    );
  });
  await db.schema.alterTable('activation_history', (t) => {
    t.index(['event', 'occurred_at', 'channel'], 'activation_history_event_occurred_index');
    t.index(['event', 'detail', 'occurred_at'], 'activation_history_event_detail_index');
  });
  await db.schema.alterTable('audit_events', (t) => {
    t.index(['order_id', 'action', 'occurred_at'], 'audit_events_order_action_occurred_index');
  });
  await db.schema.alterTable('devices', (t) => {
    t.index(['license_id', 'deactivated_at', 'last_seen_at'], 'devices_license_seen_index');
  });
  await db.schema.createTable('dashboard_figures', (t) => {
    t.string('key', 100).primary();
    t.text('value').notNullable();
    t.datetime('computed_at', { precision: 3 }).notNullable();
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('dashboard_figures');
  await db.schema.alterTable('devices', (t) => t.dropIndex([], 'devices_license_seen_index'));
  await db.schema.alterTable('audit_events', (t) => t.dropIndex([], 'audit_events_order_action_occurred_index'));
  await db.schema.alterTable('activation_history', (t) => {
    t.dropIndex([], 'activation_history_event_occurred_index');
    t.dropIndex([], 'activation_history_event_detail_index');
  });
  await db.schema.alterTable('licenses', (t) => t.dropIndex([], 'licenses_order_dashboard_index'));
}

/**
 * locks: what this migration holds on MySQL/MariaDB while it runs (docs/operations.md, "Upgrading";
 * `portico migrate:status` prints it before a start applies the migration).
 */
export const locks =
  'licenses, activation_history, audit_events, devices: builds indexes (online, the tables stay writable; minutes per 10 million rows, with a short metadata lock at the start and end)';
