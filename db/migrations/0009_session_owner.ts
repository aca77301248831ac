import type { Knex } from 'knex';

/**
 * Whose session each row is: a change of credentials (password, one-time password, reset, second
 * factor, disabling) ends the account's other sessions, and the account page lists them. Sessions
 * stored before this have no owner and end at their idle expiry, as before.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('sessions', (t) => {
    t.integer('account_id').unsigned().nullable().index();
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('sessions', (t) => {
    t.dropIndex(['account_id']);
    t.dropColumn('account_id');
  });
}
