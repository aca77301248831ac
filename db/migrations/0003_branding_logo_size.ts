import type { Knex } from 'knex';
import { isSqlite } from '../knexfile.ts';

/**
 * `brandings.logo_data` was created with knex's `binary()`, which is a BLOB on MySQL/MariaDB: at most
 * 64 KiB, while a logo may be up to 512 KiB. MEDIUMBLOB holds 16 MiB. SQLite has no such limit.
 */
export async function up(db: Knex): Promise<void> {
  if (isSqlite(db)) return;
  await db.raw('ALTER TABLE brandings MODIFY logo_data MEDIUMBLOB NULL');
}

export async function down(db: Knex): Promise<void> {
  if (isSqlite(db)) return;
  // A logo that no longer fits is dropped rather than truncated into a broken image.
  await db('brandings').whereRaw('LENGTH(logo_data) > 65535').update({ logo_data: null, logo_mime: null });
  await db.raw('ALTER TABLE brandings MODIFY logo_data BLOB NULL');
}
