import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import * as tar from 'tar';
import { z } from 'zod';
import type { Config } from '../../config/index.ts';
import { migrationNames, migrationStatus, openDatabase } from '../../db/index.ts';
import { sqliteFile } from '../../db/knexfile.ts';
import { keysDir } from '../lib/key-files.ts';
import { dumpDatabase, loadDump, mysqlTarget } from './mysql-tools.ts';

/**
 * `portico backup` / `portico restore` (docs/operations.md, "Backup and restore"): ONE archive (tar +
 * gzip) holding a consistent snapshot of the database taken while the server runs, the secret files
 * of DATA_DIR (signing keys, secret-box key, session secret) and a manifest: format version, Portico
 * version, schema version (the last applied migration), database kind, creation time, and every
 * file's size and SHA-256. The archive holds the private keys: written 0600.
 *
 *   manifest.json
 *   database/portico.sqlite   (SQLite: better-sqlite3's online backup API)
 *   database/dump.sql         (MySQL/MariaDB: mariadb-dump --single-transaction --routines --triggers)
 *   data/keys/<kid>.pem, data/secret-box.key, data/session-secret
 *
 * The checksums find a damaged or altered archive; they are not a signature (whoever can rewrite the
 * archive can rewrite the manifest): keep backups where only the operator can write.
 */

export const BACKUP_FORMAT = 'portico-backup';
export const BACKUP_FORMAT_VERSION = 1;

/** The secret files of DATA_DIR besides keys/ (lib/session-secret.ts, crypto/secret-box.ts). */
const SECRET_FILES = ['secret-box.key', 'session-secret'];

/** The archive or the target is not acceptable: nothing was changed (exit code 3). */
export class Refused extends Error {}

const manifestSchema = z.object({
  format: z.literal(BACKUP_FORMAT),
  formatVersion: z.number().int(),
  porticoVersion: z.string(),
  schemaVersion: z.string(),
  migrations: z.array(z.string()),
  database: z.enum(['sqlite', 'mysql']),
  createdAt: z.string(),
  files: z.array(
    z.object({
      path: z.string().regex(/^(database|data)\/[\w.-]+(\/[\w.-]+)?$/),
      bytes: z.number().int().min(0),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
    }),
  ),
});
export type Manifest = z.infer<typeof manifestSchema>;

/** This release's version (package.json of the installation, found from the source tree or dist/). */
export function porticoVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'portico') return String(pkg.version);
    }
    dir = path.dirname(dir);
  }
  return 'unknown';
}

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

interface SqliteHandle {
  backup(
    file: string,
    options?: { progress?: (p: { totalPages: number; remainingPages: number }) => number },
  ): Promise<unknown>;
  pragma(s: string): unknown;
  prepare(sql: string): { all(): unknown[]; get(): unknown };
  close(): void;
}
const SqliteDatabase = createRequire(import.meta.url)('better-sqlite3') as new (
  file: string,
  options?: { fileMustExist?: boolean; timeout?: number; readonly?: boolean },
) => SqliteHandle;

/** The secret files present in DATA_DIR, as paths relative to it (posix separators). */
export function secretFilesIn(dataDir: string): string[] {
  const found = SECRET_FILES.filter((f) => fs.statSync(path.join(dataDir, f), { throwIfNoEntry: false })?.isFile());
  const keys = keysDir(dataDir);
  if (fs.existsSync(keys))
    for (const name of fs.readdirSync(keys).sort())
      if (!name.endsWith('.tmp') && fs.statSync(path.join(keys, name)).isFile()) found.push(`keys/${name}`);
  return found;
}

function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Everything under `dir` that is a file, as relative posix paths. */
function walk(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...walk(path.join(dir, entry.name), rel));
    else out.push(rel);
  }
  return out;
}

export interface BackupResult {
  file: string;
  manifest: Manifest;
}

