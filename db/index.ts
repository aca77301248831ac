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
import * as jobs from './migrations/0019_jobs.ts';
import * as apiCredentials from './migrations/0020_api_credentials.ts';
import * as webhooks from './migrations/0021_webhooks.ts';
import * as brandedMail from './migrations/0022_branded_mail.ts';
import * as renewalRequests from './migrations/0023_renewal_requests.ts';
import * as notificationOptouts from './migrations/0024_notification_optouts.ts';
import * as notifications from './migrations/0025_notifications.ts';
import * as identityProviders from './migrations/0026_identity_providers.ts';
import * as directoryAccounts from './migrations/0027_directory_accounts.ts';
import * as usageHistory from './migrations/0029_usage_history.ts';
import * as usageReports from './migrations/0030_usage_reports.ts';

export type Db = Knex;

interface Migration {
  name: string;
  up(db: Knex): Promise<void>;
  down(db: Knex): Promise<void>;
  /**
   * What the migration locks on MySQL/MariaDB, and for how long, when it can hold a big table for
   * long: the migration module's `export const locks` (the "locks:" convention, docs/operations.md,
   * "Upgrading"). `portico migrate:status` prints it for a pending migration before a start runs it.
   */
  locks?: string;
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
  { name: '0019_jobs', ...jobs },
  { name: '0020_api_credentials', ...apiCredentials },
  { name: '0021_webhooks', ...webhooks },
  { name: '0022_branded_mail', ...brandedMail },
  { name: '0023_renewal_requests', ...renewalRequests },
  { name: '0024_notification_optouts', ...notificationOptouts },
  { name: '0025_notifications', ...notifications },
  { name: '0026_identity_providers', ...identityProviders },
  { name: '0027_directory_accounts', ...directoryAccounts },
  { name: '0029_usage_history', ...usageHistory },
  { name: '0030_usage_reports', ...usageReports },
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
      if (isSqlite(db)) {
        const [, pending] = (await db.migrate.list(migratorConfig)) as [unknown[], unknown[]];
        if (pending.length === 0) return [];
        const [, applied] = await db.migrate.latest(migratorConfig);
        return applied as string[];
      }
      // Nothing pending, read without a claim: a restart writes nothing.
      if ((await db.schema.hasTable('knex_migrations')) && (await pendingCount(db)) === 0) return [];
      const applied = await whileClaimed(db, async () => {
        await ensureOneLockRow(db);
        if ((await pendingCount(db)) === 0) return [];
        const [, done] = await db.migrate.latest(migratorConfig);
        return done as string[];
      });
      if (applied) return applied;
    } catch (err) {
      const locked = (err as { name?: unknown }).name === 'MigrationLocked' || isSerializationFailure(err);
      if (!locked || Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new Error('timed out waiting for another process to finish the migrations');
    await new Promise((resolve) => setTimeout(resolve, 200 + Math.random() * 300));
  }
}

const pendingCount = async (db: Knex) => ((await db.migrate.list(migratorConfig)) as [unknown[], unknown[]])[1].length;

/** A claim older than this belongs to a process that died while migrating: it is taken over. */
const STALE_CLAIM_MS = 10 * 60_000;

/**
 * MySQL/MariaDB: runs `work` only while this process holds the one migration claim (a row with the
 * fixed id 1, inserted in its own statement); null when another process holds it. On a Galera cluster
 * knex's own lock was not enough: while one process ran the first migration's DDL, another's knex
 * made or filled its own tables through another node, and a DDL statement from one node aborts the
 * other nodes' open transactions on the same tables, which left a migration applied half-way (seen in
 * CI: a CREATE TABLE aborted, then "already exists" for ever). With the claim, only its holder runs
 * knex at all until the migrations are done; the others only read the claim row, and wait.
 */
async function whileClaimed<T>(db: Knex, work: () => Promise<T>): Promise<T | null> {
  if (!(await db.schema.hasTable('portico_migration_claim')))
    await db.raw(
      'CREATE TABLE IF NOT EXISTS `portico_migration_claim` (`id` int NOT NULL PRIMARY KEY, `holder` varchar(100) NOT NULL, `claimed_at` bigint NOT NULL)',
    );
  const now = Date.now();
  await db('portico_migration_claim')
    .where('id', 1)
    .where('claimed_at', '<', now - STALE_CLAIM_MS)
    .delete();
  const holder = `${process.pid}-${now}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    await db('portico_migration_claim').insert({ id: 1, holder, claimed_at: now });
  } catch (err) {
    if ((err as { errno?: number }).errno === 1062) return null; // held by another process
    throw err;
  }
  try {
    return await work();
  } finally {
    await db('portico_migration_claim').where({ id: 1, holder }).delete();
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
  for (const [table, columns] of [
    [
      'knex_migrations',
      '`id` int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, `name` varchar(255), `batch` int, `migration_time` timestamp',
    ],
    ['knex_migrations_lock', '`index` int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, `is_locked` int'],
  ]) {
    if (await db.schema.hasTable(table!)) continue;
    await db.raw(`CREATE TABLE IF NOT EXISTS \`${table}\` (${columns}) DEFAULT CHARACTER SET utf8mb4`);
  }
  const [rows] = (await db.raw('SELECT `index` FROM `knex_migrations_lock` LIMIT 1')) as [unknown[]];
  if (rows.length === 0)
    await db.raw(
      'INSERT INTO `knex_migrations_lock` (`index`, `is_locked`) SELECT 1, 0 FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM `knex_migrations_lock`)',
    );
}

/** Applies migrations one by one up to and including `name` (the migration test starts from an older schema). */
export async function migrateTo(db: Knex, name: string): Promise<void> {
  const applied = async () => (await db.migrate.list(migratorConfig))[0] as { name: string }[];
  while (!(await applied()).some((m) => m.name === name)) await db.migrate.up(migratorConfig);
}

/** The names of this release's migrations, in order: the last one is the schema version this code expects. */
export function migrationNames(): string[] {
  return migrations.map((m) => m.name);
}

export interface MigrationStatus {
  /** Applied migrations, in the order they ran (knex_migrations). */
  applied: string[];
  /** This release's migrations a start would apply, with their lock notes. */
  pending: { name: string; locks: string | null }[];
  /** Applied migrations this release does not know (the database is from a newer release): a start fails. */
  unknown: string[];
}

/** What a start would do to the database, without doing anything (reads only). */
export async function migrationStatus(db: Knex): Promise<MigrationStatus> {
  const applied = (await db.schema.hasTable('knex_migrations'))
    ? ((await db('knex_migrations').orderBy('id').select('name')) as { name: string }[]).map((r) => String(r.name))
    : [];
  const known = new Set(migrations.map((m) => m.name));
  const done = new Set(applied);
  return {
    applied,
    pending: migrations.filter((m) => !done.has(m.name)).map((m) => ({ name: m.name, locks: m.locks ?? null })),
    unknown: applied.filter((name) => !known.has(name)),
  };
}

export async function rollback(db: Knex, all = false): Promise<string[]> {
  const [, undone] = await db.migrate.rollback(migratorConfig, all);
  return undone as string[];
}
