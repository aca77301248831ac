import type { Knex } from 'knex';

/**
 * Branded mail (docs/console.md, Mail): a branding's sender name, reply-to address and footer text;
 * the outbox keeps what the renderer made of a mail (its HTML part, sender name, reply-to and extra
 * headers) so the mail.send job sends exactly what was rendered.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('brandings', (t) => {
    t.string('mail_from_name', 100).nullable();
    t.string('mail_reply_to', 254).nullable();
    t.string('mail_footer', 500).nullable();
  });
  await db.schema.alterTable('mail_outbox', (t) => {
    t.text('html_body', 'mediumtext').nullable();
    t.string('from_name', 100).nullable();
    t.string('reply_to', 254).nullable();
    t.text('headers_json').nullable();
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('mail_outbox', (t) => {
    t.dropColumn('html_body');
    t.dropColumn('from_name');
    t.dropColumn('reply_to');
    t.dropColumn('headers_json');
  });
  await db.schema.alterTable('brandings', (t) => {
    t.dropColumn('mail_from_name');
    t.dropColumn('mail_reply_to');
    t.dropColumn('mail_footer');
  });
}
