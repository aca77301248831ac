import type { Knex } from 'knex';

/**
 * Single sign-on per customer account (docs/sso.md). `identity_providers`: a customer's OpenID Connect
 * or SAML 2.0 identity provider (the client secret sealed with the secret box). `sso_domains`: e-mail
 * domains routed to a provider once the vendor confirmed them (a domain routes to one provider only:
 * unique). `sso_mappings`: a group claim → a role on an order (the person becomes a manager) or a
 * seat on a user-based license (an end user). `sso_identities`: the provider's subject of an account
 * (unique per provider). `sso_seats` and `sso_roles` mark what single sign-on granted, so a person
 * removed from a group loses only that at the next login. `sso_seat_waits`: people waiting for a
 * seat while a customer's seats are frozen. `sso_once`: one-time keys (SAML request ids, assertion
 * ids, results between the assertion consumer and the browser) with their expiry; its primary key
 * is what refuses a replayed assertion however many processes receive it at once.
 */
const ts = (t: Knex.CreateTableBuilder, name: string) => t.datetime(name, { precision: 3 });

export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('identity_providers', (t) => {
    t.increments('id');
    t.integer('customer_id').unsigned().notNullable().references('customers.id').onDelete('CASCADE');
    /** `oidc` or `saml`. */
    t.string('kind', 8).notNullable();
    t.string('name', 200).notNullable();
    t.boolean('enabled').notNullable().defaultTo(false);
    t.string('oidc_issuer', 500).nullable();
    t.string('oidc_client_id', 255).nullable();
    t.text('oidc_client_secret').nullable();
    t.string('oidc_scopes', 255).nullable();
    t.string('saml_metadata_url', 500).nullable();
    t.string('saml_entity_id', 500).nullable();
    t.string('saml_sso_url', 500).nullable();
    t.text('saml_certificates').nullable();
    t.string('groups_claim', 100).notNullable().defaultTo('groups');
    ts(t, 'created_at').notNullable();
    ts(t, 'updated_at').notNullable();
    t.index(['customer_id']);
  });
  await db.schema.createTable('customer_sso_settings', (t) => {
    t.integer('customer_id').unsigned().primary().references('customers.id').onDelete('CASCADE');
    /** `least_recently_used` or `freeze`. */
    t.string('seat_rule', 24).notNullable();
    ts(t, 'updated_at').notNullable();
  });
  await db.schema.createTable('sso_domains', (t) => {
    t.increments('id');
    t.integer('provider_id').unsigned().notNullable().references('identity_providers.id').onDelete('CASCADE');
    t.string('domain', 253).notNullable().unique();
    ts(t, 'verified_at').nullable();
    t.integer('verified_by').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
    t.boolean('password_login').notNullable().defaultTo(true);
    ts(t, 'created_at').notNullable();
    t.index(['provider_id']);
  });
  await db.schema.createTable('sso_mappings', (t) => {
    t.increments('id');
    t.integer('provider_id').unsigned().notNullable().references('identity_providers.id').onDelete('CASCADE');
    t.string('group_name', 255).notNullable();
    /** `role` (order_id + role_id) or `seat` (license_id). */
    t.string('kind', 8).notNullable();
    t.integer('order_id').unsigned().nullable().references('orders.id').onDelete('CASCADE');
    t.integer('role_id').unsigned().nullable().references('roles.id').onDelete('CASCADE');
    t.integer('license_id').unsigned().nullable().references('licenses.id').onDelete('CASCADE');
    ts(t, 'created_at').notNullable();
    t.index(['provider_id']);
  });
  await db.schema.createTable('sso_identities', (t) => {
    t.increments('id');
    t.integer('provider_id').unsigned().notNullable().references('identity_providers.id').onDelete('CASCADE');
    t.string('subject', 255).notNullable();
    t.integer('account_id').unsigned().notNullable().references('accounts.id').onDelete('CASCADE');
    ts(t, 'created_at').notNullable();
    ts(t, 'last_login_at').notNullable();
    t.unique(['provider_id', 'subject']);
    t.index(['account_id']);
  });
  await db.schema.createTable('sso_seats', (t) => {
    t.integer('license_id').unsigned().notNullable().references('licenses.id').onDelete('CASCADE');
    t.integer('account_id').unsigned().notNullable().references('accounts.id').onDelete('CASCADE');
    t.integer('provider_id').unsigned().notNullable().references('identity_providers.id').onDelete('CASCADE');
    ts(t, 'last_used_at').notNullable();
    t.primary(['license_id', 'account_id']);
    t.index(['account_id']);
  });
  await db.schema.createTable('sso_seat_waits', (t) => {
    t.integer('license_id').unsigned().notNullable().references('licenses.id').onDelete('CASCADE');
    t.integer('account_id').unsigned().notNullable().references('accounts.id').onDelete('CASCADE');
    ts(t, 'since').notNullable();
    t.primary(['license_id', 'account_id']);
  });
  await db.schema.createTable('sso_roles', (t) => {
    t.integer('order_id').unsigned().notNullable().references('orders.id').onDelete('CASCADE');
    t.integer('account_id').unsigned().notNullable().references('accounts.id').onDelete('CASCADE');
    t.integer('provider_id').unsigned().notNullable().references('identity_providers.id').onDelete('CASCADE');
    t.primary(['order_id', 'account_id']);
    t.index(['account_id']);
  });
  await db.schema.createTable('sso_once', (t) => {
    t.string('key', 190).primary();
    t.text('value').nullable();
    ts(t, 'expires_at').notNullable();
    t.index(['expires_at']);
  });
}

export async function down(db: Knex): Promise<void> {
  for (const table of [
    'sso_once',
    'sso_roles',
    'sso_seat_waits',
    'sso_seats',
    'sso_identities',
    'sso_mappings',
    'sso_domains',
    'customer_sso_settings',
    'identity_providers',
  ])
    await db.schema.dropTableIfExists(table);
}
