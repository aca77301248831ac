import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { KeyObject } from 'node:crypto';
import knex, { type Knex } from 'knex';
import request from 'supertest';
import { buildTestApp, countRows, csrfFrom, type TestApp } from '../helpers/app.ts';
import { createTestDatabase, usingMysql, type TestDatabase } from '../helpers/db.ts';
import { makeDevice } from '../helpers/device.ts';
import { installationEnv, ok, portico } from '../helpers/portico.ts';
import { projectRoot } from '../helpers/process.ts';
import { EXIT } from '../../app/cli/portico.ts';
import { copyDatabase } from '../../app/ops/copy-database.ts';
import { toDate } from '../../app/models/normalise.ts';
import * as brandings from '../../app/models/brandings.ts';
import * as catalog from '../../app/models/catalog.ts';
import { trustedKeyMap } from '../../app/services/signer.ts';
import { knexConfig } from '../../db/knexfile.ts';
import { migrateLatest, migrateTo, migrationNames, openDatabase } from '../../db/index.ts';
import { verifyEnvelope } from '../../sdk/src/envelope.ts';

/**
 * `portico copy-database` (docs/operations.md, "Moving from SQLite to MariaDB"): a demo installation
 * seeded on SQLite by `npm run demo` (db/seeds/demo.ts) and used a little (sign-ins, an activation)
 * is copied into a new MariaDB database; the app on the copy with the same DATA_DIR lets the same
 * people sign in, accepts the license files issued before and goes on issuing ids after the copied
 * ones. Then back from MariaDB into a new SQLite file, and the refusals.
 *
 * It needs a MySQL/MariaDB server: the one of DATABASE_URL when that is mysql://, else
 * COPY_TEST_MYSQL_URL, else mysql://root@127.0.0.1:3306/. Its databases are named after that URL's
 * database name (default portico_copy) with this process's id and a random suffix, and dropped
 * afterwards. No server reachable (and DATABASE_URL not mysql://): skipped.
 */

const run = promisify(execFile);

const mysqlServer =
  (usingMysql ? process.env.DATABASE_URL : process.env.COPY_TEST_MYSQL_URL) ??
  'mysql://root@127.0.0.1:3306/portico_copy';

