import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * The MySQL/MariaDB client programs the backup uses (mariadb-dump / mysqldump to dump, mariadb /
 * mysql to load), spawned without a shell. The password never appears on a command line (where `ps`
 * shows it to every user of the machine): the connection goes through an option file of mode 0600
 * (`--defaults-extra-file`), made for the call and deleted after it.
 */

export interface MysqlTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export class ToolError extends Error {}

/** The connection parts of a mysql:// (or mariadb://) DATABASE_URL. */
export function mysqlTarget(databaseUrl: string): MysqlTarget {
  const url = new URL(databaseUrl.replace(/^mariadb:/, 'mysql:'));
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  // Passed as a program argument: a name like an option (or anything unusual) is refused here.
  if (!/^[A-Za-z0-9_$][A-Za-z0-9_$-]*$/.test(database))
    throw new ToolError(`the database name in DATABASE_URL (${JSON.stringify(database)}) is not a plain name`);
  return {
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database,
  };
}

/** The first of `names` found on PATH, or null. */
function onPath(names: string[]): string | null {
  for (const name of names)
    for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
      const file = path.join(dir, name);
      try {
        fs.accessSync(file, fs.constants.X_OK);
        return file;
      } catch {
        // not here
      }
    }
  return null;
}

/** An option-file value: quoted, with backslashes and quotes escaped (the client unescapes them). */
const optionValue = (v: string) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;

async function withOptionFile<T>(target: MysqlTarget, work: (file: string) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-mysql-'));
  const file = path.join(dir, `client-${crypto.randomBytes(4).toString('hex')}.cnf`);
  try {
    fs.writeFileSync(
      file,
      [
        '[client]',
        `host=${optionValue(target.host)}`,
        `port=${target.port}`,
        `user=${optionValue(target.user)}`,
        `password=${optionValue(target.password)}`,
        // 127.0.0.1 means TCP to the client programs too (they would take "localhost" as the socket).
        'protocol=TCP',
        '',
      ].join('\n'),
      { mode: 0o600, flag: 'wx' },
    );
    return await work(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a client program; resolves when it exits 0, else throws with the end of what it printed on stderr. */
function run(program: string, args: string[], stdin: fs.ReadStream | null, stdout: fs.WriteStream | null) {
  return new Promise<void>((resolve, reject) => {
    const child = spawn(program, args, { stdio: [stdin ? 'pipe' : 'ignore', stdout ? 'pipe' : 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    if (stdin) stdin.pipe(child.stdin!);
    if (stdout) child.stdout!.pipe(stdout);
    child.on('error', (err) => reject(new ToolError(`${path.basename(program)} could not start: ${err.message}`)));
    child.on('close', (code, signal) => {
      const done = () =>
        code === 0
          ? resolve()
          : reject(
              new ToolError(
                `${path.basename(program)} failed (${signal ?? `exit ${code}`}): ${stderr.trim() || 'no message'}`,
              ),
            );
      if (stdout && !stdout.writableFinished) stdout.once('finish', done);
      else done();
    });
  });
}

/**
 * Dumps the database into `file` in one consistent snapshot (--single-transaction: InnoDB, no table
 * locks, the server goes on writing), with routines and triggers; binary columns as hex.
 */
export async function dumpDatabase(target: MysqlTarget, file: string): Promise<void> {
  const program = onPath(['mariadb-dump', 'mysqldump']);
  if (!program)
    throw new ToolError(
      'neither mariadb-dump nor mysqldump is on PATH: install the MariaDB or MySQL client programs (Debian: mariadb-client)',
    );
  await withOptionFile(target, async (options) => {
    const out = fs.createWriteStream(file, { mode: 0o600, flags: 'wx' });
    await run(
      program,
      [
        `--defaults-extra-file=${options}`,
        '--single-transaction',
        '--routines',
        '--triggers',
        '--hex-blob',
        '--no-tablespaces',
        '--default-character-set=utf8mb4',
        target.database,
      ],
      null,
      out,
    );
  });
}

/** Loads a dump made by dumpDatabase into the (empty) database. */
export async function loadDump(target: MysqlTarget, file: string): Promise<void> {
  const program = onPath(['mariadb', 'mysql']);
  if (!program)
    throw new ToolError(
      'neither mariadb nor mysql is on PATH: install the MariaDB or MySQL client programs (Debian: mariadb-client)',
    );
  await withOptionFile(target, (options) =>
    run(
      program,
      [`--defaults-extra-file=${options}`, '--default-character-set=utf8mb4', `--database=${target.database}`],
      fs.createReadStream(file),
      null,
    ),
  );
}
