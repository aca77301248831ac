/**
 * A fast license generator for the benchmark: 1,000,000 licenses in seconds, not the minutes an
 * insert per row (or knex building one query per 200 rows) would take. On SQLite it runs one
 * prepared multi-row INSERT on the pool's own better-sqlite3 connection, in large transactions; on
 * MySQL/MariaDB it sends multi-row INSERTs of literal values in large transactions. The table keeps
 * every index and the unique key on license_key, so the database pays what it would pay in
 * production, and a duplicate key would stop the run instead of passing unnoticed.
 *
 * Keys have the shape and randomness of real ones (7 groups of 4 Crockford symbols, 140 random
 * bits): their spread over the unique index matters for lookups and inserts alike.
 */
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { isSqlite } from '../../db/knexfile.ts';
import { CROCKFORD } from '../../app/lib/license-keys.ts';
import {
  DEFAULT_ENTITLEMENTS,
  countLicensesOf,
  entitlementColumns,
  type Entitlements,
} from '../../app/models/catalog.ts';

export interface LicenseBatch {
  orderId: number;
  productId: number;
  policyId: number;
  count: number;
  entitlements?: Partial<Entitlements>;
  now: Date;
  /** Every n-th license is disabled and every m-th already active, like a lived-in order (as the old seed). */
  disabledEvery?: number;
  activeEvery?: number;
  /** How many keys to hand back, spread evenly over the batch (for lookups). */
  sampleKeys?: number;
}

export interface Generated {
  count: number;
  seconds: number;
  /** Evenly spread keys of the batch, in insertion order. */
  sample: string[];
}

const SQLITE_ROWS_PER_STATEMENT = 500;
const MYSQL_ROWS_PER_STATEMENT = 5_000;
const ROWS_PER_TRANSACTION = 100_000;
const KEY_SYMBOLS = 28;

/** `n` fresh license keys from one call to the random source. */
function randomKeys(n: number): string[] {
  const bytes = crypto.randomBytes(n * KEY_SYMBOLS);
  const keys = new Array<string>(n);
  for (let k = 0; k < n; k++) {
    let s = '';
    for (let j = 0; j < KEY_SYMBOLS; j++) {
      if (j && j % 4 === 0) s += '-';
      s += CROCKFORD[bytes[k * KEY_SYMBOLS + j]! & 31];
    }
    keys[k] = s;
  }
  return keys;
}

/** The column values every generated license shares, in the order of `columns`. */
function layout(b: LicenseBatch) {
  const e = entitlementColumns({ ...DEFAULT_ENTITLEMENTS, ...b.entitlements });
  const fixed: Record<string, unknown> = {
    order_id: b.orderId,
    product_id: b.productId,
    policy_id: b.policyId,
    ...e,
    transfer_count: 0,
  };
  const perRow = ['license_key', 'enabled', 'times_activated', 'start_date', 'created_at', 'updated_at'];
  return { fixed, columns: [...Object.keys(fixed), ...perRow] };
}

function varying(b: LicenseBatch, i: number) {
  const enabled = !(b.disabledEvery && i % b.disabledEvery === 0);
  const timesActivated = b.activeEvery && i % b.activeEvery === 0 ? 1 : 0;
  return { enabled, timesActivated };
}

