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
/**
 * SQLite: a page cache that holds what a transaction changes (in KiB, as `PRAGMA cache_size` takes a
 * negative size), and transactions of a million rows. Each commit writes every page it changed to the
 * WAL; an index filled in random order (audit events by object id, devices by hardware id) has nearly
 * all of its pages changed by any 100,000 rows, so small transactions wrote the whole index again
 * and again (64 GB written for 6,000,000 audit events).
 */
const SQLITE_BULK_CACHE_KIB = -3_145_728;
const SQLITE_ROWS_PER_TRANSACTION = 1_000_000;
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

/** A column value as the generator hands it over: dates as Date, booleans as booleans, like knex. */
type Value = string | number | boolean | Date | null;

/**
 * Inserts `count` rows into `table`, `rowOf(i)` giving the values of row i in the order of `columns`:
 * multi-row statements in transactions of ROWS_PER_TRANSACTION rows. Shared by every generator here.
 */
export async function bulkInsert(
  db: Knex,
  table: string,
  columns: string[],
  count: number,
  rowOf: (i: number) => Value[],
  mysqlRowsPerStatement = MYSQL_ROWS_PER_STATEMENT,
): Promise<void> {
  if (isSqlite(db)) await insertSqlite(db, table, columns, count, rowOf);
  else await insertMysql(db, table, columns, count, rowOf, mysqlRowsPerStatement);
}

// knex stores dates as epoch milliseconds and booleans as 0/1 on SQLite: the same here.
const sqliteValue = (v: Value) => (typeof v === 'boolean' ? (v ? 1 : 0) : v instanceof Date ? v.getTime() : v);

async function insertSqlite(db: Knex, table: string, columns: string[], count: number, rowOf: (i: number) => Value[]) {
  const rowSql = `(${columns.map(() => '?').join(',')})`;
  const sqlFor = (rows: number) =>
    `INSERT INTO ${table} (${columns.join(',')}) VALUES ${Array.from({ length: rows }, () => rowSql).join(',')}`;
  // The pool's own connection (SQLite has exactly one): the server-side pragmas apply, and knex's
  // per-query overhead is paid once per statement preparation, not per row.
  const conn = await (db.client as { acquireConnection(): Promise<SqliteConnection> }).acquireConnection();
  // A page cache for the indexes being filled (the default is 2 MB), and no waiting for the disk at checkpoints: a crash would only lose a benchmark's scratch file.
  const cacheSize = conn.pragma('cache_size', { simple: true });
  const synchronous = conn.pragma('synchronous', { simple: true });
  conn.pragma(`cache_size = ${SQLITE_BULK_CACHE_KIB}`);
  conn.pragma('synchronous = OFF');
  try {
    const full = conn.prepare(sqlFor(SQLITE_ROWS_PER_STATEMENT));
    const insertRange = conn.transaction((from: number, to: number) => {
      for (let start = from; start < to; start += SQLITE_ROWS_PER_STATEMENT) {
        const rows = Math.min(SQLITE_ROWS_PER_STATEMENT, to - start);
        const params: unknown[] = [];
        for (let i = start; i < start + rows; i++) for (const v of rowOf(i)) params.push(sqliteValue(v));
        (rows === SQLITE_ROWS_PER_STATEMENT ? full : conn.prepare(sqlFor(rows))).run(...params);
      }
    });
    for (let from = 0; from < count; from += SQLITE_ROWS_PER_TRANSACTION)
      insertRange(from, Math.min(count, from + SQLITE_ROWS_PER_TRANSACTION));
  } finally {
    conn.pragma(`cache_size = ${cacheSize}`);
    conn.pragma(`synchronous = ${synchronous}`);
    await (db.client as { releaseConnection(c: unknown): Promise<void> }).releaseConnection(conn);
  }
}

interface SqliteConnection {
  pragma(sql: string, options?: { simple: boolean }): unknown;
  prepare(sql: string): { run(...params: unknown[]): unknown };
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
}

const mysqlLiteral = (v: Value): string => {
  if (v === null) return 'NULL';
  if (typeof v === 'boolean') return v ? '1' : '0';
  if (typeof v === 'number') return String(v);
  if (v instanceof Date) return `'${v.toISOString().slice(0, 23).replace('T', ' ')}'`;
  return `'${v.replace(/[\\']/g, (c) => `\\${c}`)}'`;
};

