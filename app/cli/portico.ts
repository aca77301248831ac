import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Knex } from 'knex';
import { ConfigError, loadConfig, SUPPORTED_LANGUAGES, type Config } from '../../config/index.ts';
import { migrateLatest, migrationStatus, openDatabase } from '../../db/index.ts';
import { systemClock } from '../lib/clock.ts';
import { AppError } from '../lib/errors.ts';
import { makePaths } from '../paths.ts';
import { createBackup, Refused, restoreBackup } from '../ops/backup.ts';
import { badDatabaseUrl, copyDatabase, describeUrl } from '../ops/copy-database.ts';
import { runChecks } from '../ops/check.ts';
import { ToolError } from '../ops/mysql-tools.ts';
import { createAdmin, issuePasswordLink, operatorActor, removeSecondFactor } from '../services/operator.ts';
import { activateKey, generateKey } from '../services/signing-keys.ts';

/**
 * `npm run portico -- <command>` (or `node dist/portico.js <command>` in a built installation): the
 * operator's commands (docs/operations.md, "Operator CLI"). One entry per command in COMMANDS (its
 * options, help and what it does). Everything it changes goes through the services, audited with
 * the actor "operator CLI". It reads the same environment as the server (DATABASE_URL, DATA_DIR, …):
 * run it as the server's user, with the server's environment.
 */

const PROGRAM = 'portico';

/** The exit codes (docs/operations.md lists them). */
export const EXIT = {
  /** Done. */
  ok: 0,
  /** It could not be done, or `check` found a problem: the database is unreachable, a tool failed, … */
  failure: 1,
  /** The command line is wrong: unknown command or option, a missing or bad value. Nothing was done. */
  usage: 2,
  /** Refused: the archive, the target or the account is not acceptable. Nothing was changed. */
  refused: 3,
} as const;

export interface PorticoIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

type OptionSpecs = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | undefined>;

interface Context {
  values: Values;
  io: PorticoIo;
  config: Config;
  say: (line?: string) => void;
}

interface Command {
  summary: string;
  usage: string;
  help: string;
  options: OptionSpecs;
  /** Options that must be given (usage error otherwise). */
  required?: string[];
  run(ctx: Context): Promise<number>;
}

class UsageError extends Error {}

/** Opens the database and refuses to work on a schema this release has not (fully) migrated. */
async function withCurrentSchema<T>(config: Config, work: (db: Knex) => Promise<T>): Promise<T> {
  const db = openDatabase(config.databaseUrl);
  try {
    const status = await migrationStatus(db);
    if (status.unknown.length)
      throw new ToolError(`the database belongs to a newer release (migrations ${status.unknown.join(', ')})`);
    if (status.pending.length)
      throw new ToolError(
        `the database schema is not current (${status.pending.length} migration(s) pending): run \`${PROGRAM} migrate\` or start Portico first`,
      );
    return await work(db);
  } finally {
    await db.destroy();
  }
}

const deps = (db: Knex) => ({ db, clock: systemClock });
const linkFor = (config: Config, token: string) => `${config.baseUrl}${makePaths(null).resetPassword(token)}`;

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

