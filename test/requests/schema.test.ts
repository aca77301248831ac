import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createTestDatabase, usingMysql, type TestDatabase } from '../helpers/db.ts';
import { projectRoot } from '../helpers/process.ts';

/**
 * What a MariaDB Galera cluster needs of the schema and the statements (docs/deployment.md, "MariaDB
 * Galera cluster"): it replicates rows by primary key (a table without one is replicated badly, and
 * its DELETEs not at all), and locks are local to a node — only row writes conflict across nodes.
 */
describe('schema: what a Galera cluster needs', () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  it('every table, knex’s own included, has a primary key', async () => {
    const { db } = database;
    let tables: { name: string; hasPrimaryKey: boolean }[];
    if (usingMysql) {
      const [rows] = await db.raw(
        `SELECT t.table_name AS name,
                EXISTS (SELECT 1 FROM information_schema.table_constraints c
                         WHERE c.table_schema = t.table_schema AND c.table_name = t.table_name
                           AND c.constraint_type = 'PRIMARY KEY') AS pk
           FROM information_schema.tables t
          WHERE t.table_schema = DATABASE() AND t.table_type = 'BASE TABLE'`,
      );
      tables = (rows as { name: string; pk: number }[]).map((r) => ({
        name: r.name,
        hasPrimaryKey: Number(r.pk) === 1,
      }));
      const [engines] = await db.raw(
        "SELECT table_name AS name, engine FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' AND engine <> 'InnoDB'",
      );
      assert.deepEqual(engines, [], 'Galera replicates InnoDB tables only');
    } else {
      const names = (
        await db('sqlite_master').where({ type: 'table' }).whereNot('name', 'like', 'sqlite_%').select('name')
      ).map((r: { name: string }) => r.name);
      tables = await Promise.all(
        names.map(async (name: string) => ({
          name,
          hasPrimaryKey: ((await db.raw(`PRAGMA table_info("${name}")`)) as { pk: number }[]).some((c) => c.pk > 0),
        })),
      );
    }
    assert.ok(tables.length > 30, `${tables.length} tables`);
    assert.ok(tables.some((t) => t.name === 'knex_migrations_lock'));
    assert.deepEqual(
      tables.filter((t) => !t.hasPrimaryKey).map((t) => t.name),
      [],
      'tables without a primary key',
    );
  });

  it('no statement relies on a lock that Galera does not take cluster-wide (LOCK TABLES, GET_LOCK, named locks)', () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(p);
        else if (p.endsWith('.ts')) files.push(p);
      }
    };
    for (const dir of ['app', 'db']) walk(path.join(projectRoot, dir));
    walk(path.join(projectRoot, 'config'));
    files.push(path.join(projectRoot, 'server.ts'));
    const offenders = files.filter((f) =>
      /\bLOCK\s+TABLES?\b|\bGET_LOCK\s*\(|\bRELEASE_LOCK\s*\(|\bIS_FREE_LOCK\s*\(/i.test(fs.readFileSync(f, 'utf8')),
    );
    assert.deepEqual(
      offenders.map((f) => path.relative(projectRoot, f)),
      [],
    );
  });
});
