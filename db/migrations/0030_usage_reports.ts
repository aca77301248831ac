import type { Knex } from 'knex';

/**
 * Consumption features and the signed usage report (docs/decisions.md, "Consumption and the usage
 * report"; docs/file-formats.md, "Usage report").
 *
 * - A consumable feature has a period (`license`: the whole license; `month`: each calendar month in
 *   UTC) and may allow overage (`allow_overage`, up to `max_overage` more, NULL = no cap). Policies
 *   hold the rule, licenses a copy of it (like every entitlement).
 * - `consumption_usage`: what a license used of a feature per period (`all` or `YYYY-MM`), one row each.
 * - `consumption_records`: every accepted consumption; `nonce` (unique) makes a `POST /consume` count
 *   once whatever the number of processes, and keeps its answer for a repeat.
 * - `usage_reports`: every accepted usage report of a device; unique per device and first counter
 *   (and per report hash), so the same range is recorded once even when uploaded twice at one instant.
 * - `devices.entitlements_sha256`: the entitlements of the last license or refresh file the device
 *   was given; a license whose entitlements differ now has a renewal pending for that device.
 */
const ts = (t: Knex.CreateTableBuilder, name: string) => t.datetime(name, { precision: 3 });

export async function up(db: Knex): Promise<void> {
  for (const table of ['policy_features', 'license_features']) {
    await db.schema.alterTable(table, (t) => {
      t.string('consumption_period', 8).notNullable().defaultTo('license');
      t.boolean('allow_overage').notNullable().defaultTo(false);
      t.integer('max_overage').nullable();
    });
  }
  await db.schema.alterTable('devices', (t) => {
    t.string('entitlements_sha256', 64).nullable();
  });
  await db.schema.createTable('consumption_usage', (t) => {
    t.integer('license_id').unsigned().notNullable().references('licenses.id').onDelete('CASCADE');
    t.integer('feature_id').unsigned().notNullable().references('features.id').onDelete('CASCADE');
    t.string('period', 8).notNullable();
    t.bigInteger('used').notNullable().defaultTo(0);
    t.primary(['license_id', 'feature_id', 'period']);
  });
  await db.schema.createTable('usage_reports', (t) => {
    t.increments('id');
    t.integer('license_id').unsigned().notNullable().references('licenses.id').onDelete('CASCADE');
    t.integer('device_id').unsigned().notNullable().references('devices.id').onDelete('CASCADE');
    t.string('nonce', 32).notNullable().unique();
    t.string('report_hash', 64).notNullable().unique();
    t.integer('first_counter').notNullable();
    t.integer('last_counter').notNullable();
    t.string('head_hash', 64).notNullable();
    t.integer('entries').notNullable();
    t.integer('peak_seats').nullable();
    /** JSON: {feature code: amount} consumed, and {feature code: uses}. */
    t.text('consumption').notNullable();
    t.text('features_used').notNullable();
    /** The counter of the refresh file answered with the report, if any. */
    t.integer('renewed_counter').nullable();
    ts(t, 'created_at').notNullable();
    t.unique(['device_id', 'first_counter']);
    t.index(['license_id', 'id']);
  });
  await db.schema.createTable('consumption_records', (t) => {
    t.increments('id');
    t.string('nonce', 32).nullable().unique();
    t.integer('license_id').unsigned().notNullable().references('licenses.id').onDelete('CASCADE');
    t.integer('feature_id').unsigned().notNullable().references('features.id').onDelete('CASCADE');
    t.integer('device_id').unsigned().nullable().references('devices.id').onDelete('SET NULL');
    t.integer('report_id').unsigned().nullable().references('usage_reports.id').onDelete('CASCADE');
    t.string('period', 8).notNullable();
    t.bigInteger('amount').notNullable();
    t.bigInteger('used_after').notNullable();
    t.boolean('overage').notNullable().defaultTo(false);
    ts(t, 'created_at').notNullable();
    t.index(['license_id', 'feature_id', 'id']);
  });
}

/** Plain ALTER TABLE … DROP COLUMN on both databases (knex's SQLite way rebuilds the table, which would cascade). */
export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('consumption_records');
  await db.schema.dropTableIfExists('usage_reports');
  await db.schema.dropTableIfExists('consumption_usage');
  await db.raw('ALTER TABLE devices DROP COLUMN entitlements_sha256');
  for (const table of ['license_features', 'policy_features'])
    for (const column of ['max_overage', 'allow_overage', 'consumption_period'])
      await db.raw(`ALTER TABLE ${table} DROP COLUMN ${column}`);
}