async function generateSqlite(db: Knex, b: LicenseBatch, keyOf: (i: number) => string) {
  const { fixed, columns } = layout(b);
  // knex stores dates as epoch milliseconds and booleans as 0/1 on SQLite: the same here.
  const sqliteValue = (v: unknown) => (typeof v === 'boolean' ? (v ? 1 : 0) : v === undefined ? null : v);
  const fixedValues = Object.values(fixed).map(sqliteValue);
  const at = b.now.getTime();
  const rowSql = `(${columns.map(() => '?').join(',')})`;
  const sqlFor = (rows: number) =>
    `INSERT INTO licenses (${columns.join(',')}) VALUES ${Array.from({ length: rows }, () => rowSql).join(',')}`;
  // The pool's own connection (SQLite has exactly one): the server-side pragmas apply, and knex's
  // per-query overhead is paid once per statement preparation, not per row.
  const conn = await (db.client as { acquireConnection(): Promise<SqliteConnection> }).acquireConnection();
  try {
    const full = conn.prepare(sqlFor(SQLITE_ROWS_PER_STATEMENT));
    const insertRange = conn.transaction((from: number, to: number) => {
      for (let start = from; start < to; start += SQLITE_ROWS_PER_STATEMENT) {
        const rows = Math.min(SQLITE_ROWS_PER_STATEMENT, to - start);
        const params: unknown[] = [];
        for (let i = start; i < start + rows; i++) {
          const v = varying(b, i);
          params.push(...fixedValues, keyOf(i), v.enabled ? 1 : 0, v.timesActivated, at, at, at);
        }
        (rows === SQLITE_ROWS_PER_STATEMENT ? full : conn.prepare(sqlFor(rows))).run(...params);
      }
    });
    for (let from = 0; from < b.count; from += ROWS_PER_TRANSACTION)
      insertRange(from, Math.min(b.count, from + ROWS_PER_TRANSACTION));
  } finally {
    await (db.client as { releaseConnection(c: unknown): Promise<void> }).releaseConnection(conn);
  }
}

interface SqliteConnection {
  prepare(sql: string): { run(...params: unknown[]): unknown };
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
}

async function generateMysql(db: Knex, b: LicenseBatch, keyOf: (i: number) => string) {
  const { fixed, columns } = layout(b);
  const literal = (v: unknown): string => {
    if (v === null || v === undefined) return 'NULL';
    if (typeof v === 'boolean') return v ? '1' : '0';
    if (typeof v === 'number') return String(v);
    if (v instanceof Date) return `'${v.toISOString().slice(0, 23).replace('T', ' ')}'`;
    return `'${String(v).replace(/[\\']/g, (c) => `\\${c}`)}'`;
  };
  const fixedSql = Object.values(fixed).map(literal).join(',');
  const at = literal(b.now);
  const head = `INSERT INTO licenses (${columns.map((c) => `\`${c}\``).join(',')}) VALUES `;
  for (let from = 0; from < b.count; from += ROWS_PER_TRANSACTION) {
    const to = Math.min(b.count, from + ROWS_PER_TRANSACTION);
    await db.transaction(async (trx) => {
      for (let start = from; start < to; start += MYSQL_ROWS_PER_STATEMENT) {
        const parts: string[] = [];
        for (let i = start; i < Math.min(to, start + MYSQL_ROWS_PER_STATEMENT); i++) {
          const v = varying(b, i);
          parts.push(`(${fixedSql},'${keyOf(i)}',${v.enabled ? 1 : 0},${v.timesActivated},${at},${at},${at})`);
        }
        await trx.raw(head + parts.join(','));
      }
    });
  }
}

/** Inserts `count` licenses into one order; returns the time taken and a sample of their keys. */
export async function generateLicenses(db: Knex, b: LicenseBatch): Promise<Generated> {
  const started = process.hrtime.bigint();
  // Keys are drawn in blocks so that the random source is called once per block, not per key.
  const block = 10_000;
  let blockStart = -block;
  let keys: string[] = [];
  const sampleEvery = b.sampleKeys ? Math.max(1, Math.floor(b.count / b.sampleKeys)) : 0;
  const sample: string[] = [];
  const keyOf = (i: number) => {
    if (i >= blockStart + block) {
      blockStart = i - (i % block);
      keys = randomKeys(block);
    }
    const key = keys[i - blockStart]!;
    if (sampleEvery && i % sampleEvery === 0 && sample.length < b.sampleKeys!) sample.push(key);
    return key;
  };
  if (isSqlite(db)) await generateSqlite(db, b, keyOf);
  else await generateMysql(db, b, keyOf);
  await countLicensesOf(db, b.orderId, b.count); // as the app's own inserts do
  return { count: b.count, seconds: Number(process.hrtime.bigint() - started) / 1e9, sample };
}
