import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knex, { type Knex } from 'knex';
import { knexConfig } from '../../db/knexfile.ts';
import { migrateLatest, openDatabase } from '../../db/index.ts';

export interface TestDatabase {
  url: string;
  db: Knex;
  drop(): Promise<void>;
}

/** True when the suite runs against MySQL/MariaDB (DATABASE_URL=mysql://…). */
export const usingMysql = /^(mysql|mariadb):/.test(process.env.DATABASE_URL ?? '');

/**
 * A fresh, empty database of its own for one test file: a temporary SQLite file, or a new database
 * on the MySQL server named by DATABASE_URL (or by `options.server`, a mysql:// URL: the Galera tests
 * create theirs on one node of the cluster). Nothing is shared between files.
 */
export async function createTestDatabase(options: { migrate?: boolean; server?: string } = {}): Promise<TestDatabase> {
  const suffix = `${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  let url: string;
  let cleanup: () => Promise<void>;
  if (usingMysql || options.server) {
    const server = new URL((options.server ?? process.env.DATABASE_URL!).replace(/^mariadb:/, 'mysql:'));
    // Named after DATABASE_URL's database when it names one, so that test databases stay in its namespace.
    const name = `${server.pathname.replace(/^\//, '') || 'portico_t'}_${suffix}`.slice(0, 64);
    server.pathname = '/';
    const admin = knex({ ...knexConfig(server.toString()), pool: { min: 0, max: 1 } });
    await admin.raw(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    await admin.destroy();
    server.pathname = `/${name}`;
    url = server.toString();
    cleanup = async () => {
      const dropper = knex({ ...knexConfig(url), pool: { min: 0, max: 1 } });
      await dropper.raw(`DROP DATABASE IF EXISTS \`${name}\``);
      await dropper.destroy();
    };
  } else {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-test-'));
    url = `sqlite:${path.join(dir, 'test.sqlite')}`;
    cleanup = async () => fs.rmSync(dir, { recursive: true, force: true });
  }
  const db = openDatabase(url);
  if (options.migrate !== false) await migrateLatest(db);
  return {
    url,
    db,
    async drop() {
      await db.destroy();
      await cleanup();
    },
  };
}
