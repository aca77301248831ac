import type { Knex } from 'knex';

/**
 * Air-gap codes version 2: an activation keeps the commitment (80 bits, 20 hex digits) to the secret
 * that only the device holds; its deactivation code reveals the secret. Rows of version 1 keep
 * their airgap_secret and no commitment (the console lists them: their deactivations cannot be proven).
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('devices', (t) => {
    t.string('airgap_commitment', 20).nullable();
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('devices', (t) => {
    t.dropColumn('airgap_commitment');
  });
}
