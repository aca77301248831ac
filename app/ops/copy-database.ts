import fs from 'node:fs';
import path from 'node:path';
import knex, { type Knex } from 'knex';
import { migrateLatest, migrationStatus, openDatabase } from '../../db/index.ts';
import { isSqlite, knexConfig, sqliteFile } from '../../db/knexfile.ts';
import { Refused } from './backup.ts';
import { ToolError } from './mysql-tools.ts';

/**
 * `portico copy-database --to <URL>` (docs/operations.md, "Moving from SQLite to MariaDB"): copies
 * every row of every Portico table of the installation's database (DATABASE_URL, the source) into
 * another database (the target), SQLite → MySQL/MariaDB or back (or between two of one kind).
 *
 * - The source is only read: on SQLite through a connection with `query_only` inside one deferred
 *   (read) transaction, on MySQL/MariaDB inside one REPEATABLE READ, READ ONLY transaction: every
 *   table is read from the same snapshot. It must be at this release's schema (no pending migration).
 * - The target gets this release's schema from Portico's own migrations (never copied: knex's tables
 *   and the migration claim are the target's own) and must then list the same migrations as the
 *   source. It must hold no data (nothing beyond what the migrations put there) unless `force`.
 * - All writes happen in ONE transaction of ONE connection of the target, with foreign-key checks
 *   off for it (MySQL: SET FOREIGN_KEY_CHECKS = 0 in that session; SQLite: PRAGMA foreign_keys = OFF
 *   before the transaction): every table is emptied (the rows the migrations put there, or with
 *   `force` whatever it held), then filled in batches. The source enforced its keys, so its rows are
 *   consistent; SQLite targets are checked afterwards with PRAGMA foreign_key_check. Any failure rolls
 *   the whole copy back.
 * - Values are converted by the TARGET column's type: dates (SQLite keeps them as milliseconds, or
 *   ISO text for the session store's `expired`) become Date objects for DATETIME columns and back,
 *   booleans numbers, JSON objects text; BLOBs stay Buffers. Ids are copied as they are, and each
 *   table's counter (MySQL AUTO_INCREMENT, SQLite sqlite_sequence) is set past the source's, so new
 *   rows continue after the copied ids (and after ids the source had used and deleted).
 * - Afterwards every table's row count in the target is compared with the source's snapshot.
 *
 * DATA_DIR (signing keys, secret-box key, session secret) is not part of the database: the target
 * is used with the same DATA_DIR.
 */

/** knex's migration bookkeeping and Portico's migration claim: each database has its own. */
const NOT_COPIED = new Set(['knex_migrations', 'knex_migrations_lock', 'portico_migration_claim']);

/**
 * DATETIME columns that SQLite holds as ISO text rather than milliseconds: the session store's
 * expiry (models/sessions.ts `stamp`, connect-session-knex's own format).
 */
const SQLITE_TEXT_DATES = new Set(['sessions.expired']);

export const BATCH_ROWS = 1000;

interface Column {
  name: string;
  /** The declared type, lower case: "datetime", "tinyint(1)", "blob", "varchar(255)", … */
  type: string;
}

interface Table {
  name: string;
  columns: Column[];
  /** Primary-key columns in key order (empty: none). */
  key: string[];
}

export interface TableCopied {
  table: string;
  rows: number;
}

export interface CopyResult {
  source: string;
  target: string;
  tables: TableCopied[];
  rows: number;
  schemaVersion: string;
}

export interface CopyOptions {
  force?: boolean;
  batchRows?: number;
  /** Progress, one line at a time (the CLI prints them). */
  progress?: (line: string) => void;
}

/** A database URL for messages: the password left out. */
export function describeUrl(url: string): string {
  const file = sqliteFile(url);
  if (file !== null) return `SQLite ${path.resolve(file)}`;
  try {
    const u = new URL(url.replace(/^mariadb:/, 'mysql:'));
    return `MySQL/MariaDB ${u.hostname}:${u.port || 3306}/${u.pathname.replace(/^\//, '')}`;
  } catch {
    return 'an unreadable URL';
  }
}

