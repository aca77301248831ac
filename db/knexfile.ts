import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';

interface SqliteConnection {
  pragma(s: string): unknown;
  prepare(sql: string): unknown;
}

const STATEMENT_CACHE = 500;

/**
 * knex prepares every statement anew on SQLite (parse + plan each time: a few per cent of a request).
 * (And its transactions begin IMMEDIATE, see below.)
 * The same SQL text always gets the same prepared statement back here; better-sqlite3 runs each
 * statement to completion synchronously, so one is never in use twice, and SQLite re-prepares a
 * statement by itself after a schema change. Bounded: the cache starts over when full (knex's SQL
 * text has placeholders, so the distinct texts are few: the queries in the code).
 */
function rememberStatements(conn: SqliteConnection) {
  const prepare = conn.prepare.bind(conn);
  const statements = new Map<string, unknown>();
  conn.prepare = (sql: string) => {
    let statement = statements.get(sql);
    if (statement === undefined) {
      // knex opens every transaction with a deferred BEGIN. A deferred transaction that has read and
      // then wants to write while another process holds the write lock gets SQLITE_BUSY at once,
      // without waiting busy_timeout ("database is locked"). BEGIN IMMEDIATE takes the write lock
      // first, waiting for it: transactions of several processes on one file queue instead of failing.
      statement = prepare(sql === 'BEGIN;' ? 'BEGIN IMMEDIATE;' : sql);
      if (statements.size >= STATEMENT_CACHE) statements.clear();
      statements.set(sql, statement);
    }
    return statement;
  };
}

/** The file of a sqlite: DATABASE_URL (`sqlite:data/x.sqlite`, `sqlite:///abs/x.sqlite`), or null for a MySQL one. */
export function sqliteFile(databaseUrl: string): string | null {
  return databaseUrl.startsWith('sqlite:') ? databaseUrl.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '') : null;
}

/** Builds the knex configuration for a DATABASE_URL (sqlite:<file> or mysql://…). */
export function knexConfig(databaseUrl: string): Knex.Config {
  const filename = sqliteFile(databaseUrl);
  if (filename !== null) {
    if (filename !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(filename)), { recursive: true });
    return {
      client: 'better-sqlite3',
      connection: { filename },
      useNullAsDefault: true,
      pool: {
        min: 1,
        max: 1,
        afterCreate(conn: SqliteConnection, done: (err: Error | null, conn: unknown) => void) {
          // WAL lets readers in other processes work while one writes; busy_timeout makes a
          // second process wait for the write lock instead of failing at once.
          conn.pragma('journal_mode = WAL');
          conn.pragma('synchronous = NORMAL');
          conn.pragma('foreign_keys = ON');
          conn.pragma('busy_timeout = 10000');
          rememberStatements(conn);
          done(null, conn);
        },
      },
    };
  }
  const url = new URL(databaseUrl.replace(/^mariadb:/, 'mysql:'));
  return {
    client: 'mysql2',
    connection: {
      host: url.hostname,
      port: Number(url.port || 3306),
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
      database: url.pathname.replace(/^\//, ''),
      charset: 'utf8mb4',
      timezone: 'Z',
      supportBigNumbers: true,
      bigNumberStrings: false,
      dateStrings: false,
    },
    pool: {
      min: 0,
      max: Number(url.searchParams.get('pool') ?? 10),
      // READ COMMITTED: a locking read takes no gap locks, so activations of different licenses never
      // deadlock on the gap between their devices (they did under REPEATABLE READ, several a second
      // at 16 clients), and a plain read in a transaction sees the latest committed rows. What must
      // not change under a transaction is guarded by the license row lock (models/licenses.ts
      // lockLicense), guarded updates and unique keys, not by snapshots. See docs/deployment.md.
      afterCreate(
        conn: { query(sql: string, cb: (err: Error | null) => void): void },
        done: (err: Error | null, conn: unknown) => void,
      ) {
        conn.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', (err) => done(err, conn));
      },
    },
  };
}

export function isSqlite(db: Knex): boolean {
  return db.client.config.client === 'better-sqlite3';
}