const COMMANDS: Record<string, Command> = {
  help: {
    summary: 'list the commands, or explain one',
    usage: 'help [<command>]',
    help: "Lists every command with a one-line summary; `help <command>` prints that command's help (the same as `<command> --help`).",
    options: {},
    async run() {
      return EXIT.ok; // handled in runPortico (it needs the positional argument)
    },
  },
  'create-admin': {
    summary: 'create an administrator and print a one-time link to choose a password',
    usage: 'create-admin --email <address> --name <name> [--language en|de|fr|es]',
    help: [
      'Creates an administrator account without a password and prints a one-time link (valid 24 hours)',
      'where its owner chooses one. No password ever goes on a command line. Audited as "Administrator',
      'created by the operator CLI". An address already in use is refused (exit 3).',
    ].join('\n'),
    options: { email: { type: 'string' }, name: { type: 'string' }, language: { type: 'string' } },
    required: ['email', 'name'],
    async run({ values, config, say }) {
      const email = String(values.email).trim();
      const name = String(values.name).trim();
      const language = String(values.language ?? config.defaultLanguage);
      if (!EMAIL.test(email) || email.length > 254)
        throw new UsageError(`--email ${JSON.stringify(email)} is not an e-mail address`);
      if (!name || name.length > 200) throw new UsageError('--name must be 1 to 200 characters');
      if (!(SUPPORTED_LANGUAGES as readonly string[]).includes(language))
        throw new UsageError(`--language must be one of ${SUPPORTED_LANGUAGES.join(', ')}`);
      return withCurrentSchema(config, async (db) => {
        const { account, token, expiresAt } = await createAdmin(deps(db), operatorActor(), { email, name, language });
        say(`Administrator ${account.email} created (account ${account.id}).`);
        say(`Open this one-time link to choose the password (valid until ${expiresAt.toISOString()}):`);
        say(`  ${linkFor(config, token)}`);
        return EXIT.ok;
      });
    },
  },
  'reset-password': {
    summary: 'print a one-time link to choose a new password (a locked-out account)',
    usage: 'reset-password --email <address>',
    help: [
      'For an account that cannot sign in (forgotten password, no mail delivery): prints a one-time link,',
      'valid 60 minutes, to choose a new password, as the "forgot password" mail would. Earlier unused',
      "links of the account stop working; choosing the password also lifts the account's sign-in throttle.",
      'Audited as "Password link issued by the operator CLI". Unknown, disabled and directory (LDAP)',
      'accounts are refused (exit 3).',
    ].join('\n'),
    options: { email: { type: 'string' } },
    required: ['email'],
    async run({ values, config, say }) {
      return withCurrentSchema(config, async (db) => {
        const { account, token, expiresAt } = await issuePasswordLink(deps(db), operatorActor(), String(values.email));
        say(`Password link for ${account.email} (${account.role}), valid until ${expiresAt.toISOString()}:`);
        say(`  ${linkFor(config, token)}`);
        return EXIT.ok;
      });
    },
  },
  'reset-two-factor': {
    summary: "remove an account's second factor (a lost authenticator)",
    usage: 'reset-two-factor --email <address>',
    help: [
      'For an account whose owner lost both the authenticator and the recovery codes: removes the second',
      'factor and ends every session of the account; the password alone then signs in, and the owner sets',
      'up a new authenticator on the account page (or is asked to, where a second factor is required).',
      'The password is not changed: run reset-password too when it is lost as well. Audited as "Second',
      'factor removed by the operator CLI". Unknown accounts and accounts without a second factor are',
      'refused (exit 3).',
    ].join('\n'),
    options: { email: { type: 'string' } },
    required: ['email'],
    async run({ values, config, say }) {
      return withCurrentSchema(config, async (db) => {
        const { account, sessionsEnded } = await removeSecondFactor(deps(db), operatorActor(), String(values.email));
        say(`Second factor removed for ${account.email} (${account.role}); ${sessionsEnded} session(s) ended.`);
        return EXIT.ok;
      });
    },
  },
  'rotate-signing-key': {
    summary: 'generate a new signing key, activate one, or both at once',
    usage: 'rotate-signing-key [--activate <kid> | --now]',
    help: [
      'Key rotation as the console does it (docs/deployment.md, "Rotating the signing key"), audited:',
      '  (no option)       generate a new key as trusted: published and accepted, not signing yet;',
      '  --activate <kid>  make that trusted key the signing key (the previous one stays trusted);',
      '  --now             generate and activate at once (clients that have not fetched the new',
      '                    public key cannot verify new files until they do).',
      "The private key file goes to DATA_DIR/keys of this machine (mode 0600): run it as the server's",
      'user, on the shared DATA_DIR, or copy the file to every host before activating.',
    ].join('\n'),
    options: { activate: { type: 'string' }, now: { type: 'boolean' } },
    async run({ values, config, say }) {
      if (values.activate !== undefined && values.now) throw new UsageError('--activate and --now exclude each other');
      return withCurrentSchema(config, async (db) => {
        const actor = operatorActor();
        let kid = values.activate === undefined ? null : String(values.activate);
        if (kid === null) {
          kid = await generateKey(deps(db), actor, config.dataDir);
          say(`Generated key ${kid} (trusted: published, not signing yet).`);
          if (!values.now) {
            say(`Once clients have seen it (at least 5 minutes): ${PROGRAM} rotate-signing-key --activate ${kid}`);
            return EXIT.ok;
          }
        }
        await activateKey(deps(db), actor, config.dataDir, kid);
        say(`Key ${kid} now signs; the previous key stays trusted (retire it in the console once unused).`);
        return EXIT.ok;
      });
    },
  },
  backup: {
    summary: 'write one archive: database snapshot, signing keys, secrets, manifest',
    usage: 'backup --out <file> [--force]',
    help: [
      'Writes ONE archive (tar + gzip, mode 0600) while the server runs: a consistent snapshot of the',
      'database (SQLite: its online backup API; MySQL/MariaDB: mariadb-dump --single-transaction),',
      "DATA_DIR's signing keys, secret-box key and session secret, and a manifest with the schema",
      "version and every file's SHA-256. It holds the private keys: store it encrypted.",
      '  --force  overwrite <file> if it exists (otherwise refused, exit 3).',
    ].join('\n'),
    options: { out: { type: 'string' }, force: { type: 'boolean' } },
    required: ['out'],
    async run({ values, config, say }) {
      const { file, manifest } = await createBackup(config, String(values.out), { overwrite: !!values.force });
      say(
        `Backup written to ${file}: ${manifest.database === 'sqlite' ? 'SQLite' : 'MySQL/MariaDB'} database at schema ${manifest.schemaVersion}, ${manifest.files.length} files.`,
      );
      say('It holds the signing keys and secrets: keep it encrypted, readable only by you.');
      return EXIT.ok;
    },
  },
  restore: {
    summary: 'restore an archive into a fresh DATA_DIR and an empty database',
    usage: 'restore --from <file> [--force]',
    help: [
      "Checks the archive (every file against the manifest's SHA-256, a schema version this release",
      "knows, the same database kind as DATABASE_URL), then restores the database and DATA_DIR's key",
      'files. Stop every Portico process first. The target must be empty (no key files in DATA_DIR, no',
      'tables in the database); the MySQL/MariaDB database must exist. Refusals exit 3, nothing changed.',
      '  --force  replace what the target holds (its tables and key files are deleted first).',
      "Start Portico afterwards: it applies the migrations this release has beyond the archive's.",
    ].join('\n'),
    options: { from: { type: 'string' }, force: { type: 'boolean' } },
    required: ['from'],
    async run({ values, config, say }) {
      const { manifest, pending } = await restoreBackup(config, String(values.from), { force: !!values.force });
      say(
        `Restored the backup of ${manifest.createdAt} (Portico ${manifest.porticoVersion}, schema ${manifest.schemaVersion}) into ${config.dataDir}.`,
      );
      say(
        pending.length
          ? `The next start applies ${pending.length} newer migration(s): ${pending.join(', ')}.`
          : 'The schema is current.',
      );
      return EXIT.ok;
    },
  },
  'copy-database': {
    summary: 'copy every row into another database: SQLite to MySQL/MariaDB, or back',
    usage: 'copy-database --to <database URL | env:NAME> [--force]',
    help: [
      'Copies every row of every Portico table of the database of DATABASE_URL (the source, only read,',
      'from one snapshot) into the database of --to (sqlite:<file> or mysql://user:password@host/name),',
      'to move an installation between SQLite and MySQL/MariaDB. Stop every Portico process first. The',
      "source must be at this release's schema; the target gets it from Portico's migrations, must hold",
      'no data, and is written in one transaction (all or nothing). Ids are kept and new rows continue',
      "after them; each table's row count is checked afterwards (a difference exits 1). The MySQL/MariaDB",
      'database must exist (utf8mb4). DATA_DIR (signing keys, secrets) is not copied: run the server on',
      'the target with the same DATA_DIR. Refusals (target holds data, same database, pending',
      'migrations) exit 3, nothing changed.',
      '  --to env:<NAME>  read the URL from the environment variable NAME (keeps the password out of `ps`).',
      '  --force          replace the data the target holds (emptied first, in the same transaction).',
    ].join('\n'),
    options: { to: { type: 'string' }, force: { type: 'boolean' } },
    required: ['to'],
    async run({ values, config, say, io }) {
      const given = String(values.to).trim();
      const variable = given.startsWith('env:') ? given.slice('env:'.length) : null;
      const to = variable === null ? given : (io.env[variable] ?? '').trim();
      if (variable !== null && !to)
        throw new UsageError(`--to ${given}: the environment variable ${variable} is not set`);
      const bad = badDatabaseUrl(to);
      if (bad) throw new UsageError(`--to is not a database URL: ${bad}`);
      if (to === config.databaseUrl)
        throw new Refused('the target is the source database itself (DATABASE_URL): name another database');
      say(`Copying ${describeUrl(config.databaseUrl)} into ${describeUrl(to)}:`);
      const result = await copyDatabase(config.databaseUrl, to, { force: !!values.force, progress: say });
      say(
        `Copied ${result.rows} row(s) of ${result.tables.length} tables at schema ${result.schemaVersion}; every table's row count matches.`,
      );
      say(`The source is unchanged. DATA_DIR (${config.dataDir}: signing keys, secret-box key, session secret) is not`);
      say('in the database: start Portico on the target with this same DATA_DIR, and DATABASE_URL set to the target.');
      return EXIT.ok;
    },
  },
  migrate: {
    summary: 'apply the pending migrations (what a start does first)',
    usage: 'migrate',
    help: 'Applies the pending migrations, as a start would; safe while other processes start too (one migrates, the others wait).',
    options: {},
    async run({ config, say }) {
      const db = openDatabase(config.databaseUrl);
      try {
        const applied = await migrateLatest(db);
        say(applied.length ? `Applied: ${applied.join(', ')}` : 'Already up to date.');
      } finally {
        await db.destroy();
      }
      return EXIT.ok;
    },
  },
  'migrate:status': {
    summary: 'show what a start would do to the database, without doing it',
    usage: 'migrate:status',
    help: [
      'Lists the applied and pending migrations. Each pending migration that holds a big table for long',
      'on MySQL/MariaDB gets a "warning:" line saying what it locks: plan the upgrade for a quiet hour.',
      'Exits 1 when the database has migrations this release does not know (a start would fail).',
    ].join('\n'),
    options: {},
    async run({ config, say }) {
      const db = openDatabase(config.databaseUrl);
      try {
        const status = await migrationStatus(db);
        say(`Applied: ${status.applied.length}${status.applied.length ? ` (latest ${status.applied.at(-1)})` : ''}`);
        if (status.unknown.length) {
          say(`Unknown to this release: ${status.unknown.join(', ')}`);
          say('A start would fail: the database belongs to a newer release.');
          return EXIT.failure;
        }
        if (!status.pending.length) {
          say('Pending: none. A start changes nothing.');
          return EXIT.ok;
        }
        say(`Pending: ${status.pending.length}. A start applies, in this order:`);
        for (const p of status.pending) {
          say(`  ${p.name}`);
          if (p.locks) say(`    warning: on MySQL/MariaDB it locks ${p.locks}`);
        }
        return EXIT.ok;
      } finally {
        await db.destroy();
      }
    },
  },
  check: {
    summary: 'check configuration, database, key files and permissions, clock, data folder',
    usage: 'check',
    help: [
      'Checks: the configuration is valid; the data folder exists and is writable; every secret file in',
      'it (keys/*.pem, secret-box.key, session-secret) has mode 0600 and belongs to the running user;',
      'the database is reachable and its schema known; the active signing key has its private key file;',
      "the clock agrees with the database server's (within 5 s) and is not behind the latest audit event.",
      'One line per finding (ok, warn, FAIL); exits 1 if any FAIL.',
    ].join('\n'),
    options: {},
    async run({ config, say }) {
      say('ok    configuration is valid');
      const findings = await runChecks(config);
      for (const f of findings) say(`${f.level === 'fail' ? 'FAIL' : f.level.padEnd(4)}  ${f.what}: ${f.detail}`);
      const failed = findings.filter((f) => f.level === 'fail').length;
      say(failed ? `${failed} problem(s) found.` : 'No problems found.');
      return failed ? EXIT.failure : EXIT.ok;
    },
  },
};

