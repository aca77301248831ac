import type { Knex } from 'knex';
import { isSqlite } from '../knexfile.ts';

/**
 * Every license file, refresh and online check looks up the nonce of the device's activation
 * (`request_nonces WHERE device_id = ? AND kind = ? ORDER BY created_at`). MySQL had an index on
 * device_id for its foreign key; SQLite had none and read the whole table: 42 ms per check with a
 * million answered requests. One index on both, in the order the lookup reads.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('request_nonces', (t) => {
    t.index(['device_id', 'kind', 'created_at'], 'request_nonces_device_kind_created_index');
  });
}

export async function down(db: Knex): Promise<void> {
  // MySQL dropped its own foreign-key index on device_id when this one could serve the key: give the
  // key its index back before this one goes.
  if (!isSqlite(db))
    await db.schema.alterTable('request_nonces', (t) => t.index(['device_id'], 'request_nonces_device_id_foreign'));
  await db.schema.alterTable('request_nonces', (t) => {
    t.dropIndex(['device_id', 'kind', 'created_at'], 'request_nonces_device_kind_created_index');
  });
}
