/**
 * The benchmark's database: created for the run and dropped after it (a temporary SQLite file, or a
 * scratch database on the MySQL/MariaDB server of DATABASE_URL), migrated, and filled with what the
 * measurements need.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knex, { type Knex } from 'knex';
import { isSqlite, knexConfig } from '../../db/knexfile.ts';
import { migrateLatest, openDatabase } from '../../db/index.ts';
import * as catalog from '../../app/models/catalog.ts';
import { createAccount } from '../helpers/app.ts';
import { generateLicenses } from './generate.ts';

export interface BenchDatabase {
  label: string;
  url: string;
  db: Knex;
  /** The database server's process when it runs on this machine (its CPU per request is reported). */
  serverPid?: number;
  drop(): Promise<void>;
}

/** A temporary SQLite file under `dir`. */
export async function sqliteDatabase(dir: string): Promise<BenchDatabase> {
  const url = `sqlite:${path.join(dir, 'bench.sqlite')}`;
  const db = openDatabase(url);
  await migrateLatest(db);
  const { v } = (await db.raw('select sqlite_version() as v'))[0];
  return { label: `SQLite ${v}`, url, db, drop: () => db.destroy() };
}

/**
 * A scratch database on the server of `serverUrl`. Its name comes from the URL and must contain
 * "bench" (it is dropped at the start and at the end of the run): a URL naming a real database
 * never loses it to a benchmark.
 */
export async function mysqlDatabase(serverUrl: string): Promise<BenchDatabase> {
  const url = new URL(serverUrl.replace(/^mariadb:/, 'mysql:'));
  const name = url.pathname.replace(/^\//, '');
  if (!/^\w*bench\w*$/.test(name))
    throw new Error(
      `DATABASE_URL must name a scratch database whose name contains "bench" (such as portico_bench), not "${name}": the benchmark drops it`,
    );
  const server = new URL(url);
  server.pathname = '/';
  const admin = knex({ ...knexConfig(server.toString()), pool: { min: 0, max: 1 } });
  await admin.raw(`DROP DATABASE IF EXISTS \`${name}\``);
  await admin.raw(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  const { v } = (await admin.raw('select version() as v'))[0][0];
  const db = openDatabase(url.toString());
  await migrateLatest(db);
  return {
    label: /mariadb/i.test(v) ? `MariaDB ${v.replace(/-.*/, '')}` : `MySQL ${v}`,
    url: url.toString(),
    db,
    serverPid: ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname) ? await serverPidOf(admin) : undefined,
    async drop() {
      await db.destroy();
      await admin.raw(`DROP DATABASE IF EXISTS \`${name}\``);
      await admin.destroy();
    },
  };
}

/** The process of a database server on this machine, from its own pid file (several may run). */
export async function serverPidOf(db: Knex): Promise<number | undefined> {
  try {
    const { f } = (await db.raw('select @@pid_file as f'))[0][0];
    const pid = Number(fs.readFileSync(String(f), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function scratchDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface Fixture {
  productCode: string;
  productId: number;
  policyId: number;
  customerId: number;
  /** The 10,000-license order the User Portal pages show. */
  order: number;
  orderKeys: string[];
  /** Licenses for the activation runs, one set per phase (each activation must be a real one). */
  pools: string[][];
  seatsPerLicense: number;
  manager: { email: string; password: string };
  admin: { email: string; password: string };
}

export const ORDER_LICENSES = 10_000;

/** Seeds the order of 10,000 licenses, the activation pools, a manager of the order and an admin. */
export async function seed(
  db: Knex,
  o: { activationsPerPhase: number; phases: number; seatsPerLicense: number },
): Promise<Fixture> {
  const now = new Date();
  const productCode = 'bench-cad';
  const productId = await catalog.insertProduct(
    db,
    { name: 'Bench CAD', code: productCode, authorizationMethod: 'key' },
    now,
  );
  const policyId = await catalog.insertPolicy(
    db,
    { productId, name: 'Standard', isDefault: true, entitlements: catalog.DEFAULT_ENTITLEMENTS },
    now,
  );
  const customerId = await catalog.insertCustomer(db, { kind: 'company', name: 'Bench Customer' }, now);
  const order = await catalog.insertOrder(db, { orderRef: 'BENCH-10000', customerId }, now);
  const orderKeys = (
    await generateLicenses(db, {
      orderId: order,
      productId,
      policyId,
      count: ORDER_LICENSES,
      now,
      disabledEvery: 50,
      activeEvery: 3,
      sampleKeys: 500,
    })
  ).sample;

  const poolOrder = await catalog.insertOrder(db, { orderRef: 'BENCH-ACTIVATIONS', customerId }, now);
  const perPool = Math.ceil(o.activationsPerPhase / o.seatsPerLicense);
  const pools: string[][] = [];
  for (let p = 0; p < o.phases; p++) {
    const g = await generateLicenses(db, {
      orderId: poolOrder,
      productId,
      policyId,
      count: perPool,
      now,
      entitlements: { allowOffline: true, maxActivations: o.seatsPerLicense },
      sampleKeys: perPool,
    });
    pools.push(g.sample);
  }

  const manager = await createAccount(db, { role: 'manager', email: 'manager@bench.example' });
  await catalog.assignManager(db, manager.id, order, now);
  const admin = await createAccount(db, { role: 'admin', email: 'admin@bench.example' });
  return {
    productCode,
    productId,
    policyId,
    customerId,
    order,
    orderKeys,
    pools,
    seatsPerLicense: o.seatsPerLicense,
    manager,
    admin,
  };
}

/**
 * After a bulk load, what an operator (or InnoDB's own background statistics, some time later)
 * does: fresh index statistics on MySQL/MariaDB. Without them the optimizer keeps the estimates of
 * the small table and may read an order's licenses through the product index (docs/performance.md).
 * Portico never runs ANALYZE on SQLite, so neither does the benchmark.
 */
export async function refreshStatistics(db: Knex): Promise<void> {
  if (!isSqlite(db)) await db.raw('ANALYZE TABLE licenses');
}

export async function countLicenses(db: Knex): Promise<number> {
  return Number((await db('licenses').count({ n: '*' }).first())?.n ?? 0);
}
