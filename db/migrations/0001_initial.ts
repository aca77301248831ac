import type { Knex } from 'knex';

/**
 * The whole domain model (docs/overview.md). Dates are UTC datetime(3); booleans are booleans; JSON is text
 * (models parse it) so that SQLite and MySQL/MariaDB return the same shapes.
 */

const ts = (t: Knex.CreateTableBuilder, name: string) => t.datetime(name, { precision: 3 });

function timestamps(t: Knex.CreateTableBuilder) {
  ts(t, 'created_at').notNullable();
  ts(t, 'updated_at').notNullable();
}

export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('settings', (t) => {
    t.string('key', 64).primary();
    t.text('value').notNullable();
    ts(t, 'updated_at').notNullable();
  });

  await db.schema.createTable('accounts', (t) => {
    t.increments('id');
    t.string('email', 254).notNullable().unique(); // stored lower-cased: unique case-insensitively
    t.string('name', 200).notNullable();
    t.string('password_hash', 255).nullable(); // null until an invited account sets its password
    t.string('language', 8).notNullable().defaultTo('en');
    t.string('role', 16).notNullable(); // admin | manager | end_user
    t.boolean('must_change_password').notNullable().defaultTo(false);
    t.boolean('disabled').notNullable().defaultTo(false);
    t.string('totp_secret', 128).nullable();
    ts(t, 'totp_enabled_at').nullable();
    ts(t, 'last_login_at').nullable();
    timestamps(t);
    t.index(['role']);
  });

  await db.schema.createTable('recovery_codes', (t) => {
    t.increments('id');
    t.integer('account_id').unsigned().notNullable().references('accounts.id').onDelete('CASCADE');
    t.string('code_hash', 128).notNullable();
    ts(t, 'used_at').nullable();
    ts(t, 'created_at').notNullable();
    t.index(['account_id']);
  });

  await db.schema.createTable('sessions', (t) => {
    // Shape expected by connect-session-knex (created here so that production never runs DDL at request time).
    t.string('sid', 255).primary();
    t.text('sess').notNullable();
    t.datetime('expired').notNullable().index();
  });

  await db.schema.createTable('password_reset_tokens', (t) => {
    t.increments('id');
    t.integer('account_id').unsigned().notNullable().references('accounts.id').onDelete('CASCADE');
    t.string('token_hash', 64).notNullable().unique();
    ts(t, 'expires_at').notNullable();
    ts(t, 'used_at').nullable();
    ts(t, 'created_at').notNullable();
    t.string('requested_ip', 64).nullable();
    t.index(['account_id']);
  });

  await db.schema.createTable('one_time_codes', (t) => {
    t.increments('id');
    t.string('purpose', 32).notNullable(); // setup | airgap_request | …
    t.string('code_hash', 64).notNullable().unique();
    t.integer('account_id').unsigned().nullable().references('accounts.id').onDelete('CASCADE');
    t.text('data').nullable();
    ts(t, 'expires_at').notNullable();
    ts(t, 'used_at').nullable();
    ts(t, 'created_at').notNullable();
    t.index(['purpose', 'expires_at']);
  });

  await db.schema.createTable('rate_limits', (t) => {
    t.string('key', 255).primary();
    t.integer('hits').notNullable();
    t.bigInteger('window_ends_ms').notNullable().index();
  });

  await db.schema.createTable('products', (t) => {
    t.increments('id');
    t.string('name', 200).notNullable();
    t.string('code', 64).notNullable().unique(); // immutable
    t.string('authorization_method', 8).notNullable(); // key | user
    t.text('description').nullable();
    t.boolean('archived').notNullable().defaultTo(false);
    timestamps(t);
    t.index(['archived', 'name']);
  });

  await db.schema.createTable('features', (t) => {
    t.increments('id');
    t.integer('product_id').unsigned().notNullable().references('products.id').onDelete('CASCADE');
    t.string('code', 64).notNullable();
    t.string('name', 200).notNullable();
    t.string('type', 16).notNullable(); // activation | consumption
    timestamps(t);
    t.unique(['product_id', 'code']);
  });

  const entitlements = (t: Knex.CreateTableBuilder) => {
    t.string('license_type', 16).notNullable(); // perpetual | time-limited | subscription | consumption
    t.boolean('is_trial').notNullable().defaultTo(false);
    t.integer('trial_days').nullable();
    t.integer('validity_days').nullable(); // time-limited / subscription length
    t.integer('max_activations').notNullable().defaultTo(1);
    t.boolean('unlimited_activations').notNullable().defaultTo(false);
    t.integer('max_transfers').notNullable().defaultTo(-1); // -1 none, 0 unlimited, N limit
    t.boolean('allow_offline').notNullable().defaultTo(false);
    t.boolean('airgapped').notNullable().defaultTo(false);
    t.boolean('floating').notNullable().defaultTo(false);
    t.integer('floating_users').nullable();
    t.integer('floating_timeout_minutes').nullable();
    t.boolean('can_borrow').notNullable().defaultTo(false);
    t.integer('max_borrow_hours').nullable();
    t.integer('maintenance_days').nullable();
  };

  await db.schema.createTable('license_policies', (t) => {
    t.increments('id');
    t.integer('product_id').unsigned().notNullable().references('products.id').onDelete('CASCADE');
    t.string('name', 200).notNullable();
    t.boolean('is_default').notNullable().defaultTo(false);
    entitlements(t);
    t.boolean('archived').notNullable().defaultTo(false);
    t.integer('created_by_account_id').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
    timestamps(t);
    t.index(['product_id', 'is_default']);
  });

  await db.schema.createTable('policy_features', (t) => {
    t.integer('policy_id').unsigned().notNullable().references('license_policies.id').onDelete('CASCADE');
    t.integer('feature_id').unsigned().notNullable().references('features.id').onDelete('CASCADE');
    t.integer('max_consumption').nullable();
    t.primary(['policy_id', 'feature_id']);
  });

  await db.schema.createTable('customers', (t) => {
    t.increments('id');
    t.string('kind', 16).notNullable().defaultTo('company'); // company | person
    t.string('name', 200).notNullable();
    t.string('contact_name', 200).nullable();
    t.string('email', 254).nullable();
    t.string('phone', 64).nullable();
    t.text('address').nullable();
    t.string('reference', 100).nullable();
    timestamps(t);
    t.index(['name']);
    t.index(['email']);
  });

  await db.schema.createTable('orders', (t) => {
    t.increments('id');
    t.string('order_ref', 100).notNullable().unique(); // the vendor's own order id
    t.string('reference', 200).nullable();
    t.integer('customer_id').unsigned().notNullable().references('customers.id').onDelete('RESTRICT');
    t.boolean('is_test').notNullable().defaultTo(false);
    t.boolean('is_trial').notNullable().defaultTo(false);
    t.integer('created_by_account_id').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
    timestamps(t);
    t.index(['customer_id']);
    t.index(['created_at']);
  });

  await db.schema.createTable('licenses', (t) => {
    t.increments('id');
    t.integer('order_id').unsigned().notNullable().references('orders.id').onDelete('RESTRICT');
    t.integer('product_id').unsigned().notNullable().references('products.id').onDelete('RESTRICT');
    t.integer('policy_id').unsigned().nullable().references('license_policies.id').onDelete('SET NULL');
    t.string('license_key', 64).nullable().unique(); // key-based only; user-based licenses have users
    t.boolean('enabled').notNullable().defaultTo(true);
    entitlements(t); // a copy of the policy at issue time: later policy edits do not change it
    ts(t, 'start_date').nullable();
    ts(t, 'expires_at').nullable();
    ts(t, 'maintenance_until').nullable();
    t.integer('times_activated').notNullable().defaultTo(0);
    t.integer('transfer_count').notNullable().defaultTo(0);
    t.text('note').nullable();
    t.string('dispatched_to', 254).nullable();
    ts(t, 'dispatched_at').nullable();
    t.integer('issued_by_account_id').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
    timestamps(t);
    t.index(['order_id', 'id']);
    t.index(['product_id']);
    t.index(['order_id', 'enabled', 'times_activated']);
    t.index(['expires_at']);
  });

  await db.schema.createTable('license_features', (t) => {
    t.integer('license_id').unsigned().notNullable().references('licenses.id').onDelete('CASCADE');
    t.integer('feature_id').unsigned().notNullable().references('features.id').onDelete('RESTRICT');
    t.integer('max_consumption').nullable();
    t.bigInteger('total_consumption').notNullable().defaultTo(0);
    t.primary(['license_id', 'feature_id']);
  });

  // License users are portal accounts with role end_user; this table assigns them to user-based licenses.
  await db.schema.createTable('license_user_assignments', (t) => {
    t.integer('license_id').unsigned().notNullable().references('licenses.id').onDelete('CASCADE');
    t.integer('account_id').unsigned().notNullable().references('accounts.id').onDelete('CASCADE');
    t.integer('max_activations').notNullable().defaultTo(1);
    t.integer('times_activated').notNullable().defaultTo(0);
    ts(t, 'created_at').notNullable();
    t.primary(['license_id', 'account_id']);
    t.index(['account_id']);
  });

  // One row per activation; a deactivated device keeps its row (history is never overwritten).
  await db.schema.createTable('devices', (t) => {
    t.increments('id');
    t.integer('license_id').unsigned().notNullable().references('licenses.id').onDelete('CASCADE');
    t.integer('license_user_account_id').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
    t.string('hardware_id', 128).notNullable();
    // Equals hardware_id while the device is active, NULL after: the unique key below makes
    // "one active activation per hardware id and license" hold across processes on both databases.
    t.string('active_hardware_id', 128).nullable();
    t.string('hostname', 255).nullable();
    t.string('os', 128).nullable();
    t.string('app_version', 64).nullable();
    t.string('channel', 16).notNullable(); // online | offline | airgap
    t.text('device_public_key').nullable();
    t.string('request_hash', 64).nullable();
    t.binary('airgap_secret', 64).nullable();
    t.integer('license_counter').notNullable().defaultTo(0); // grows with every refresh file
    ts(t, 'activated_at').notNullable();
    ts(t, 'last_seen_at').nullable();
    ts(t, 'deactivated_at').nullable();
    t.string('deactivation_reason', 32).nullable(); // device | reset | revoked | expired_slot
    t.boolean('blacklisted').notNullable().defaultTo(false);
    ts(t, 'borrowed_until').nullable();
    ts(t, 'floating_expires_at').nullable();
    t.unique(['license_id', 'active_hardware_id']);
    t.index(['license_id', 'deactivated_at']);
    t.index(['hardware_id']);
  });

  await db.schema.createTable('activation_history', (t) => {
    t.bigIncrements('id');
    t.integer('license_id').unsigned().notNullable().references('licenses.id').onDelete('CASCADE');
    t.integer('device_id').unsigned().nullable().references('devices.id').onDelete('CASCADE');
    t.string('event', 32).notNullable(); // activated | deactivated | refused | reset | revoked | borrowed | refreshed
    t.string('channel', 16).nullable();
    t.string('hardware_id', 128).nullable();
    t.string('detail', 255).nullable();
    t.integer('actor_account_id').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
    ts(t, 'occurred_at').notNullable();
    t.index(['license_id', 'occurred_at']);
  });

  await db.schema.createTable('license_blacklist', (t) => {
    t.integer('license_id').unsigned().notNullable().references('licenses.id').onDelete('CASCADE');
    t.string('hardware_id', 128).notNullable();
    t.integer('created_by_account_id').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
    ts(t, 'created_at').notNullable();
    t.primary(['license_id', 'hardware_id']);
  });

  await db.schema.createTable('request_nonces', (t) => {
    t.string('nonce', 64).primary(); // unique: a request is answered once (repeats return the stored answer)
    t.string('kind', 32).notNullable(); // activation | deactivation | airgap_activation | airgap_deactivation
    t.integer('license_id').unsigned().nullable().references('licenses.id').onDelete('CASCADE');
    t.integer('device_id').unsigned().nullable().references('devices.id').onDelete('CASCADE');
    ts(t, 'created_at').notNullable();
    ts(t, 'expires_at').nullable();
    t.index(['license_id']);
  });

  // Manager scope.
  await db.schema.createTable('manager_orders', (t) => {
    t.integer('account_id').unsigned().notNullable().references('accounts.id').onDelete('CASCADE');
    t.integer('order_id').unsigned().notNullable().references('orders.id').onDelete('CASCADE');
    ts(t, 'created_at').notNullable();
    t.primary(['account_id', 'order_id']);
    t.index(['order_id']);
  });

  await db.schema.createTable('manager_permissions', (t) => {
    t.integer('account_id').unsigned().notNullable().references('accounts.id').onDelete('CASCADE');
    t.string('permission', 48).notNullable();
    t.primary(['account_id', 'permission']);
  });

  await db.schema.createTable('manager_quotas', (t) => {
    t.integer('account_id').unsigned().notNullable().references('accounts.id').onDelete('CASCADE');
    t.integer('product_id').unsigned().notNullable().references('products.id').onDelete('CASCADE');
    t.integer('quota').nullable(); // null = unlimited
    t.integer('issued').notNullable().defaultTo(0);
    t.primary(['account_id', 'product_id']);
  });

  await db.schema.createTable('manager_policies', (t) => {
    t.integer('account_id').unsigned().notNullable().references('accounts.id').onDelete('CASCADE');
    t.integer('policy_id').unsigned().notNullable().references('license_policies.id').onDelete('CASCADE');
    t.primary(['account_id', 'policy_id']);
  });

  await db.schema.createTable('default_permissions', (t) => {
    t.string('permission', 48).primary();
  });
  // The default permission set; the vendor changes it in the console.
  await db('default_permissions').insert(
    [
      'manage_license_users',
      'manage_user_credentials',
      'issue_license',
      'create_order',
      'reset_license',
      'reset_device',
    ].map((permission) => ({ permission })),
  );

  await db.schema.createTable('audit_events', (t) => {
    t.bigIncrements('id');
    ts(t, 'occurred_at').notNullable();
    t.integer('actor_account_id').unsigned().nullable(); // no FK: the trail outlives deleted accounts
    t.string('actor_label', 254).nullable();
    t.string('action', 64).notNullable();
    t.string('object_type', 32).nullable();
    t.string('object_id', 64).nullable();
    t.integer('order_id').unsigned().nullable();
    t.text('before_state').nullable();
    t.text('after_state').nullable();
    t.string('ip', 64).nullable();
    t.string('request_id', 64).nullable();
    t.index(['occurred_at']);
    t.index(['actor_account_id', 'occurred_at']);
    t.index(['object_type', 'object_id']);
    t.index(['action', 'occurred_at']);
    t.index(['order_id', 'occurred_at']);
  });

  await db.schema.createTable('brandings', (t) => {
    t.increments('id');
    t.string('name', 100).notNullable().unique();
    t.string('display_name', 200).notNullable();
    t.binary('logo_data').nullable();
    t.string('logo_mime', 64).nullable();
    t.string('primary_color', 7).notNullable().defaultTo('#1f4e79');
    t.string('accent_color', 7).notNullable().defaultTo('#d9822b');
    t.string('support_email', 254).nullable();
    t.string('default_language', 8).notNullable().defaultTo('en');
    timestamps(t);
  });

  await db.schema.createTable('branding_hosts', (t) => {
    t.increments('id');
    t.integer('branding_id').unsigned().notNullable().references('brandings.id').onDelete('CASCADE');
    t.string('hostname', 253).notNullable().unique(); // lower-case, no port
    t.string('portal', 16).nullable(); // null: every part under its path; portal | offline | airgap: served at /
    timestamps(t);
  });

  await db.schema.createTable('signing_keys', (t) => {
    t.string('kid', 64).primary();
    t.string('algorithm', 16).notNullable().defaultTo('Ed25519');
    t.text('public_key_pem').notNullable(); // the private key lives in DATA_DIR/keys, never in the database
    t.string('status', 16).notNullable(); // active (signs) | trusted (verifies) | retired
    ts(t, 'created_at').notNullable();
    ts(t, 'activated_at').nullable();
    ts(t, 'retired_at').nullable();
    t.index(['status']);
  });

  await db.schema.createTable('mail_outbox', (t) => {
    t.increments('id');
    t.string('to_address', 254).notNullable();
    t.string('subject', 255).notNullable();
    t.text('text_body').notNullable();
    t.string('reason', 32).notNullable(); // no_smtp | smtp_failed
    t.text('error').nullable();
    ts(t, 'created_at').notNullable();
    t.index(['created_at']);
  });
}

const tablesInDropOrder = [
  'mail_outbox',
  'signing_keys',
  'branding_hosts',
  'brandings',
  'audit_events',
  'default_permissions',
  'manager_policies',
  'manager_quotas',
  'manager_permissions',
  'manager_orders',
  'request_nonces',
  'license_blacklist',
  'activation_history',
  'devices',
  'license_user_assignments',
  'license_features',
  'licenses',
  'orders',
  'customers',
  'policy_features',
  'license_policies',
  'features',
  'products',
  'rate_limits',
  'one_time_codes',
  'password_reset_tokens',
  'sessions',
  'recovery_codes',
  'accounts',
  'settings',
];

export async function down(db: Knex): Promise<void> {
  for (const table of tablesInDropOrder) await db.schema.dropTableIfExists(table);
}
