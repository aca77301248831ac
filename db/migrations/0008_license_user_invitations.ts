import type { Knex } from 'knex';

/**
 * Pending invitations to a user-based license (docs/decisions.md, "Account ownership"): a manager
 * who names an existing account that reaches outside their orders does not get it assigned; the
 * account's owner receives a single-use link (stored only as its SHA-256) and the assignment is made
 * when they accept it. Withdrawing an invitation deletes its row; an accepted one keeps accepted_at.
 */
const ts = (t: Knex.CreateTableBuilder, name: string) => t.datetime(name, { precision: 3 });

export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('license_user_invitations', (t) => {
    t.increments('id');
    t.integer('license_id').unsigned().notNullable().references('licenses.id').onDelete('CASCADE');
    t.integer('account_id').unsigned().notNullable().references('accounts.id').onDelete('CASCADE');
    t.integer('max_activations').notNullable();
    t.string('token_hash', 64).notNullable().unique();
    t.integer('invited_by_account_id').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
    ts(t, 'created_at').notNullable();
    ts(t, 'expires_at').notNullable();
    ts(t, 'accepted_at').nullable();
    t.index(['license_id', 'account_id']);
    t.index(['account_id']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('license_user_invitations');
}
