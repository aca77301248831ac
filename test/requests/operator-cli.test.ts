import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { buildTestApp, countRows, createAccount, csrfFrom, loginAgent, type TestApp } from '../helpers/app.ts';
import { createTestDatabase, usingMysql, type TestDatabase } from '../helpers/db.ts';
import { installationEnv, ok, portico, porticoProcess, repack } from '../helpers/portico.ts';
import { COMMAND_NAMES, EXIT } from '../../app/cli/portico.ts';
import { migrateTo, migrationNames, openDatabase } from '../../db/index.ts';
import * as signingKeys from '../../app/models/signing-keys.ts';

/**
 * The operator CLI (docs/operations.md, "Operator CLI"): every command, its --help, its exit codes
 * and what it changes, against the real database (SQLite, or MariaDB with DATABASE_URL). Most runs
 * are in-process (runPortico, what the program calls); the program itself runs as a child process
 * for `help`, a usage error and a refusal. Backups under load with server processes:
 * test/e2e/backup-restore.test.ts.
 */

/** Rows counted through a connection of its own: a restore replaces a SQLite file under open connections. */
async function countIn(url: string, table: string, where: Record<string, unknown> = {}) {
  const db = openDatabase(url);
  try {
    return (await db.schema.hasTable(table)) ? await countRows(db, table, where) : 0;
  } finally {
    await db.destroy();
  }
}

const linkIn = (text: string) => /http:\/\/portico\.test(\/password\/reset\/[\w-]+)/.exec(text)![1]!;

async function choosePassword(t: TestApp, link: string, password: string) {
  const agent = request.agent(t.app);
  const form = await agent.get(link).expect(200);
  await agent
    .post(link)
    .type('form')
    .send({ _csrf: csrfFrom(form.text), password, password_confirmation: password })
    .expect(303);
}

const operatorEvents = (t: TestApp, action: string) =>
  t
    .db('audit_events')
    .where({ action })
    .orderBy('id')
    .select('actor_account_id', 'actor_label', 'object_id', 'after_state');

