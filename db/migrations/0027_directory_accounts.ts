import type { Knex } from 'knex';

/**
 * Staff accounts that sign in through the vendor's LDAP directory (docs/operations.md, "LDAP for the
 * vendor's staff"): `directory_dn` is the entry the account was made from at its first directory
 * login. Such an account has no local password; the directory checks it, and its group decides
 * whether it may still use the console.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('accounts', (t) => {
    t.string('directory_dn', 1024).nullable();
  });
}

/**
 * A plain ALTER TABLE … DROP COLUMN on both databases (SQLite 3.35+ has it): knex's SQLite way rebuilds
 * the table, and rebuilding `accounts` would cascade-delete every row that references it.
 */
export async function down(db: Knex): Promise<void> {
  await db.raw('ALTER TABLE accounts DROP COLUMN directory_dn');
}