async function mysqlReachable(): Promise<boolean> {
  const url = new URL(mysqlServer.replace(/^mariadb:/, 'mysql:'));
  url.pathname = '/';
  const probe = knex({ ...knexConfig(url.toString()), pool: { min: 0, max: 1 }, acquireConnectionTimeout: 3000 });
  try {
    await probe.raw('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await probe.destroy();
  }
}

/** A new, empty MariaDB database (no tables: copy-database migrates it). */
const newMysqlDatabase = () => createTestDatabase({ server: mysqlServer, migrate: false });

/** Every Portico table with its row count (knex's own tables left out: each database has its own). */
async function tableCounts(db: Knex): Promise<Record<string, number>> {
  const sqlite = db.client.config.client === 'better-sqlite3';
  const names: string[] = sqlite
    ? (
        (await db.raw("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")) as {
          name: string;
        }[]
      ).map((r) => r.name)
    : (
        (await db.raw('SELECT table_name AS name FROM information_schema.tables WHERE table_schema = DATABASE()')) as [
          { name: string }[],
        ]
      )[0].map((r) => r.name);
  const counts: Record<string, number> = {};
  for (const name of names.sort())
    if (!['knex_migrations', 'knex_migrations_lock', 'portico_migration_claim'].includes(name))
      counts[name] = await countRows(db, name);
  return counts;
}

/** Signs in through the real form; returns the agent and where the login went. */
async function signIn(app: TestApp['app'], email: string, password: string) {
  const agent = request.agent(app);
  const page = await agent.get('/login').expect(200);
  const res = await agent
    .post('/login')
    .type('form')
    .send({ _csrf: csrfFrom(page.text), email, password })
    .expect(303);
  await agent.get(res.headers.location!).expect(200);
  return agent;
}

const api = (app: TestApp['app'], what: string, body: object) =>
  request(app).post(`/api/v1/${what}`).set('Accept', 'application/json').send(body);

/** A license file of acme-cad for a new device on the first license with no activation yet. */
async function activateNew(t: TestApp, hardwareId: string) {
  const license = await t
    .db('licenses')
    .join('products', 'products.id', 'licenses.product_id')
    .where({ 'products.code': 'acme-cad', 'licenses.times_activated': 0 })
    .whereNull('licenses.expires_at')
    .orderBy('licenses.id')
    .first('licenses.license_key');
  const device = makeDevice(hardwareId);
  const res = await api(t.app, 'activate', {
    request: device.activationRequest({ product: 'acme-cad', licenseKey: license.license_key }).text,
  }).expect(200);
  return { device, file: String(res.body.license), activationId: Number(res.body.activationId) };
}

const licensePayload = (file: string, keys: Map<string, KeyObject>) =>
  verifyEnvelope(file, { expectedType: 'license', trustedKeys: keys }).payload as {
    licenseId: number;
    activationId: number;
    hardwareId: string;
  };

describe('portico copy-database: SQLite → MariaDB and back', function () {
  this.timeout(120_000);
  let dir: string;
  let dataDir: string;
  let sourceUrl: string;
  let env: Record<string, string>;
  let logins: Record<string, string>;
  let mariadb: TestDatabase;
  const extraDatabases: TestDatabase[] = [];

  before(async function () {
    if (!(await mysqlReachable())) {
      if (usingMysql) throw new Error(`DATABASE_URL names a MySQL server that does not answer: ${mysqlServer}`);
      console.log('      (skipped: no MySQL/MariaDB server at COPY_TEST_MYSQL_URL or mysql://root@127.0.0.1:3306/)');
      this.skip();
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-copy-'));
    dataDir = path.join(dir, 'data');
    sourceUrl = `sqlite:${path.join(dir, 'portico.sqlite')}`;
    env = installationEnv(sourceUrl, dataDir);
    // The demo vendor, as `npm run demo` makes it (argon2 hashes, orders, licenses, devices, audit, codes, settings).
    const seeded = await run(process.execPath, ['--import', 'tsx', 'db/seeds/demo.ts'], { cwd: projectRoot, env });
    logins = Object.fromEntries(
      [...seeded.stdout.matchAll(/^ {2}\w+\s+(\S+@demo\.portico\.test)\s+(\S+)$/gm)].map((m) => [m[1]!, m[2]!]),
    );
    assert.equal(Object.keys(logins).length, 5, seeded.stdout);
    mariadb = await newMysqlDatabase();
  });
  after(async () => {
    for (const d of [mariadb, ...extraDatabases]) await d?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('SQLite → MariaDB', () => {
    let source: TestApp;
    let target: TestApp;
    let before: { file: string; device: ReturnType<typeof makeDevice>; activationId: number };
    let sourceKeys: Map<string, KeyObject>;
    let sourceCounts: Record<string, number>;
    const blob = crypto.randomBytes(48);

    it('copies every table of a used installation, prints each table and a summary, and leaves the source as it was', async () => {
      source = await buildTestApp({}, { databaseUrl: sourceUrl, dataDir });
      // Used a little before the move: two sign-ins (sessions, last_login_at), an activation (a
      // device, its history, audit), a BLOB, and a customer made and deleted (an id used and gone).
      await signIn(source.app, 'admin@demo.portico.test', logins['admin@demo.portico.test']!);
      await signIn(source.app, 'distributor@demo.portico.test', logins['distributor@demo.portico.test']!);
      before = await activateNew(source, 'MOVE-HW-1');
      const branding = await brandings.insert(source.db, { name: 'move-test', displayName: 'Move test' }, new Date());
      await brandings.setLogo(source.db, branding, { data: blob, mime: 'image/png' }, new Date());
      const gone = await catalog.insertCustomer(source.db, { kind: 'person', name: 'Temporary' }, new Date());
      await source.db('customers').where({ id: gone }).delete();
      sourceKeys = await trustedKeyMap(source.db);
      sourceCounts = await tableCounts(source.db);
      await source.close();
      const sourceBytes = fs.readFileSync(sourceUrl.slice('sqlite:'.length));

      const copied = ok(await portico(env, 'copy-database', '--to', mariadb.url));
      assert.match(copied.stdout, /^Copying SQLite .*portico\.sqlite into MySQL\/MariaDB /);
      assert.match(copied.stdout, /^ {2}accounts: 5 row\(s\)$/m);
      assert.match(copied.stdout, new RegExp(`^ {2}devices: ${sourceCounts.devices} row\\(s\\)$`, 'm'));
      const total = Object.values(sourceCounts).reduce((a, b) => a + b, 0);
      assert.match(
        copied.stdout,
        new RegExp(`Copied ${total} row\\(s\\) of ${Object.keys(sourceCounts).length} tables`),
      );
      assert.match(copied.stdout, /every table's row count matches/);
      assert.match(copied.stdout, /same DATA_DIR/);
      assert.ok(fs.readFileSync(sourceUrl.slice('sqlite:'.length)).equals(sourceBytes), 'the source file is unchanged');

      target = await buildTestApp({}, { databaseUrl: mariadb.url, dataDir });
      assert.deepEqual(await tableCounts(target.db), sourceCounts);
      assert.deepEqual(
        (await target.db('knex_migrations').orderBy('id').select('name')).map((r) => r.name),
        migrationNames(),
      );
    });

    it('dates, text, BLOBs and booleans are the same values on both sides', async () => {
      const src = openDatabase(sourceUrl);
      try {
        for (const [table, columns] of [
          ['accounts', ['created_at', 'updated_at', 'last_login_at']],
          ['devices', ['activated_at', 'last_seen_at', 'deactivated_at', 'floating_expires_at']],
          ['audit_events', ['occurred_at']],
          ['licenses', ['start_date', 'expires_at', 'created_at']],
        ] as const) {
          const a = await src(table).orderBy('id').limit(50);
          const b = await target.db(table).orderBy('id').limit(50);
          assert.equal(b.length, a.length);
          a.forEach((row, i) => {
            for (const c of columns) {
              assert.ok(c in row, `${table}.${c} exists`);
              assert.equal(
                toDate(b[i][c])?.getTime() ?? null,
                toDate(row[c])?.getTime() ?? null,
                `${table}.${c} #${row.id}`,
              );
            }
          });
        }
        // Session ids compare differently (MariaDB's collation ignores case): matched by id here.
        const sessions = await src('sessions');
        const copiedSessions = new Map((await target.db('sessions')).map((r) => [r.sid, r]));
        assert.equal(copiedSessions.size, sessions.length);
        assert.ok(sessions.length >= 2);
        for (const s of sessions) {
          const copy = copiedSessions.get(s.sid);
          assert.equal(copy?.sess, s.sess);
          // DATETIME without fractions on MySQL: the same second.
          assert.equal(
            Math.floor(toDate(copy.expired)!.getTime() / 1000),
            Math.floor(toDate(s.expired)!.getTime() / 1000),
          );
        }
        const customer = await target.db('customers').where({ name: 'Globex GmbH' }).first();
        assert.equal(customer.address, 'Hauptstraße 1, 10115 Berlin');
        const stolen = await target.db('devices').where({ hostname: 'stolen-laptop' }).first();
        assert.equal(Number(stolen.blacklisted), 1);
        const branding = await target.db('brandings').where({ name: 'move-test' }).first();
        assert.ok(Buffer.from(branding.logo_data).equals(blob), 'the BLOB, byte for byte');
        assert.equal(Number(branding.show_powered_by), 1);
        const settings = await src('settings').orderBy('key');
        assert.deepEqual(
          (await target.db('settings').orderBy('key')).map((r) => [r.key, r.value, toDate(r.updated_at)!.getTime()]),
          settings.map((r) => [r.key, r.value, toDate(r.updated_at)!.getTime()]),
        );
      } finally {
        await src.destroy();
      }
    });

    it('on the copy (same DATA_DIR) the admin and a manager sign in with their passwords', async () => {
      await signIn(target.app, 'admin@demo.portico.test', logins['admin@demo.portico.test']!);
      await signIn(target.app, 'reseller@demo.portico.test', logins['reseller@demo.portico.test']!);
    });

    it('a license file issued before the move verifies with the keys the copy publishes; its device checks in', async () => {
      const targetKeys = await trustedKeyMap(target.db);
      assert.deepEqual([...targetKeys.keys()].sort(), [...sourceKeys.keys()].sort());
      const payload = licensePayload(before.file, targetKeys);
      assert.equal(payload.hardwareId, 'MOVE-HW-1');
      const published = await request(target.app).get('/.well-known/portico-keys.json').expect(200);
      assert.ok(JSON.stringify(published.body).includes([...sourceKeys.keys()][0]!));
      const ref = { product: 'acme-cad', licenseId: payload.licenseId, activationId: payload.activationId };
      const check = await api(target.app, 'check', { request: before.device.checkRequest(ref) }).expect(200);
      assert.equal(check.body.valid, true);
      // Signed on the copy with DATA_DIR's private key: the keys known before the move verify it.
      verifyEnvelope(check.body.license, { expectedType: 'refresh', trustedKeys: sourceKeys });
    });

    it('a new activation on the copy works and gets the id after the copied ones; a deleted id is not reused', async () => {
      const maxDevice = Number((await target.db('devices').max({ m: 'id' }).first())!.m);
      const fresh = await activateNew(target, 'MOVE-HW-2');
      assert.equal(fresh.activationId, maxDevice + 1);
      assert.equal(licensePayload(fresh.file, sourceKeys).hardwareId, 'MOVE-HW-2');
      const maxCustomer = Number((await target.db('customers').max({ m: 'id' }).first())!.m);
      const customer = await catalog.insertCustomer(target.db, { kind: 'person', name: 'After the move' }, new Date());
      assert.equal(customer, maxCustomer + 2, 'the id the source used and deleted stays unused');
    });

    it('a target that holds data is refused without --force (exit 3, nothing written); --force replaces it', async () => {
      const counts = await tableCounts(target.db);
      const refused = await portico(env, 'copy-database', '--to', mariadb.url);
      assert.equal(refused.status, EXIT.refused, refused.stderr);
      assert.match(
        refused.stderr,
        /refused: the target database already holds data: accounts \(5 rows\).*pass --force/,
      );
      assert.deepEqual(await tableCounts(target.db), counts, 'nothing written');
      // The URL (with its password) from an environment variable rather than the command line.
      ok(
        await portico(
          { ...env, NEW_DATABASE_URL: mariadb.url },
          'copy-database',
          '--to',
          'env:NEW_DATABASE_URL',
          '--force',
        ),
      );
      assert.deepEqual(await tableCounts(target.db), sourceCounts, 'the copy replaced what the target held');
      await target.close();
    });
  });

  describe('MariaDB → SQLite', () => {
    it('copies back into a new SQLite file: the same counts, dates and sign-ins', async () => {
      const backUrl = `sqlite:${path.join(dir, 'back.sqlite')}`;
      const copied = ok(await portico(installationEnv(mariadb.url, dataDir), 'copy-database', '--to', backUrl));
      assert.match(copied.stdout, /^Copying MySQL\/MariaDB .* into SQLite .*back\.sqlite:$/m);
      const from = openDatabase(mariadb.url);
      const back = await buildTestApp({}, { databaseUrl: backUrl, dataDir });
      try {
        assert.deepEqual(await tableCounts(back.db), await tableCounts(from));
        const a = await from('audit_events').orderBy('id');
        const b = await back.db('audit_events').orderBy('id');
        assert.deepEqual(
          b.map((r) => toDate(r.occurred_at)!.getTime()),
          a.map((r) => toDate(r.occurred_at)!.getTime()),
        );
        // Dates as Portico writes them on SQLite (milliseconds; the session store's ISO text).
        assert.equal(typeof b[0].occurred_at, 'number');
        const session = await back.db('sessions').first();
        assert.match(String(session.expired), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        await signIn(back.app, 'admin@demo.portico.test', logins['admin@demo.portico.test']!);
        await signIn(back.app, 'it-admin@demo.portico.test', logins['it-admin@demo.portico.test']!);
        const maxDevice = Number((await back.db('devices').max({ m: 'id' }).first())!.m);
        assert.equal((await activateNew(back, 'MOVE-HW-3')).activationId, maxDevice + 1);
      } finally {
        await back.close();
        await from.destroy();
      }
    });
  });

  describe('batches', () => {
    it('in batches of 3 rows (paging on one-column, two-column and text keys) the copy is row for row the one of 1,000', async () => {
      const whole = `sqlite:${path.join(dir, 'whole.sqlite')}`;
      const paged = `sqlite:${path.join(dir, 'paged.sqlite')}`;
      await copyDatabase(mariadb.url, whole);
      const lines: string[] = [];
      await copyDatabase(mariadb.url, paged, { batchRows: 3, progress: (l) => lines.push(l) });
      assert.ok(lines.includes('  role_permissions: 20 row(s)'), lines.join('\n'));
      const [a, b] = [openDatabase(whole), openDatabase(paged)];
      try {
        const tables = Object.keys(await tableCounts(a));
        assert.ok(tables.length > 50);
        const sorted = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).sort();
        for (const table of tables) assert.deepEqual(sorted(await b(table)), sorted(await a(table)), table);
      } finally {
        await a.destroy();
        await b.destroy();
      }
      // From SQLite in batches of 3 as well: the same counts as the source.
      const fromSqlite = await newMysqlDatabase();
      extraDatabases.push(fromSqlite);
      await copyDatabase(sourceUrl, fromSqlite.url, { batchRows: 3 });
      const src = openDatabase(sourceUrl);
      try {
        assert.deepEqual(await tableCounts(fromSqlite.db), await tableCounts(src));
      } finally {
        await src.destroy();
      }
    });
  });

  describe('refusals', () => {
    it('the source itself as the target (even spelled otherwise): exit 3', async () => {
      for (const to of [sourceUrl, `sqlite:${path.join(dir, '.', 'data', '..', 'portico.sqlite')}`]) {
        const run = await portico(env, 'copy-database', '--to', to);
        assert.equal(run.status, EXIT.refused, run.stderr);
        assert.match(run.stderr, /refused: the target is the source database itself/);
      }
      const mysqlEnv = installationEnv(mariadb.url, dataDir);
      const same = await portico(mysqlEnv, 'copy-database', '--to', `${mariadb.url}?pool=3`);
      assert.equal(same.status, EXIT.refused, same.stderr);
      assert.match(same.stderr, /refused: the target is the source database itself/);
    });

    it('a source with pending migrations: exit 3, the target untouched', async () => {
      const oldUrl = `sqlite:${path.join(dir, 'old.sqlite')}`;
      const old = openDatabase(oldUrl);
      await migrateTo(old, migrationNames().at(-2)!);
      await old.destroy();
      const empty = await newMysqlDatabase();
      extraDatabases.push(empty);
      const run = await portico(installationEnv(oldUrl, dataDir), 'copy-database', '--to', empty.url);
      assert.equal(run.status, EXIT.refused, run.stderr);
      assert.match(
        run.stderr,
        /refused: the source database is not at this release's schema \(1 migration\(s\) pending\)/,
      );
      assert.deepEqual(await tableCounts(empty.db), {}, 'no table made in the target');
    });

    it('a value the target refuses (longer than its column; SQLite took it): exit 1 naming it, nothing written', async () => {
      const oddUrl = `sqlite:${path.join(dir, 'odd.sqlite')}`;
      const odd = openDatabase(oddUrl);
      await migrateLatest(odd);
      await odd('settings').insert({ key: 'k'.repeat(100), value: '1', updated_at: new Date() });
      await catalog.insertCustomer(odd, { kind: 'person', name: 'Copied first' }, new Date());
      await odd.destroy();
      const empty = await newMysqlDatabase();
      extraDatabases.push(empty);
      const run = await portico(installationEnv(oddUrl, dataDir), 'copy-database', '--to', empty.url);
      assert.equal(run.status, EXIT.failure, run.stderr);
      assert.match(
        run.stderr,
        /failed: the target refused rows of settings \(after 0 copied\): Data too long for column 'key'.*nothing was written/,
      );
      const counts = await tableCounts(empty.db);
      assert.equal(counts.customers, 0, 'the tables copied before are rolled back too');
      assert.equal(counts.settings, 0);
    });

    it('an unreachable target: exit 1 with the reason; a missing database names how to create it', async () => {
      const down = await portico(env, 'copy-database', '--to', 'mysql://root@127.0.0.1:1/portico_nowhere');
      assert.equal(down.status, EXIT.failure);
      assert.match(
        down.stderr,
        /failed: cannot reach the target database MySQL\/MariaDB 127\.0\.0\.1:1\/portico_nowhere/,
      );
      const url = new URL(mariadb.url);
      url.pathname = `/${url.pathname.slice(1)}_missing`;
      const missing = await portico(env, 'copy-database', '--to', url.toString());
      assert.equal(missing.status, EXIT.failure);
      assert.match(missing.stderr, /CREATE DATABASE/);
      const noFolder = await portico(env, 'copy-database', '--to', `sqlite:${path.join(dir, 'nope', 'x.sqlite')}`);
      assert.equal(noFolder.status, EXIT.refused);
      assert.equal(fs.existsSync(path.join(dir, 'nope')), false);
    });
  });
});