describe('operator CLI', function () {
  this.timeout(60_000);
  let t: TestApp;
  let env: Record<string, string>;
  before(async () => {
    t = await buildTestApp();
    env = installationEnv(t.config.databaseUrl, t.dataDir);
  });
  after(async () => t.close());

  describe('help, --help and usage errors', () => {
    it('`help` (the real program) lists every command; an unknown command is a usage error (exit 2)', async () => {
      const help = ok(await porticoProcess(env, ['help']));
      for (const name of COMMAND_NAMES) assert.match(help.stdout, new RegExp(`^  ${name} `, 'm'), name);
      assert.match(help.stdout, /Exit codes: 0 done, 1 failed .*, 2 usage error, 3 refused/);
      const unknown = await porticoProcess(env, ['frobnicate']);
      assert.equal(unknown.status, EXIT.usage);
      assert.match(unknown.stderr, /unknown command "frobnicate"/);
      assert.equal((await porticoProcess(env, [])).status, EXIT.usage, 'no command at all');
    });

    it('every command has --help (exit 0, its usage line); `help <command>` says the same', async () => {
      assert.deepEqual(COMMAND_NAMES, [
        'help',
        'create-admin',
        'reset-password',
        'reset-two-factor',
        'rotate-signing-key',
        'backup',
        'restore',
        'copy-database',
        'migrate',
        'migrate:status',
        'check',
      ]);
      for (const name of COMMAND_NAMES) {
        const run = ok(await portico(env, name, '--help'));
        assert.match(run.stdout, new RegExp(`^Usage: portico ${name}\\b`), name);
        assert.equal(ok(await portico(env, 'help', name)).stdout, run.stdout, name);
      }
    });

    it('an unknown option, a missing required option or a bad value: exit 2, the usage on stderr, nothing done', async () => {
      const accounts = await countRows(t.db, 'accounts');
      for (const args of [
        ['backup', '--nope'],
        ['restore'],
        ['backup'],
        ['create-admin', '--email', 'x@example.com'],
        ['create-admin', '--email', 'not an address', '--name', 'X'],
        ['create-admin', '--email', 'x@example.com', '--name', 'X', '--language', 'tlh'],
        ['reset-password'],
        ['reset-two-factor'],
        ['rotate-signing-key', '--now', '--activate', 'ed25519-x'],
        ['migrate', 'extra'],
        ['copy-database'],
        ['copy-database', '--to', 'postgres://db/portico'],
        ['copy-database', '--to', 'mysql://db:3306/'],
        ['copy-database', '--to', 'env:PORTICO_NO_SUCH_VARIABLE'],
        ['help', 'nope'],
      ]) {
        const run = await portico(env, ...args);
        assert.equal(run.status, EXIT.usage, `${args.join(' ')}: ${run.stderr}`);
        assert.match(run.stderr, /Usage: (portico|npm run portico)/, args.join(' '));
      }
      assert.equal(await countRows(t.db, 'accounts'), accounts);
    });

    it('a bad configuration is a failure (exit 1) naming the variable', async () => {
      const run = await portico({ ...env, DATABASE_URL: 'postgres://x' }, 'check');
      assert.equal(run.status, EXIT.failure);
      assert.match(run.stderr, /Invalid configuration: DATABASE_URL must start with sqlite: or mysql:\/\//);
    });
  });

  describe('create-admin and reset-password', () => {
    it('create-admin makes an administrator with no password and prints a one-time link that works once; audited as the operator CLI', async () => {
      const run = ok(await portico(env, 'create-admin', '--email', 'Ops.Admin@Example.com', '--name', 'Ops Admin'));
      assert.match(run.stdout, /Administrator ops\.admin@example\.com created/);
      const account = await t.db('accounts').where({ email: 'ops.admin@example.com' }).first();
      assert.equal(account.role, 'admin');
      assert.equal(account.password_hash, null, 'no password until its owner chooses one');
      const link = linkIn(run.stdout);
      await choosePassword(t, link, 'a long operator password 7');
      await loginAgent(t.app, 'ops.admin@example.com', 'a long operator password 7');
      await request(t.app).get(link).expect(410);
      const [event] = await operatorEvents(t, 'operator.admin_created');
      assert.equal(event.actor_account_id, null);
      assert.equal(event.actor_label, 'operator CLI');
      assert.equal(String(event.object_id), String(account.id));
      assert.equal(JSON.parse(event.after_state).email, 'ops.admin@example.com');
      assert.doesNotMatch(
        String(event.after_state),
        new RegExp(link.split('/').pop()!),
        'the token is not in the audit',
      );
    });

    it('create-admin with an address in use is refused (exit 3), nothing written', async () => {
      const { email } = await createAccount(t.db, { role: 'manager' });
      const before = await countRows(t.db, 'accounts');
      const events = await countRows(t.db, 'audit_events');
      const run = await portico(env, 'create-admin', '--email', email.toUpperCase(), '--name', 'Twin');
      assert.equal(run.status, EXIT.refused);
      assert.match(run.stderr, /refused: an account with this e-mail address already exists/);
      assert.equal(await countRows(t.db, 'accounts'), before);
      assert.equal(await countRows(t.db, 'audit_events'), events);
    });

    it('reset-password: a locked-out admin gets back in through the printed link; older links stop working; audited', async () => {
      const { email, id } = await createAccount(t.db, { role: 'admin', password: 'the forgotten password 1' });
      const first = linkIn(ok(await portico(env, 'reset-password', '--email', email)).stdout);
      const second = linkIn(ok(await portico(env, 'reset-password', '--email', email)).stdout);
      assert.notEqual(first, second);
      await request(t.app).get(first).expect(410);
      await choosePassword(t, second, 'the remembered password 2');
      await loginAgent(t.app, email, 'the remembered password 2');
      const events = (await operatorEvents(t, 'operator.password_link_issued')).filter(
        (e: { object_id: unknown }) => String(e.object_id) === String(id),
      );
      assert.equal(events.length, 2);
      assert.ok(events.every((e: { actor_label: string }) => e.actor_label === 'operator CLI'));
    });

    it('reset-two-factor: an admin who lost the authenticator signs in with the password again; sessions ended; audited', async () => {
      const { email, id, password } = await createAccount(t.db, { role: 'admin' });
      const signedIn = await loginAgent(t.app, email, password);
      await t.db('accounts').where({ id }).update({ totp_enabled_at: new Date(), totp_secret: 'v1.sealed-secret' });
      await t.db('recovery_codes').insert({ account_id: id, code_hash: 'a'.repeat(64), created_at: new Date() });
      const passwordOnly = async () => {
        const agent = request.agent(t.app);
        const page = await agent.get('/login').expect(200);
        return agent
          .post('/login')
          .type('form')
          .send({ _csrf: csrfFrom(page.text), email, password })
          .expect(303);
      };
      assert.equal((await passwordOnly()).headers.location, '/login/two-factor', 'locked out before');

      const run = ok(await portico(env, 'reset-two-factor', '--email', email));
      assert.match(run.stdout, /Second factor removed for .*\(admin\); [1-9]\d* session\(s\) ended/);
      assert.notEqual((await passwordOnly()).headers.location, '/login/two-factor', 'the password alone signs in');
      assert.equal(await countRows(t.db, 'recovery_codes', { account_id: id }), 0);
      assert.match((await signedIn.get('/admin').expect(303)).headers.location ?? '', /^\/login/, 'its session ended');
      const events = (await operatorEvents(t, 'operator.two_factor_removed')).filter(
        (e: { object_id: unknown }) => String(e.object_id) === String(id),
      );
      assert.equal(events.length, 1);
      assert.equal(events[0].actor_label, 'operator CLI');

      const again = await portico(env, 'reset-two-factor', '--email', email);
      assert.equal(again.status, EXIT.refused, 'no second factor left to remove');
      assert.match(again.stderr, /no second factor/);
      assert.equal((await portico(env, 'reset-two-factor', '--email', 'nobody@example.com')).status, EXIT.refused);
    });

    it('reset-password refuses (exit 3) an unknown address, a disabled account and a directory account', async () => {
      assert.equal((await portico(env, 'reset-password', '--email', 'nobody@example.com')).status, EXIT.refused);
      const disabled = await createAccount(t.db, { role: 'admin' });
      await t.db('accounts').where({ id: disabled.id }).update({ disabled: true });
      const d = await portico(env, 'reset-password', '--email', disabled.email);
      assert.equal(d.status, EXIT.refused);
      assert.match(d.stderr, /disabled/);
      const directory = await createAccount(t.db, { role: 'admin' });
      await t
        .db('accounts')
        .where({ id: directory.id })
        .update({ directory_dn: 'uid=x,ou=staff,dc=example', password_hash: null });
      const l = await portico(env, 'reset-password', '--email', directory.email);
      assert.equal(l.status, EXIT.refused);
      assert.match(l.stderr, /directory \(LDAP\)/);
      assert.equal(await countRows(t.db, 'password_reset_tokens', { account_id: directory.id }), 0);
    });
  });

  describe('rotate-signing-key', () => {
    it('generates a trusted key (file 0600), activates it with --activate, or both with --now; audited as the operator CLI', async () => {
      const before = (await signingKeys.findActive(t.db))!;
      const generated = ok(await portico(env, 'rotate-signing-key'));
      const kid = /Generated key (ed25519-[\w-]+)/.exec(generated.stdout)![1]!;
      assert.equal((await signingKeys.find(t.db, kid))!.status, 'trusted');
      assert.equal(fs.statSync(path.join(t.dataDir, 'keys', `${kid}.pem`)).mode & 0o777, 0o600);
      assert.equal((await signingKeys.findActive(t.db))!.kid, before.kid, 'not signing yet');
      ok(await portico(env, 'rotate-signing-key', '--activate', kid));
      assert.equal((await signingKeys.findActive(t.db))!.kid, kid);
      assert.equal((await signingKeys.find(t.db, before.kid))!.status, 'trusted', 'the previous key still verifies');
      const again = await portico(env, 'rotate-signing-key', '--activate', kid);
      assert.equal(again.status, EXIT.refused);
      assert.match(again.stderr, /already the active one/);
      assert.equal((await portico(env, 'rotate-signing-key', '--activate', 'ed25519-unknown')).status, EXIT.refused);

      const now = ok(await portico(env, 'rotate-signing-key', '--now'));
      const third = /Generated key (ed25519-[\w-]+)/.exec(now.stdout)![1]!;
      assert.equal((await signingKeys.findActive(t.db))!.kid, third);
      const events = await t
        .db('audit_events')
        .whereIn('action', ['signing_key.generated', 'signing_key.activated'])
        .where({ actor_label: 'operator CLI' })
        .orderBy('id')
        .select('action', 'object_id');
      assert.deepEqual(
        events.map((e: { action: string; object_id: string }) => `${e.action} ${e.object_id}`),
        [
          `signing_key.generated ${kid}`,
          `signing_key.activated ${kid}`,
          `signing_key.generated ${third}`,
          `signing_key.activated ${third}`,
        ],
      );
    });
  });

  describe('check', () => {
    it('all good: exit 0; a key file readable by others, owned by another user or missing, and a clock set back: FAIL, exit 1', async () => {
      const run = ok(await portico(env, 'check'));
      assert.match(run.stdout, /^ok {4}database: reachable/m);
      assert.match(run.stdout, /^ok {4}signing key: active key/m);
      assert.match(run.stdout, /No problems found/);

      const active = (await signingKeys.findActive(t.db))!;
      const file = path.join(t.dataDir, 'keys', `${active.kid}.pem`);
      fs.chmodSync(file, 0o644);
      const open = await portico(env, 'check');
      assert.equal(open.status, EXIT.failure);
      assert.match(open.stdout, /^FAIL {2}secret file: .*has mode 0644: other users can read it/m);
      fs.chmodSync(file, 0o600);

      if (process.getuid?.() === 0) {
        fs.chownSync(file, 65534, 65534);
        const foreign = await portico(env, 'check');
        assert.equal(foreign.status, EXIT.failure);
        assert.match(foreign.stdout, /^FAIL {2}secret file: .*is owned by uid 65534/m);
        fs.chownSync(file, 0, 0);
      }

      const moved = `${file}.away`;
      fs.renameSync(file, moved);
      const missing = await portico(env, 'check');
      fs.renameSync(moved, file);
      assert.equal(missing.status, EXIT.failure);
      assert.match(missing.stdout, /^FAIL {2}signing key: the active key .* has no private key file/m);

      const future = new Date(Date.now() + 3600_000);
      const [id] = await t.db('audit_events').insert({ occurred_at: future, action: 'settings.updated' });
      const clock = await portico(env, 'check');
      await t.db('audit_events').where({ id }).delete();
      assert.equal(clock.status, EXIT.failure);
      assert.match(clock.stdout, /^FAIL {2}clock: the latest audit event is dated .* the clock was set back/m);
      ok(await portico(env, 'check'));
    });

    it('an unreachable database and a data folder that is not there: FAIL, exit 1', async () => {
      const unreachable = usingMysql
        ? 'mysql://root@127.0.0.1:47799/portico_nowhere'
        : 'sqlite:/etc/hostname/nowhere.sqlite';
      const run = await portico({ ...env, DATABASE_URL: unreachable, DATA_DIR: '/nonexistent/portico-data' }, 'check');
      assert.equal(run.status, EXIT.failure, run.stdout + run.stderr);
      assert.match(run.stdout, /^FAIL {2}data folder: \/nonexistent\/portico-data does not exist/m);
      assert.match(run.stdout, /^FAIL {2}database: (not reachable: .*ECONNREFUSED|cannot be opened: )/m);
    });
  });
});

describe('operator CLI: migrate and migrate:status', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let dataDir: string;
  before(async () => {
    database = await createTestDatabase({ migrate: false });
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-cli-mig-'));
  });
  after(async () => {
    await database.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('migrate:status tells what a start would do, with a warning for each migration that locks a big table on MySQL; migrate does it', async () => {
    const env = installationEnv(database.url, dataDir);
    await migrateTo(database.db, '0023_renewal_requests');
    const status = ok(await portico(env, 'migrate:status'));
    assert.match(status.stdout, /Applied: \d+ \(latest 0023_renewal_requests\)/);
    assert.match(
      status.stdout,
      /Pending: \d+\. A start applies, in this order:\n {2}0024_notification_optouts\n {4}warning: on MySQL\/MariaDB it locks orders: .*copying the table.*\n {2}0025_notifications\n {4}warning: on MySQL\/MariaDB it locks devices: .*online/,
    );
    assert.match(status.stdout, /^ {2}0027_directory_accounts$/m);
    assert.equal((status.stdout.match(/warning:/g) ?? []).length, 2, 'only 0024 and 0025 hold a big table');
    assert.equal(await database.db.schema.hasTable('notification_optouts'), false, 'status changed nothing');

    const migrated = ok(await portico(env, 'migrate'));
    assert.match(
      migrated.stdout.trim(),
      /^Applied: 0024_notification_optouts, 0025_notifications, (\d{4}_\w+, )*0027_directory_accounts(, \d{4}_\w+)*$/,
    );
    assert.match(ok(await portico(env, 'migrate:status')).stdout, /Pending: none\. A start changes nothing\./);
    assert.equal(ok(await portico(env, 'migrate')).stdout.trim(), 'Already up to date.');

    // A database from a newer release: a start would fail, and status says so (exit 1).
    await database
      .db('knex_migrations')
      .insert({ name: '0099_from_the_future', batch: 99, migration_time: new Date() });
    const newer = await portico(env, 'migrate:status');
    assert.equal(newer.status, EXIT.failure);
    assert.match(newer.stdout, /Unknown to this release: 0099_from_the_future\nA start would fail/);
    const refused = await portico(env, 'create-admin', '--email', 'a@example.com', '--name', 'A');
    assert.equal(refused.status, EXIT.failure);
    assert.match(refused.stderr, /newer release/);
    await database.db('knex_migrations').where({ name: '0099_from_the_future' }).delete();
  });

  it('the lock notes: every migration that names one is among those docs/operations.md lists', async () => {
    const doc = fs.readFileSync(path.join(import.meta.dirname, '..', '..', 'docs', 'operations.md'), 'utf8');
    const fresh = await createTestDatabase({ migrate: false });
    try {
      const out = ok(await portico(installationEnv(fresh.url, dataDir), 'migrate:status')).stdout;
      const warned = [...out.matchAll(/^ {2}(\d{4}_\w+)\n {4}warning:/gm)].map((m) => m[1]!);
      assert.deepEqual(warned, [
        '0002_audit_indexes',
        '0006_order_license_count',
        '0017_dashboard_indexes',
        '0024_notification_optouts',
        '0025_notifications',
      ]);
      for (const name of warned) assert.ok(doc.includes(`\`${name}\``), `${name} in docs/operations.md`);
      assert.equal((out.match(/^ {2}\d{4}_/gm) ?? []).length, migrationNames().length);
    } finally {
      await fresh.drop();
    }
  });
});

describe('operator CLI: backup and restore (refusals)', function () {
  this.timeout(120_000);
  let source: TestApp;
  let work: string;
  let archive: string;
  const targets: TestDatabase[] = [];
  const fresh = async () => {
    const database = await createTestDatabase({ migrate: false });
    targets.push(database);
    const dataDir = fs.mkdtempSync(path.join(work, 'target-'));
    return { database, dataDir, env: installationEnv(database.url, dataDir) };
  };
  before(async () => {
    source = await buildTestApp();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-cli-backup-'));
    await createAccount(source.db, { role: 'admin', email: 'kept@example.com' });
    archive = path.join(work, 'backup.tgz');
    ok(await portico(installationEnv(source.config.databaseUrl, source.dataDir), 'backup', '--out', archive));
  });
  after(async () => {
    for (const d of targets) await d.drop();
    await source.close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('writes the archive 0600; refuses to overwrite it without --force (exit 3)', async () => {
    assert.equal(fs.statSync(archive).mode & 0o777, 0o600);
    const env = installationEnv(source.config.databaseUrl, source.dataDir);
    const again = await portico(env, 'backup', '--out', archive);
    assert.equal(again.status, EXIT.refused);
    assert.match(again.stderr, /exists; choose another name or pass --force/);
    ok(await portico(env, 'backup', '--out', archive, '--force'));
  });

  it('restores into a fresh target; a second restore into it is refused (not empty) unless --force', async () => {
    const target = await fresh();
    const run = ok(await portico(target.env, 'restore', '--from', archive));
    assert.match(run.stdout, /The schema is current\./);
    assert.equal(await countIn(target.database.url, 'accounts', { email: 'kept@example.com' }), 1);
    const again = await portico(target.env, 'restore', '--from', archive);
    assert.equal(again.status, EXIT.refused);
    assert.match(again.stderr, /the target is not empty: .*keys\/ed25519-/);
    const db = openDatabase(target.database.url);
    await db('accounts').where({ email: 'kept@example.com' }).delete();
    await db.destroy();
    assert.equal(await countIn(target.database.url, 'accounts', { email: 'kept@example.com' }), 0);
    ok(await portico(target.env, 'restore', '--from', archive, '--force'));
    assert.equal(await countIn(target.database.url, 'accounts', { email: 'kept@example.com' }), 1, 'replaced');
  });

  it('refuses (exit 3, target untouched) a tampered file, a file not in the manifest, an unknown schema version, an unknown format and a non-archive', async () => {
    const target = await fresh();
    const database = usingMysql ? 'database/dump.sql' : 'database/portico.sqlite';
    const cases: [string, string, RegExp][] = [
      [
        'tampered database',
        await repack(archive, (dir) => fs.appendFileSync(path.join(dir, database), '-- one more line\n')),
        /checksum mismatch for database\/(dump\.sql|portico\.sqlite): the archive is damaged or was altered/,
      ],
      [
        'tampered key',
        await repack(archive, (dir) => {
          const keys = path.join(dir, 'data', 'keys');
          const [key] = fs.readdirSync(keys);
          fs.writeFileSync(path.join(keys, key!), 'not the key');
        }),
        /checksum mismatch for data\/keys\/ed25519-/,
      ],
      [
        'extra file',
        await repack(archive, (dir) => fs.writeFileSync(path.join(dir, 'data', 'session-secret'), 'planted')),
        /files not in the manifest: data\/session-secret/,
      ],
      [
        'future schema',
        await repack(archive, (dir) => {
          const file = path.join(dir, 'manifest.json');
          const m = JSON.parse(fs.readFileSync(file, 'utf8'));
          m.migrations.push('0099_from_the_future');
          m.schemaVersion = '0099_from_the_future';
          fs.writeFileSync(file, JSON.stringify(m));
        }),
        /schema version 0099_from_the_future .* is not one this release knows \(its latest is \d{4}_\w+; unknown migrations: 0099_from_the_future\)/,
      ],
      [
        'format 2',
        await repack(archive, (dir) => {
          const file = path.join(dir, 'manifest.json');
          fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), formatVersion: 2 }));
        }),
        /archive format 2; this release reads format 1/,
      ],
      [
        'not an archive',
        path.join(import.meta.dirname, '..', '..', 'package.json'),
        /is not a readable Portico backup/,
      ],
      ['missing', path.join(work, 'nope.tgz'), /nope\.tgz is not a file/],
    ];
    for (const [label, file, message] of cases) {
      const run = await portico(target.env, 'restore', '--from', file);
      assert.equal(run.status, EXIT.refused, `${label}: ${run.stdout}${run.stderr}`);
      assert.match(run.stderr, message, label);
    }
    assert.deepEqual(fs.readdirSync(target.dataDir), [], 'nothing written to DATA_DIR');
    assert.equal(await countIn(target.database.url, 'accounts'), 0, 'nothing written to the database');
    // The untouched archive still restores there.
    ok(await portico(target.env, 'restore', '--from', archive));
    assert.equal(await countIn(target.database.url, 'accounts', { email: 'kept@example.com' }), 1);
  });
});
