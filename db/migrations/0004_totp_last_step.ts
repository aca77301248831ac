import type { Knex } from 'knex';

/**
 * The last TOTP time step (30-second counter) an account has used. A code is accepted only for a
 * later step, so a code seen over someone's shoulder or replayed within its window is refused. One
 * guarded UPDATE claims a step, which holds across server processes.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('accounts', (t) => {
    t.bigInteger('totp_last_step').nullable();
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('accounts', (t) => {
    t.dropColumn('totp_last_step');
  });
}