/** Writes the archive to `out` (refused when it exists, unless `overwrite`); written whole, then renamed into place. */
export async function createBackup(
  config: Config,
  out: string,
  { now = new Date(), overwrite = false } = {},
): Promise<BackupResult> {
  const target = path.resolve(out);
  if (fs.existsSync(target) && !overwrite) throw new Refused(`${target} exists; choose another name or pass --force`);
  if (!fs.existsSync(path.dirname(target))) throw new Refused(`the folder ${path.dirname(target)} does not exist`);
  const staging = tempDir('portico-backup-');
  try {
    fs.mkdirSync(path.join(staging, 'database'), { mode: 0o700 });
    const sqlite = sqliteFile(config.databaseUrl);
    let applied: string[];
    if (sqlite !== null) {
      if (!fs.existsSync(sqlite)) throw new Error(`the database file ${sqlite} does not exist`);
      const snapshot = path.join(staging, 'database', 'portico.sqlite');
      // The online backup API: a consistent copy while other processes write (it restarts on their
      // changes, reading through the WAL), unlike a copy of the file.
      const source = new SqliteDatabase(sqlite, { fileMustExist: true, timeout: 10_000 });
      try {
        // All pages in one step, inside one read transaction (WAL: writers go on meanwhile). In small
        // steps, every write by another process between two steps restarts the copy: under steady load
        // it would never finish.
        await source.backup(snapshot, { progress: () => 0x7fffffff });
      } finally {
        source.close();
      }
      const copy = new SqliteDatabase(snapshot, { fileMustExist: true });
      try {
        // One self-contained file in the archive (no -wal beside it); a server sets WAL again when it opens it.
        copy.pragma('journal_mode = DELETE');
        const hasTable = copy
          .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'knex_migrations'")
          .get();
        applied = hasTable
          ? (copy.prepare('SELECT name FROM knex_migrations ORDER BY id').all() as { name: string }[]).map(
              (r) => r.name,
            )
          : [];
      } finally {
        copy.close();
      }
    } else {
      const db = openDatabase(config.databaseUrl);
      try {
        applied = (await migrationStatus(db)).applied;
        await dumpDatabase(mysqlTarget(config.databaseUrl), path.join(staging, 'database', 'dump.sql'));
        // A migration that ran during the dump would leave the schema version uncertain: try again.
        const after = (await migrationStatus(db)).applied;
        if (after.join() !== applied.join())
          throw new Error('migrations were applied while the backup ran; run the backup again');
      } finally {
        await db.destroy();
      }
    }
    if (applied.length === 0)
      throw new Error('the database has no schema yet (start Portico or run `portico migrate`)');

    for (const rel of secretFilesIn(config.dataDir)) {
      const dest = path.join(staging, 'data', rel);
      fs.mkdirSync(path.dirname(dest), { recursive: true, mode: 0o700 });
      fs.copyFileSync(path.join(config.dataDir, rel), dest);
      fs.chmodSync(dest, 0o600);
    }

    const files = walk(staging)
      .sort()
      .map((rel) => ({
        path: rel,
        bytes: fs.statSync(path.join(staging, rel)).size,
        sha256: sha256(path.join(staging, rel)),
      }));
    const manifest: Manifest = {
      format: BACKUP_FORMAT,
      formatVersion: BACKUP_FORMAT_VERSION,
      porticoVersion: porticoVersion(),
      schemaVersion: applied.at(-1)!,
      migrations: applied,
      database: sqlite !== null ? 'sqlite' : 'mysql',
      createdAt: now.toISOString(),
      files,
    };
    fs.writeFileSync(path.join(staging, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });

    const temp = `${target}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    try {
      await pipeline(
        tar.create({ gzip: true, cwd: staging, portable: true }, ['manifest.json', ...files.map((f) => f.path)]),
        fs.createWriteStream(temp, { mode: 0o600, flags: 'wx' }),
      );
      fs.chmodSync(temp, 0o600);
      fs.renameSync(temp, target);
    } finally {
      fs.rmSync(temp, { force: true });
    }
    return { file: target, manifest };
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

/**
 * Unpacks an archive into `staging` and checks it: a manifest of this format, exactly the files it
 * lists with their sizes and checksums, and a schema version this release knows (its migrations are
 * all among this release's). Refused (nothing written outside `staging`) otherwise.
 */
export async function openArchive(file: string, staging: string): Promise<Manifest> {
  if (!fs.statSync(file, { throwIfNoEntry: false })?.isFile()) throw new Refused(`${file} is not a file`);
  const odd: string[] = [];
  try {
    await tar.extract({
      file,
      cwd: staging,
      strict: true,
      // Regular files and folders only: a link could point outside the staging folder.
      filter: (p, entry) => {
        const type = 'type' in entry ? entry.type : entry.isFile() ? 'File' : 'Directory';
        if (type === 'File' || type === 'Directory') return true;
        odd.push(p);
        return false;
      },
    });
  } catch (err) {
    throw new Refused(`${file} is not a readable Portico backup (${(err as Error).message})`);
  }
  if (odd.length)
    throw new Refused(`the archive holds entries that are not plain files: ${odd.slice(0, 3).join(', ')}`);
  const manifestFile = path.join(staging, 'manifest.json');
  if (!fs.existsSync(manifestFile)) throw new Refused('the archive has no manifest.json: not a Portico backup');
  let manifest: Manifest;
  try {
    const raw = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as { format?: unknown; formatVersion?: unknown };
    if (raw.format !== BACKUP_FORMAT) throw new Error('not a Portico backup manifest');
    if (raw.formatVersion !== BACKUP_FORMAT_VERSION)
      throw new Error(
        `archive format ${String(raw.formatVersion)}; this release reads format ${BACKUP_FORMAT_VERSION}`,
      );
    manifest = manifestSchema.parse(raw);
  } catch (err) {
    throw new Refused(
      `the manifest is not usable: ${err instanceof z.ZodError ? z.prettifyError(err) : (err as Error).message}`,
    );
  }

  const listed = new Set(manifest.files.map((f) => f.path));
  const present = walk(staging).filter((p) => p !== 'manifest.json');
  const extra = present.filter((p) => !listed.has(p));
  if (extra.length) throw new Refused(`files not in the manifest: ${extra.slice(0, 3).join(', ')}`);
  for (const f of manifest.files) {
    const abs = path.join(staging, f.path);
    if (!fs.existsSync(abs)) throw new Refused(`${f.path} is listed in the manifest but missing from the archive`);
    if (fs.statSync(abs).size !== f.bytes || sha256(abs) !== f.sha256)
      throw new Refused(`checksum mismatch for ${f.path}: the archive is damaged or was altered`);
  }
  const database = manifest.database === 'sqlite' ? 'database/portico.sqlite' : 'database/dump.sql';
  if (!listed.has(database)) throw new Refused(`the archive has no ${database}`);

  const known = migrationNames();
  const unknown = manifest.migrations.filter((m) => !known.includes(m));
  if (
    !known.includes(manifest.schemaVersion) ||
    unknown.length ||
    manifest.migrations.at(-1) !== manifest.schemaVersion
  )
    throw new Refused(
      `schema version ${manifest.schemaVersion} (Portico ${manifest.porticoVersion}) is not one this release knows ` +
        `(its latest is ${known.at(-1)}${unknown.length ? `; unknown migrations: ${unknown.slice(0, 3).join(', ')}` : ''}): ` +
        'restore it with the release that made it, or a newer one',
    );
  return manifest;
}

/** What is already in the target: secret files in DATA_DIR, a database with tables. */
async function targetContents(config: Config): Promise<string[]> {
  const found = secretFilesIn(config.dataDir).map((f) => path.join(config.dataDir, f));
  const sqlite = sqliteFile(config.databaseUrl);
  if (sqlite !== null) {
    if (fs.existsSync(sqlite) && fs.statSync(sqlite).size > 0) {
      const db = new SqliteDatabase(sqlite, { fileMustExist: true, readonly: true, timeout: 10_000 });
      try {
        const n = (db.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number }).n;
        if (n > 0) found.push(`${sqlite} (${n} tables)`);
      } finally {
        db.close();
      }
    }
  } else {
    const db = openDatabase(config.databaseUrl);
    try {
      const [rows] = (await db.raw(
        'SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE()',
      )) as [{ n: number }[]];
      const n = Number(rows[0]?.n ?? 0);
      if (n > 0) found.push(`database ${mysqlTarget(config.databaseUrl).database} (${n} tables)`);
    } finally {
      await db.destroy();
    }
  }
  return found;
}

/** With --force: empties the target (secret files, the database's tables) before the restore. */
async function clearTarget(config: Config): Promise<void> {
  for (const rel of secretFilesIn(config.dataDir)) fs.rmSync(path.join(config.dataDir, rel), { force: true });
  const sqlite = sqliteFile(config.databaseUrl);
  if (sqlite !== null) {
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(`${sqlite}${suffix}`, { force: true });
    return;
  }
  const db = openDatabase(config.databaseUrl);
  try {
    await db.transaction(async (trx) => {
      // One connection for all of it: foreign-key checks are off only for this session.
      const [rows] = (await trx.raw(
        'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = DATABASE()',
      )) as [{ name: string }[]];
      await trx.raw('SET FOREIGN_KEY_CHECKS = 0');
      for (const { name } of rows) await trx.raw('DROP TABLE IF EXISTS ??', [name]);
      await trx.raw('SET FOREIGN_KEY_CHECKS = 1');
    });
  } finally {
    await db.destroy();
  }
}

export interface RestoreResult {
  manifest: Manifest;
  /** This release's migrations the restored database does not have yet (the next start applies them). */
  pending: string[];
}

/**
 * Restores an archive into the DATA_DIR and database of `config`, which must hold nothing yet (no
 * secret files, no tables) unless `force`. Checked first (openArchive); the processes must be stopped.
 */
export async function restoreBackup(config: Config, file: string, { force = false } = {}): Promise<RestoreResult> {
  const staging = tempDir('portico-restore-');
  try {
    const manifest = await openArchive(path.resolve(file), staging);
    const kind = sqliteFile(config.databaseUrl) !== null ? 'sqlite' : 'mysql';
    if (manifest.database !== kind)
      throw new Refused(
        `the archive holds a ${manifest.database === 'sqlite' ? 'SQLite' : 'MySQL/MariaDB'} database but DATABASE_URL is ${kind === 'sqlite' ? 'SQLite' : 'MySQL/MariaDB'}: restore it into the same kind, then move it with \`portico copy-database\``,
      );
    const present = await targetContents(config);
    if (present.length && !force)
      throw new Refused(
        `the target is not empty: ${present.slice(0, 4).join(', ')}${present.length > 4 ? ', …' : ''}. ` +
          'Restore into a fresh DATA_DIR and an empty database, or pass --force to replace what is there',
      );
    if (present.length) await clearTarget(config);

    const sqlite = sqliteFile(config.databaseUrl);
    if (sqlite !== null) {
      fs.mkdirSync(path.dirname(path.resolve(sqlite)), { recursive: true, mode: 0o700 });
      // An empty file (no tables) counts as empty: it goes, with its journal files.
      for (const suffix of ['', '-wal', '-shm']) fs.rmSync(`${sqlite}${suffix}`, { force: true });
      fs.copyFileSync(path.join(staging, 'database', 'portico.sqlite'), sqlite, fs.constants.COPYFILE_EXCL);
      fs.chmodSync(sqlite, 0o600);
    } else {
      await loadDump(mysqlTarget(config.databaseUrl), path.join(staging, 'database', 'dump.sql'));
    }

    fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    for (const f of manifest.files.filter((x) => x.path.startsWith('data/'))) {
      const rel = f.path.slice('data/'.length);
      const dest = path.join(config.dataDir, rel);
      fs.mkdirSync(path.dirname(dest), { recursive: true, mode: 0o700 });
      fs.copyFileSync(path.join(staging, f.path), dest, fs.constants.COPYFILE_EXCL);
      fs.chmodSync(dest, 0o600);
    }

    const db = openDatabase(config.databaseUrl);
    try {
      const status = await migrationStatus(db);
      if (status.applied.at(-1) !== manifest.schemaVersion)
        throw new Error(
          `after the restore the database's schema version is ${status.applied.at(-1) ?? 'none'}, not ${manifest.schemaVersion}`,
        );
      return { manifest, pending: status.pending.map((p) => p.name) };
    } finally {
      await db.destroy();
    }
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}