/** A usable target URL: sqlite:<file>, or mysql:// (mariadb://) naming a database. Null when it is fine. */
export function badDatabaseUrl(url: string): string | null {
  const file = sqliteFile(url);
  if (file !== null) return file === '' || file === ':memory:' ? 'a SQLite URL needs a file: sqlite:<file>' : null;
  if (!/^(mysql|mariadb):\/\//.test(url)) return 'it must start with sqlite: or mysql:// (mariadb://)';
  try {
    const u = new URL(url.replace(/^mariadb:/, 'mysql:'));
    if (!u.hostname) return 'it names no host';
    if (!u.pathname.replace(/^\//, '')) return 'it names no database (mysql://user:password@host:3306/<database>)';
  } catch {
    return 'it is not a URL';
  }
  return null;
}

async function tablesOf(db: Knex): Promise<Table[]> {
  const tables: Table[] = [];
  if (isSqlite(db)) {
    const names = (await db.raw(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )) as { name: string }[];
    for (const { name } of names) {
      if (NOT_COPIED.has(name)) continue;
      const info = (await db.raw('SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid', [name])) as {
        name: string;
        type: string;
        pk: number;
      }[];
      tables.push({
        name,
        columns: info.map((c) => ({ name: c.name, type: String(c.type).toLowerCase() })),
        key: info
          .filter((c) => c.pk > 0)
          .sort((a, b) => a.pk - b.pk)
          .map((c) => c.name),
      });
    }
    return tables;
  }
  const [columns] = (await db.raw(
    `SELECT c.table_name AS t, c.column_name AS name, c.column_type AS type
       FROM information_schema.columns c
       JOIN information_schema.tables x ON x.table_schema = c.table_schema AND x.table_name = c.table_name
      WHERE c.table_schema = DATABASE() AND x.table_type = 'BASE TABLE'
      ORDER BY c.table_name, c.ordinal_position`,
  )) as [{ t: string; name: string; type: string }[]];
  const [keys] = (await db.raw(
    `SELECT table_name AS t, column_name AS name FROM information_schema.key_column_usage
      WHERE table_schema = DATABASE() AND constraint_name = 'PRIMARY' ORDER BY table_name, ordinal_position`,
  )) as [{ t: string; name: string }[]];
  const byName = new Map<string, Table>();
  for (const c of columns) {
    if (NOT_COPIED.has(c.t)) continue;
    const table = byName.get(c.t) ?? { name: c.t, columns: [], key: [] };
    byName.set(c.t, table);
    table.columns.push({ name: c.name, type: String(c.type).toLowerCase() });
  }
  for (const k of keys) byName.get(k.t)?.key.push(k.name);
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
}

async function countOf(db: Knex, table: string): Promise<number> {
  const row = (await db(table).count({ n: '*' }).first()) as { n?: unknown } | undefined;
  return Number(row?.n ?? 0);
}

/** A date read from either kind: a Date, milliseconds (number or digits), or text (UTC when it names no zone). */
function asDate(value: unknown): Date {
  if (value instanceof Date) return value;
  if (typeof value === 'number' || typeof value === 'bigint') return new Date(Number(value));
  const text = String(value).trim();
  if (/^-?\d+$/.test(text)) return new Date(Number(text));
  // SQLite's CURRENT_TIMESTAMP and MySQL's DATETIME text carry no zone: Portico's dates are UTC.
  if (/^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$/.test(text))
    return new Date(`${text.replace(' ', 'T')}${text.length === 10 ? 'T00:00:00' : ''}Z`);
  const parsed = new Date(text);
  if (Number.isNaN(parsed.getTime())) throw new ToolError(`a date could not be read: ${JSON.stringify(text)}`);
  return parsed;
}

const isDateType = (type: string) => /^(datetime|timestamp|date)\b/.test(type);
const isBooleanType = (type: string) => type === 'boolean' || type === 'tinyint(1)' || type === 'bool';

/** One value as the target column of `type` takes it. */
function convert(value: unknown, table: string, column: Column, toSqlite: boolean): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (isDateType(column.type)) {
    if (!toSqlite) return asDate(value);
    // Text or milliseconds as SQLite already held them; a Date from MySQL as Portico writes it on SQLite.
    if (!(value instanceof Date)) return value;
    return SQLITE_TEXT_DATES.has(`${table}.${column.name}`) ? value.toISOString() : value.getTime();
  }
  if (isBooleanType(column.type) && typeof value === 'string') return value === '1' || value === 'true' ? 1 : 0;
  if (typeof value === 'bigint') return toSqlite ? value : value.toString();
  if (typeof value === 'object' && !Buffer.isBuffer(value) && !(value instanceof Date)) return JSON.stringify(value);
  return value;
}

/** The next id each table's counter must give: past the source's counter and past its highest id. */
async function nextIds(source: Knex, tables: Table[]): Promise<Map<string, number>> {
  const counters = new Map<string, number>();
  if (isSqlite(source)) {
    if ((await source.raw("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")).length)
      for (const r of (await source.raw('SELECT name, seq FROM sqlite_sequence')) as { name: string; seq: number }[])
        counters.set(r.name, Number(r.seq) + 1);
  } else {
    const [rows] = (await source.raw(
      'SELECT table_name AS t, auto_increment AS n FROM information_schema.tables WHERE table_schema = DATABASE() AND auto_increment IS NOT NULL',
    )) as [{ t: string; n: number }[]];
    for (const r of rows) counters.set(r.t, Number(r.n));
  }
  const next = new Map<string, number>();
  for (const t of tables) {
    if (t.key.length !== 1 || t.key[0] !== 'id') continue;
    const type = t.columns.find((c) => c.name === 'id')!.type;
    if (!/int/.test(type)) continue;
    const max = Number(((await source(t.name).max({ m: 'id' }).first()) as { m?: unknown } | undefined)?.m ?? 0);
    next.set(t.name, Math.max(max + 1, counters.get(t.name) ?? 1));
  }
  return next;
}

/** The rows of `table` in key order, `size` rows at a time (keyset paging: no OFFSET over a big audit log). */
async function* batches(db: Knex, table: Table, size: number): AsyncGenerator<Record<string, unknown>[]> {
  const columns = table.columns.map((c) => c.name);
  if (table.key.length === 0) {
    for (let offset = 0; ; offset += size) {
      const rows = await db(table.name)
        .select(columns)
        .orderBy(columns.map((c) => ({ column: c })))
        .limit(size)
        .offset(offset);
      if (rows.length) yield rows;
      if (rows.length < size) return;
    }
  }
  let last: Knex.Value[] | null = null;
  for (;;) {
    const query = db(table.name).select(columns);
    // After the last row read: (k1 > v1) OR (k1 = v1 AND k2 > v2) OR …, which both kinds answer
    // from the primary key's index (a row-value comparison is not always optimised on MariaDB).
    const after = last;
    if (after)
      query.where((w) => {
        for (let i = 0; i < table.key.length; i++)
          w.orWhere((branch) => {
            for (let j = 0; j < i; j++) branch.where(table.key[j]!, after[j]!);
            branch.where(table.key[i]!, '>', after[i]!);
          });
      });
    const rows = (await query.orderBy(table.key.map((c) => ({ column: c }))).limit(size)) as Record<string, unknown>[];
    if (rows.length) yield rows;
    if (rows.length < size) return;
    const end = rows.at(-1)!;
    last = table.key.map((c) => end[c] as Knex.Value);
  }
}

/** The row counts of a freshly migrated database (what the migrations themselves put there). */
async function freshCounts(): Promise<Map<string, number>> {
  const db = openDatabase('sqlite::memory:');
  try {
    await migrateLatest(db);
    const counts = new Map<string, number>();
    for (const t of await tablesOf(db)) counts.set(t.name, await countOf(db, t.name));
    return counts;
  } finally {
    await db.destroy();
  }
}

/** Tables of the target that hold more than a fresh migration puts there, with their row counts. */
async function dataIn(target: Knex): Promise<string[]> {
  const tables = await tablesOf(target);
  if (tables.length === 0) return [];
  const fresh = await freshCounts();
  const found: string[] = [];
  for (const t of tables) {
    const n = await countOf(target, t.name);
    if (n !== (fresh.get(t.name) ?? 0)) found.push(`${t.name} (${n} rows)`);
  }
  return found;
}

/** The same database twice (the same file, or the same server and schema): refused. */
async function sameDatabase(source: Knex, target: Knex, sourceUrl: string, targetUrl: string): Promise<boolean> {
  const a = sqliteFile(sourceUrl);
  const b = sqliteFile(targetUrl);
  if (a !== null || b !== null) {
    if (a === null || b === null) return false;
    const real = (f: string) => (fs.existsSync(f) ? fs.realpathSync(f) : path.resolve(f));
    return real(a) === real(b);
  }
  const who = async (db: Knex) => {
    const [rows] = (await db.raw('SELECT @@hostname AS h, @@port AS p, DATABASE() AS d')) as [
      { h: string; p: number; d: string }[],
    ];
    return `${rows[0]!.h}:${rows[0]!.p}/${rows[0]!.d}`;
  };
  return (await who(source)) === (await who(target));
}

function schemaDifference(source: Table[], target: Table[]): string | null {
  const inTarget = new Map(target.map((t) => [t.name, t]));
  const inSource = new Map(source.map((t) => [t.name, t]));
  const onlySource = source.filter((t) => !inTarget.has(t.name)).map((t) => t.name);
  const onlyTarget = target.filter((t) => !inSource.has(t.name)).map((t) => t.name);
  if (onlySource.length) return `tables only the source has: ${onlySource.join(', ')}`;
  if (onlyTarget.length) return `tables only the target has: ${onlyTarget.join(', ')}`;
  for (const t of target) {
    const s = new Set(inSource.get(t.name)!.columns.map((c) => c.name));
    const tc = new Set(t.columns.map((c) => c.name));
    const missing = [...tc].filter((c) => !s.has(c));
    const extra = [...s].filter((c) => !tc.has(c));
    if (missing.length || extra.length)
      return `table ${t.name} has other columns in the source (${[...extra.map((c) => `+${c}`), ...missing.map((c) => `-${c}`)].join(', ')})`;
  }
  return null;
}

/**
 * Opens the target and checks it can be reached (a MySQL database must exist); a SQLite file is
 * created by the copy, its folder must exist.
 */
async function openTarget(url: string): Promise<Knex> {
  const file = sqliteFile(url);
  if (file !== null && !fs.existsSync(path.dirname(path.resolve(file))))
    throw new Refused(`the folder ${path.dirname(path.resolve(file))} does not exist`);
  // knex's own warning about a failed connection (with its stack) would repeat the message below.
  const quiet = () => {};
  const db = knex({ ...knexConfig(url), log: { warn: quiet, error: quiet, debug: quiet, deprecate: quiet } });
  try {
    await db.raw('SELECT 1');
  } catch (err) {
    await db.destroy();
    const e = err as { code?: string; message?: string };
    const hint =
      e.code === 'ER_BAD_DB_ERROR'
        ? ' (create it first: CREATE DATABASE <name> CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci)'
        : '';
    throw new ToolError(`cannot reach the target database ${describeUrl(url)}: ${e.message ?? String(err)}${hint}`);
  }
  return db;
}

/** The source through ONE connection: every statement of the snapshot runs on it. */
function sourceDatabase(url: string): Knex {
  if (sqliteFile(url) !== null) return openDatabase(url); // always one connection
  const u = new URL(url.replace(/^mariadb:/, 'mysql:'));
  u.searchParams.set('pool', '1');
  return openDatabase(u.toString());
}

/** Copies the database of `sourceUrl` into the database of `targetUrl` (see the module comment). */
export async function copyDatabase(
  sourceUrl: string,
  targetUrl: string,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const say = options.progress ?? (() => {});
  const size = options.batchRows ?? BATCH_ROWS;
  const sourceFile = sqliteFile(sourceUrl);
  if (sourceFile !== null && !fs.existsSync(sourceFile))
    throw new ToolError(`the source database file ${path.resolve(sourceFile)} does not exist`);
  const source = sourceDatabase(sourceUrl);
  let target: Knex | null = null;
  try {
    const status = await migrationStatus(source);
    if (status.applied.length === 0)
      throw new Refused('the source database has no schema yet: there is nothing to copy');
    if (status.unknown.length)
      throw new Refused(
        `the source database belongs to a newer release (migrations ${status.unknown.join(', ')}): copy it with that release`,
      );
    if (status.pending.length)
      throw new Refused(
        `the source database is not at this release's schema (${status.pending.length} migration(s) pending): run \`portico migrate\` first`,
      );

    target = await openTarget(targetUrl);
    if (await sameDatabase(source, target, sourceUrl, targetUrl))
      throw new Refused('the target is the source database itself (DATABASE_URL): name another database');
    const targetStatus = await migrationStatus(target);
    if (targetStatus.unknown.length)
      throw new Refused(
        `the target database belongs to a newer release (migrations ${targetStatus.unknown.join(', ')})`,
      );
    const present = await dataIn(target);
    if (present.length && !options.force)
      throw new Refused(
        `the target database already holds data: ${present.slice(0, 5).join(', ')}${present.length > 5 ? ', …' : ''}; pass --force to replace it`,
      );

    const applied = await migrateLatest(target);
    if (applied.length) say(`Target schema: applied ${applied.length} migration(s) (${applied.at(-1)}).`);
    const targetApplied = (await migrationStatus(target)).applied;
    if ([...targetApplied].sort().join() !== [...status.applied].sort().join())
      throw new ToolError('the target lists other migrations than the source after migrating it');

    const tables = await tablesOf(target);
    const difference = schemaDifference(await tablesOf(source), tables);
    if (difference) throw new ToolError(`the two schemas differ: ${difference}`);

    const copied = await withSourceSnapshot(source, async (snapshot) => {
      const expected = new Map<string, number>();
      for (const t of tables) expected.set(t.name, await countOf(snapshot, t.name));
      const next = await nextIds(snapshot, tables);
      const done = await withTargetWrites(target!, async (trx) => {
        const toSqlite = isSqlite(target!);
        const result: TableCopied[] = [];
        for (const t of tables) await trx(t.name).delete();
        for (const t of tables) {
          let rows = 0;
          // Bound variables per INSERT stay under SQLite's limit (32,766) and MySQL's (65,535).
          const perInsert = Math.max(1, Math.floor(8000 / t.columns.length));
          for await (const batch of batches(snapshot, t, size)) {
            const converted = batch.map((row) => {
              const out: Record<string, unknown> = {};
              for (const c of t.columns) out[c.name] = convert(row[c.name], t.name, c, toSqlite);
              return out;
            });
            for (let i = 0; i < converted.length; i += perInsert)
              await trx(t.name)
                .insert(converted.slice(i, i + perInsert))
                .catch((err: { sqlMessage?: string; message?: string }) => {
                  // The target's own words (a value SQLite took that MySQL refuses, e.g. too long), not the SQL.
                  throw new ToolError(
                    `the target refused rows of ${t.name} (after ${rows} copied): ${err.sqlMessage ?? err.message}; nothing was written`,
                  );
                });
            rows += batch.length;
            if (rows % (size * 10) === 0) say(`  ${t.name}: ${rows} rows …`);
          }
          say(`  ${t.name}: ${rows} row(s)`);
          result.push({ table: t.name, rows });
        }
        if (toSqlite) {
          for (const [name, n] of next) {
            await trx('sqlite_sequence').where({ name }).delete();
            await trx('sqlite_sequence').insert({ name, seq: BigInt(n - 1) }); // an INTEGER, not a REAL
          }
        }
        return result;
      });
      return { done, expected, next };
    });

    if (!isSqlite(target)) {
      // After the commit: ALTER TABLE is DDL (it would commit an open transaction by itself).
      for (const [name, n] of copied.next) await target.raw(`ALTER TABLE ?? AUTO_INCREMENT = ${Number(n)}`, [name]);
    } else {
      const broken = (await target.raw('PRAGMA foreign_key_check')) as { table: string }[];
      if (broken.length)
        throw new ToolError(
          `the copy breaks foreign keys in ${[...new Set(broken.map((b) => b.table))].join(', ')}: do not use the target`,
        );
    }

    const mismatches: string[] = [];
    for (const t of tables) {
      const want = copied.expected.get(t.name)!;
      const got = await countOf(target, t.name);
      if (want !== got) mismatches.push(`${t.name}: ${want} in the source, ${got} in the target`);
    }
    if (mismatches.length)
      throw new ToolError(`the row counts differ after the copy (${mismatches.join('; ')}): do not use the target`);

    return {
      source: describeUrl(sourceUrl),
      target: describeUrl(targetUrl),
      tables: copied.done,
      rows: copied.done.reduce((sum, t) => sum + t.rows, 0),
      schemaVersion: status.applied.at(-1)!,
    };
  } finally {
    await target?.destroy();
    await source.destroy();
  }
}

/**
 * Runs `work` on one read-only snapshot of the source. SQLite: its one connection, `query_only`, a
 * deferred transaction (a read transaction: writers of other processes go on in the WAL, unseen).
 * MySQL/MariaDB: a REPEATABLE READ, READ ONLY transaction (one snapshot from its first read).
 */
async function withSourceSnapshot<T>(source: Knex, work: (db: Knex) => Promise<T>): Promise<T> {
  if (!isSqlite(source)) {
    // The source's pool holds one connection (sourceDatabase): the session's level applies to the
    // transaction that follows (knex's own `isolationLevel` + `readOnly` writes SQL MariaDB refuses).
    await source.raw('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    return source.transaction((trx) => work(trx), { readOnly: true });
  }
  // The pool holds one connection: these statements and the work's run on it, in this order.
  await source.raw('PRAGMA query_only = ON');
  await source.raw('BEGIN DEFERRED');
  try {
    return await work(source);
  } finally {
    await source.raw('COMMIT');
    await source.raw('PRAGMA query_only = OFF');
  }
}

/**
 * Runs `work` in one transaction of one target connection with foreign-key checks off for it.
 * SQLite: the pragma must be set outside a transaction (it is ignored inside one).
 */
async function withTargetWrites<T>(target: Knex, work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  if (isSqlite(target)) {
    await target.raw('PRAGMA foreign_keys = OFF');
    try {
      return await target.transaction(work);
    } finally {
      await target.raw('PRAGMA foreign_keys = ON');
    }
  }
  return target.transaction(async (trx) => {
    await trx.raw('SET FOREIGN_KEY_CHECKS = 0');
    try {
      return await work(trx);
    } finally {
      // The session goes back to the pool: checks on again whatever happened.
      await trx.raw('SET FOREIGN_KEY_CHECKS = 1').catch(() => {});
    }
  });
}
