import knex, { type Knex } from 'knex';
import { isSqlite, knexConfig } from './knexfile.ts';
import { isSerializationFailure } from '../app/lib/transaction.ts';
import * as initial from './migrations/0001_initial.ts';
import * as auditIndexes from './migrations/0002_audit_indexes.ts';
import * as brandingLogoSize from './migrations/0003_branding_logo_size.ts';
import * as totpLastStep from './migrations/0004_totp_last_step.ts';
import * as requestNonceDeviceIndex from './migrations/0005_request_nonce_device_index.ts';
import * as orderLicenseCount from './migrations/0006_order_license_count.ts';
import * as airgapCommitment from './migrations/0007_airgap_commitment.ts';
import * as licenseUserInvitations from './migrations/0008_license_user_invitations.ts';
import * as sessionOwner from './migrations/0009_session_owner.ts';
import * as orderRefPerCustomer from './migrations/0011_order_ref_per_customer.ts';
import * as rolesPerOrder from './migrations/0012_roles_per_order.ts';
import * as vouchers from './migrations/0013_vouchers.ts';
import * as cacheGeneration from './migrations/0015_cache_generation.ts';
import * as mailOutboxCausedBy from './migrations/0016_mail_outbox_caused_by.ts';
import * as dashboardIndexes from './migrations/0017_dashboard_indexes.ts';
import * as brandingFaviconPoweredBy from './migrations/0018_branding_favicon_powered_by.ts';

export type Db = Knex;

interface Migration {
  name: string;
  up(db: Knex): Promise<void>;
  down(db: Knex): Promise<void>;
}

/** Migrations in order. Once merged, a migration is never edited: add a new one. */
const migrations: Migration[] = [
  { name: '0001_initial', ...initial },
  { name: '0002_audit_indexes', ...auditIndexes },
  { name: '0003_branding_logo_size', ...brandingLogoSize },
  { name: '0004_totp_last_step', ...totpLastStep },
  { name: '0005_request_nonce_device_index', ...requestNonceDeviceIndex },
  { name: '0006_order_license_count', ...orderLicenseCount },
  { name: '0007_airgap_commitment', ...airgapCommitment },
  { name: '0008_license_user_invitations', ...licenseUserInvitations },
  { name: '0009_session_owner', ...sessionOwner },
  { name: '0011_order_ref_per_customer', ...orderRefPerCustomer },
  { name: '0012_roles_per_order', ...rolesPerOrder },
  { name: '0013_vouchers', ...vouchers },
  { name: '0015_cache_generation', ...cacheGeneration },
  { name: '0016_mail_outbox_caused_by', ...mailOutboxCausedBy },
  { name: '0017_dashboard_indexes', ...dashboardIndexes },
  { name: '0018_branding_favicon_powered_by', ...brandingFaviconPoweredBy },
];

const migrationSource: Knex.MigrationSource<Migration> = {
  getMigrations: async () => migrations,
  getMigrationName: (m) => m.name,
  getMigration: async (m) => m,
};

const migratorConfig = { migrationSource, tableName: 'knex_migrations' };

export function openDatabase(databaseUrl: string): Knex {
  return knex(knexConfig(databaseUrl));
}

/**
 * Applies the pending migrations, once whatever the number of processes starting at the same time.
 * Nothing pending: nothing is written (knex would take and free its lock row all the same, and on a
 * Galera cluster two processes doing so through two nodes conflict at commit). Another process
 * migrating: knex refuses with "already locked" (or, through another Galera node, its lock update
 * fails certification); this one waits until that process is done, up to `waitMs`.
 */
export async function migrateLatest(db: Knex, { waitMs = 120_000 } = {}): Promise<string[]> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      if (!isSqlite(db)) await ensureOneLockRow(db);
      // (Listing creates knex's own tables when missing: DDL, which can meet another node's too.)
      const [, pending] = (await db.migrate.list(migratorConfig)) as [unknown[], unknown[]];
      if (pending.length === 0) return [];
      const [, applied] = await db.migrate.latest(migratorConfig);
      return applied as string[];
    } catch (err) {
      const locked = (err as { name?: unknown }).name === 'MigrationLocked' || isSerializationFailure(err);
      if (!locked || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200 + Math.random() * 300));
    }
  }
}

/**
 * knex's migration lock is one row of knex_migrations_lock, taken with `UPDATE … WHERE is_locked = 0`.
 * knex inserts that row when it finds the table empty, with an auto-increment id: two processes
 * starting on a new database through two Galera nodes could each insert one (the nodes hand out
 * different ids), each then "took the lock" on its own row, and both ran the first migration's DDL at
 * once (seen in CI: a CREATE TABLE aborted half-way, then "already exists" for ever). Made here
 * first, the row has the fixed id 1: two such inserts collide on that key and one is refused.
 */
async function ensureOneLockRow(db: Knex): Promise<void> {
  // knex's own tables, as knex makes them, but with IF NOT EXISTS: two processes that both found them
  // missing would otherwise both create them, and the second would stop on "already exists".
  let created = false;
  for (const [table, columns] of [
    [
      'knex_migrations',
      '`id` int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, `name` varchar(255), `batch` int, `migration_time` timestamp',
    ],
    ['knex_migrations_lock', '`index` int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, `is_locked` int'],
  ]) {
    if (await db.schema.hasTable(table!)) continue;
    await db.raw(`CREATE TABLE IF NOT EXISTS \`${table}\` (${columns}) DEFAULT CHARACTER SET utf8mb4`);
    created = true;
  }
  const [rows] = (await db.raw('SELECT `index` FROM `knex_migrations_lock` LIMIT 1')) as [unknown[]];
  if (rows.length === 0)
    await db.raw(
      'INSERT INTO `knex_migrations_lock` (`index`, `is_locked`) SELECT 1, 0 FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM `knex_migrations_lock`)',
    );
  // On a Galera cluster a DDL statement from one node aborts the open transactions of the others that
  // touch the same table, a no-op CREATE TABLE IF NOT EXISTS too. A process that just found the tables
  // missing lets the others' creates (issued within moments of the same finding) pass before it
  // migrates: otherwise one could abort its first migration half-way (seen in CI). Once per database.
  if (created) await new Promise((resolve) => setTimeout(resolve, 1500));
}

/** Applies migrations one by one up to and including `name` (the migration test starts from an older schema). */
export async function migrateTo(db: Knex, name: string): Promise<void> {
  const applied = async () => (await db.migrate.list(migratorConfig))[0] as { name: string }[];
  while (!(await applied()).some((m) => m.name === name)) await db.migrate.up(migratorConfig);
}

export async function rollback(db: Knex, all = false): Promise<string[]> {
  const [, undone] = await db.migrate.rollback(migratorConfig, all);
  return undone as string[];
}