export const COMMAND_NAMES = Object.keys(COMMANDS);

function overview(): string {
  const width = Math.max(...COMMAND_NAMES.map((n) => n.length));
  return [
    `Usage: npm run ${PROGRAM} -- <command> [options]   (built: node dist/portico.js <command> [options])`,
    '',
    'Commands:',
    ...COMMAND_NAMES.map((n) => `  ${n.padEnd(width)}  ${COMMANDS[n]!.summary}`),
    '',
    `\`${PROGRAM} <command> --help\` explains a command. It reads the server's environment (DATABASE_URL,`,
    "DATA_DIR, BASE_URL, …): run it as the server's user, with the same settings.",
    'Exit codes: 0 done, 1 failed (or check found a problem), 2 usage error, 3 refused (nothing changed).',
    '',
  ].join('\n');
}

function commandHelp(name: string): string {
  const c = COMMANDS[name]!;
  return `Usage: ${PROGRAM} ${c.usage}\n\n${c.summary[0]!.toUpperCase()}${c.summary.slice(1)}.\n\n${c.help}\n`;
}

/** English messages for the services' error keys (the CLI speaks English, like the logs). */
const MESSAGES: Record<string, string> = {
  'operator.emailTaken': 'an account with this e-mail address already exists',
  'operator.noSuchAccount': 'no account has this e-mail address',
  'operator.directoryAccount': 'this account signs in through the directory (LDAP) and has no local password',
  'operator.accountDisabled': 'this account is disabled',
  'operator.noSecondFactor': 'this account has no second factor',
  'admin.keys.alreadyActive': 'that key is already the active one',
  'admin.keys.activateRetired': 'only a trusted key can be activated (that one is retired)',
  'admin.keys.privateKeyMissing': 'this machine has no private key file for that key (DATA_DIR/keys)',
  'errors.notFound': 'no such key',
};

