import type { Knex } from 'knex';

/**
 * Management API credentials (docs/decisions.md, "Management API"): vendor API clients and managers'
 * personal access tokens, each stored only as the SHA-256 of the token (≥ 160 random bits: no slow
 * hash needed) with its first characters for display; and the Idempotency-Key records of POST
 * requests (per token and key: the request's fingerprint, an in-progress marker, the stored answer).
 */
const ts = (t: Knex.CreateTableBuilder, name: string) => t.datetime(name, { precision: 3 });

export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('api_tokens', (t) => {
    t.increments('id');
    /** `client` (a vendor API client, made in the console) or `personal` (a manager's own token). */
    t.string('kind', 16).notNullable();
    t.string('name', 100).notNullable();
    t.string('token_hash', 64).notNullable().unique();
    /** The token's first characters (prefix + 4), shown in lists and audit rows. */
    t.string('display_prefix', 32).notNullable();
    /** JSON array of scope codes (app/api/manage/scopes.ts). */
    t.text('scopes').notNullable();
    /** A personal token acts as this manager; null for API clients. */
    t.integer('owner_account_id').unsigned().nullable().references('accounts.id').onDelete('CASCADE');
    t.integer('created_by_account_id').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
    ts(t, 'expires_at').notNullable();
    ts(t, 'last_used_at').nullable();
    ts(t, 'revoked_at').nullable();
    t.integer('revoked_by_account_id').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
    ts(t, 'created_at').notNullable();
    t.index(['kind', 'id'], 'api_tokens_kind_index');
    t.index(['owner_account_id', 'id'], 'api_tokens_owner_index');
  });
  await db.schema.createTable('api_idempotency_keys', (t) => {
    t.increments('id');
    t.integer('token_id').unsigned().notNullable().references('api_tokens.id').onDelete('CASCADE');
    t.string('idempotency_key', 255).notNullable();
    /** SHA-256 of method, path and body: the same key with another request is refused. */
    t.string('fingerprint', 64).notNullable();
    /** Null while the first request runs; then its HTTP status. */
    t.integer('status').nullable();
    t.text('body', 'mediumtext').nullable();
    ts(t, 'created_at').notNullable();
    ts(t, 'expires_at').notNullable();
    t.unique(['token_id', 'idempotency_key'], { indexName: 'api_idempotency_token_key_unique' });
    t.index(['expires_at'], 'api_idempotency_expires_index');
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('api_idempotency_keys');
  await db.schema.dropTableIfExists('api_tokens');
}