async function insertMysql(
  db: Knex,
  table: string,
  columns: string[],
  count: number,
  rowOf: (i: number) => Value[],
  rowsPerStatement: number,
) {
  const head = `INSERT INTO \`${table}\` (${columns.map((c) => `\`${c}\``).join(',')}) VALUES `;
  for (let from = 0; from < count; from += ROWS_PER_TRANSACTION) {
    const to = Math.min(count, from + ROWS_PER_TRANSACTION);
    await db.transaction(async (trx) => {
      for (let start = from; start < to; start += rowsPerStatement) {
        const parts: string[] = [];
        for (let i = start; i < Math.min(to, start + rowsPerStatement); i++)
          parts.push(`(${rowOf(i).map(mysqlLiteral).join(',')})`);
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
  const { fixed, columns } = layout(b);
  const fixedValues = Object.values(fixed).map((v) => (v === undefined ? null : v)) as Value[];
  await bulkInsert(db, 'licenses', columns, b.count, (i) => {
    const v = varying(b, i);
    return [...fixedValues, keyOf(i), v.enabled, v.timesActivated, b.now, b.now, b.now];
  });
  await countLicensesOf(db, b.orderId, b.count); // as the app's own inserts do
  return { count: b.count, seconds: Number(process.hrtime.bigint() - started) / 1e9, sample };
}

/** A small fast PRNG (mulberry32): the generators below draw millions of values, reproducibly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HEX = '0123456789abcdef';
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const randomText = (random: () => number, alphabet: string, length: number) => {
  let s = '';
  for (let j = 0; j < length; j++) s += alphabet[Math.floor(random() * alphabet.length)];
  return s;
};

const DAY_MS = 86_400_000;

/**
 * `n` random strings of `length` symbols, drawn once: the audit generator takes its hashes, hardware
 * ids and request ids from such pools (none of them is indexed; drawing 100 symbols for each of
 * 10,000,000 rows would cost more than the inserts).
 */
const randomPool = (random: () => number, alphabet: string, length: number, n = 4096) =>
  Array.from({ length: n }, () => randomText(random, alphabet, length));

/** The licenses of one order: generated in one go, their ids are consecutive (checked). */
export interface LicenseRange {
  orderId: number;
  firstId: number;
  count: number;
}

export async function licenseRange(db: Knex, orderId: number): Promise<LicenseRange> {
  const r = await db('licenses')
    .where({ order_id: orderId })
    .min({ lo: 'id' })
    .max({ hi: 'id' })
    .count({ n: '*' })
    .first();
  const [lo, hi, n] = [Number(r?.lo), Number(r?.hi), Number(r?.n)];
  if (!n || hi - lo + 1 !== n) throw new Error(`the licenses of order ${orderId} are not consecutive ids`);
  return { orderId, firstId: lo, count: n };
}

export interface DeviceBatch {
  licenses: LicenseRange;
  count: number;
  now: Date;
  /** Activation dates spread over this many days before `now`. */
  days: number;
  seed: number;
}

const DEVICE_COLUMNS = [
  'license_id',
  'hardware_id',
  'active_hardware_id',
  'hostname',
  'os',
  'app_version',
  'channel',
  'device_public_key',
  'request_hash',
  'license_counter',
  'activated_at',
  'last_seen_at',
  'deactivated_at',
  'deactivation_reason',
  'blacklisted',
];
const OPERATING_SYSTEMS = ['Windows 11 Pro 23H2', 'Windows 10 Enterprise 22H2', 'macOS 14.5', 'Ubuntu 22.04.4 LTS'];

/**
 * Devices as activations leave them, round robin over the order's licenses (so each license has
 * count ÷ licenses of them): random hardware ids, 60 % offline, 35 % online, 5 %
 * air-gapped, activation dates spread over `days`, one in ten deactivated (its seat freed).
 */
export async function generateDevices(db: Knex, b: DeviceBatch): Promise<{ count: number; seconds: number }> {
  const started = process.hrtime.bigint();
  const random = prng(b.seed);
  const now = b.now.getTime();
  // Hardware ids are indexed: each its own. The rest (not indexed) from pools, as the audit events do.
  const keys = randomPool(random, B64URL, 43);
  const hashes = randomPool(random, HEX, 64);
  const hosts = randomPool(random, HEX, 6).map((h) => `WS-${h.toUpperCase()}`);
  const any = (pool: string[]) => pool[Math.floor(random() * pool.length)]!;
  await bulkInsert(db, 'devices', DEVICE_COLUMNS, b.count, (i) => {
    const hardwareId = `HW-${randomText(random, HEX, 24)}`;
    const c = random();
    const channel = c < 0.6 ? 'offline' : c < 0.95 ? 'online' : 'airgap';
    const activated = now - random() * b.days * DAY_MS;
    const deactivated = i % 10 === 0 ? activated + random() * (now - activated) : null;
    return [
      b.licenses.firstId + (i % b.licenses.count),
      hardwareId,
      deactivated ? null : hardwareId,
      any(hosts),
      OPERATING_SYSTEMS[i % OPERATING_SYSTEMS.length]!,
      `3.${i % 4}.${i % 11}`,
      channel,
      any(keys),
      channel === 'online' ? null : any(hashes),
      channel === 'online' ? 0 : i % 5,
      new Date(activated),
      channel === 'online' ? new Date(Math.min(now, activated + random() * 30 * DAY_MS)) : null,
      deactivated ? new Date(deactivated) : null,
      deactivated ? (i % 20 === 0 ? 'reset' : 'device') : null,
      false,
    ];
  });
  return { count: b.count, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

export interface AuditBatch {
  /** The orders the events are about, each with its licenses; picked in proportion to their size. */
  orders: LicenseRange[];
  count: number;
  now: Date;
  /** Events spread evenly over this many days before `now`, oldest first (ids grow with time, as in the app). */
  days: number;
  seed: number;
}

/** Managers and admins acting in the console and portal: 200 managers of 40 customers, 5 vendor admins. */
export const benchManagerLabel = (k: number) => `manager${k}@customer${k % 40}.example`;
const MANAGERS = 200;
const ADMINS = 5;

const AUDIT_COLUMNS = [
  'occurred_at',
  'actor_account_id',
  'actor_label',
  'action',
  'object_type',
  'object_id',
  'order_id',
  'before_state',
  'after_state',
  'ip',
  'request_id',
];

type Event = [
  accountId: number | null,
  label: string | null,
  action: string,
  objectType: string | null,
  objectId: string | null,
  orderId: number | null,
  before: string | null,
  after: string | null,
];

/**
 * The mix of a lived-in installation, by weight: mostly anonymous activations, refresh files and
 * refusals from the portals and the API; then managers' work on licenses, devices and orders; a
 * few admin changes and failed logins. JSON states have the shapes the services write.
 */
function auditMix(random: () => number, pickOrder: () => LicenseRange): [number, (i: number) => Event][] {
  const licenseOf = (o: LicenseRange) => o.firstId + Math.floor(random() * o.count);
  const manager = () => Math.floor(random() * MANAGERS);
  const hardwareIds = randomPool(random, HEX, 24);
  const hashes = randomPool(random, HEX, 64);
  const any = (pool: string[]) => pool[Math.floor(random() * pool.length)]!;
  const hw = () => `HW-${any(hardwareIds)}`;
  const managerEvent = (action: string, objectType: string, after: (o: LicenseRange, id: number) => string): Event => {
    const m = manager();
    const o = pickOrder();
    const id = objectType === 'order' ? o.orderId : licenseOf(o);
    return [1000 + m, benchManagerLabel(m), action, objectType, String(id), o.orderId, null, after(o, id)];
  };
  return [
    [
      40,
      (i) => {
        const o = pickOrder();
        const channel = i % 3 === 0 ? 'online' : 'offline';
        return [
          null,
          null,
          'activation.granted',
          'license',
          String(licenseOf(o)),
          o.orderId,
          `{"timesActivated":${i % 4},"transferCount":0}`,
          `{"deviceId":${i},"channel":"${channel}","hardwareId":"${hw()}","transfer":false,"requestHash":${channel === 'online' ? 'null' : `"${any(hashes)}"`}}`,
        ];
      },
    ],
    [
      15,
      (i) => {
        const o = pickOrder();
        return [
          null,
          null,
          'device.refresh_file_issued',
          'device',
          String(i),
          o.orderId,
          null,
          `{"counter":${(i % 12) + 1},"leaseEndsAt":null}`,
        ];
      },
    ],
    [
      8,
      () => {
        const o = pickOrder();
        return [
          null,
          null,
          'activation.refused',
          'license',
          String(licenseOf(o)),
          o.orderId,
          null,
          `{"reason":"no_free_seats","hardwareId":"${hw()}","channel":"offline"}`,
        ];
      },
    ],
    [
      4,
      () => [
        null,
        null,
        'check.refused',
        null,
        null,
        null,
        null,
        `{"reason":"device_deactivated","hardwareId":"${hw()}"}`,
      ],
    ],
    [
      6,
      () =>
        managerEvent(
          'license.updated',
          'license',
          () => '{"note":"Workstation pool B","expiresAt":"2027-12-31T00:00:00.000Z"}',
        ),
    ],
    [3, () => managerEvent('license.disabled', 'license', () => '{"enabled":false}')],
    [4, () => managerEvent('device.reset', 'license', (_o, id) => `{"deviceId":${id},"reason":"reset"}`)],
    [
      4,
      () =>
        managerEvent(
          'license_user.assigned',
          'license',
          () => `{"email":"user${Math.floor(random() * 1e6)}@customer.example"}`,
        ),
    ],
    [3, () => managerEvent('device.released_by_user', 'license', (_o, id) => `{"deviceId":${id}}`)],
    [
      2,
      () =>
        managerEvent('licenses.issued', 'order', () => '{"count":50,"productCode":"bench-cad","policy":"Standard"}'),
    ],
    [1, () => managerEvent('order.updated', 'order', () => '{"notes":"renewed for 2027"}')],
    [
      1,
      () =>
        managerEvent('manager.invited', 'order', () => `{"email":"new${Math.floor(random() * 1e6)}@customer.example"}`),
    ],
    [
      3,
      () => [
        null,
        `user${Math.floor(random() * 5000)}@customer${Math.floor(random() * 40)}.example`,
        'auth.login_failed',
        null,
        null,
        null,
        null,
        '{"reason":"bad_password"}',
      ],
    ],
    [
      0.5,
      () => {
        const a = Math.floor(random() * ADMINS);
        return [
          a + 1,
          `admin${a}@vendor.example`,
          'product.updated',
          'product',
          String(1 + (a % 3)),
          null,
          '{"name":"Bench CAD"}',
          '{"name":"Bench CAD 2027"}',
        ];
      },
    ],
    [
      0.1,
      () => [
        1,
        'admin0@vendor.example',
        'settings.updated',
        'settings',
        'settings',
        null,
        '{"sessionHours":12}',
        '{"sessionHours":8}',
      ],
    ],
  ];
}

/** The item that `r` (0 ≤ r < the sum of the weights) falls on. */
function weighted<T>(items: T[], weightOf: (t: T) => number, r: number): T {
  let left = r;
  for (const t of items) {
    left -= weightOf(t);
    if (left < 0) return t;
  }
  return items[items.length - 1]!;
}

/**
 * Audit events in the mix above, dated evenly over `days` up to `now` (a little jitter), with ids
 * growing with time as the app writes them.
 */
export async function generateAuditEvents(db: Knex, b: AuditBatch): Promise<{ count: number; seconds: number }> {
  const started = process.hrtime.bigint();
  const random = prng(b.seed);
  const totalLicenses = b.orders.reduce((n, o) => n + o.count, 0);
  const pickOrder = () => weighted(b.orders, (o) => o.count, random() * totalLicenses);
  const mix = auditMix(random, pickOrder);
  const weight = mix.reduce((n, [w]) => n + w, 0);
  const requestIds = randomPool(random, HEX, 16, 65_536);
  const start = b.now.getTime() - b.days * DAY_MS;
  const step = (b.days * DAY_MS) / b.count;
  await bulkInsert(
    db,
    'audit_events',
    AUDIT_COLUMNS,
    b.count,
    (i) => {
      const e = weighted(mix, ([w]) => w, random() * weight)[1](i);
      const ip = e[0] === null && e[1] === null ? `10.${i & 255}.${(i >> 8) & 255}.${(i >> 16) & 255}` : '192.0.2.10';
      return [new Date(start + (i + random()) * step), ...e, ip, requestIds[i & 65_535]!];
    },
    1_000,
  );
  return { count: b.count, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}