/** Runs one command line; returns the exit code. Never throws. */
export async function runPortico(argv: string[], io: PorticoIo): Promise<number> {
  const say = (line = '') => io.stdout(`${line}\n`);
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.stderr(overview());
    return EXIT.usage;
  }
  if (name === '--help' || name === '-h') {
    io.stdout(overview());
    return EXIT.ok;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.stderr(`${PROGRAM}: unknown command ${JSON.stringify(name)}\n\n${overview()}`);
    return EXIT.usage;
  }
  let values: Values;
  let positionals: string[];
  try {
    const parsed = parseArgs({
      args: rest,
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: name === 'help',
      strict: true,
    });
    values = parsed.values as Values;
    positionals = parsed.positionals;
  } catch (err) {
    io.stderr(`${PROGRAM} ${name}: ${(err as Error).message.split('. ')[0]}\n\n${commandHelp(name)}`);
    return EXIT.usage;
  }
  if (values.help) {
    io.stdout(commandHelp(name));
    return EXIT.ok;
  }
  if (name === 'help') {
    const about = positionals[0];
    if (about === undefined) io.stdout(overview());
    else if (COMMANDS[about]) io.stdout(commandHelp(about));
    else {
      io.stderr(`${PROGRAM} help: unknown command ${JSON.stringify(about)}\n\n${overview()}`);
      return EXIT.usage;
    }
    return EXIT.ok;
  }
  const missing = (command.required ?? []).filter((o) => values[o] === undefined || values[o] === '');
  if (missing.length) {
    io.stderr(`${PROGRAM} ${name}: missing ${missing.map((o) => `--${o}`).join(', ')}\n\n${commandHelp(name)}`);
    return EXIT.usage;
  }
  let config: Config;
  try {
    config = loadConfig(io.env);
  } catch (err) {
    io.stderr(`${PROGRAM} ${name}: ${err instanceof ConfigError ? err.message : String(err)}\n`);
    return EXIT.failure;
  }
  try {
    return await command.run({ values, io, config, say });
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`${PROGRAM} ${name}: ${err.message}\n\n${commandHelp(name)}`);
      return EXIT.usage;
    }
    if (err instanceof Refused) {
      io.stderr(`${PROGRAM} ${name}: refused: ${err.message}\n`);
      return EXIT.refused;
    }
    if (err instanceof AppError && err.status < 500) {
      io.stderr(`${PROGRAM} ${name}: refused: ${MESSAGES[err.messageKey] ?? err.messageKey}\n`);
      return EXIT.refused;
    }
    const message = err instanceof Error ? err.message : String(err);
    io.stderr(`${PROGRAM} ${name}: failed: ${message}\n`);
    if (!(err instanceof ToolError) && io.env.PORTICO_DEBUG && err instanceof Error) io.stderr(`${err.stack}\n`);
    return EXIT.failure;
  }
}

/** The program's own entry (portico.ts): runs process.argv and sets the exit code. */
export async function main(): Promise<void> {
  // A reader that goes away (`portico migrate:status | head`) must not crash the command mid-way.
  process.stdout.on('error', () => {});
  process.exitCode = await runPortico(process.argv.slice(2), {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    env: process.env,
  });
}
