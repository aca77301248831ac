import type { Knex } from 'knex';

/**
 * Who caused a mail (a manager's dispatch or invitation), so the manager can see what became of it;
 * mails SMTP accepted are kept too for them (reason `sent`, without their text).
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('mail_outbox', (t) => {
    t.integer('caused_by_account_id').unsigned().nullable();
    t.index(['caused_by_account_id', 'id'], 'mail_outbox_caused_by_index');
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('mail_outbox', (t) => {
    t.dropIndex(['caused_by_account_id', 'id'], 'mail_outbox_caused_by_index');
  });
  await db.schema.alterTable('mail_outbox', (t) => {
    t.dropColumn('caused_by_account_id');
  });
}
