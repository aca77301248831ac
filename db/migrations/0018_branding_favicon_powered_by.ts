import type { Knex } from 'knex';

/**
 * Two branding switches (docs/console.md, Brandings): whether the footer shows "Powered by Portico",
 * and whether the browser tab shows the branding's logo as its icon instead of Portico's.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('brandings', (t) => {
    t.boolean('show_powered_by').notNullable().defaultTo(true);
    t.boolean('logo_as_favicon').notNullable().defaultTo(false);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('brandings', (t) => {
    t.dropColumn('show_powered_by');
    t.dropColumn('logo_as_favicon');
  });
}
