import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureSigningKey } from '../../app/services/signing-keys.ts';
import { createAccount } from './app.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';

export const projectRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Runs one of the project's TypeScript entry points (server.ts, a script) as a real child process. */
export function runScript(
  script: string,
  env: Record<string, string>,
): ChildProcessWithoutNullStreams & { output: () => string } {
  // node itself with the tsx loader (not the tsx wrapper), so a signal reaches the real process.
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: projectRoot,
    env: { ...process.env, ...env },
  });
  // A test run that ends early (failure, Ctrl-C) must not leave servers running behind it.
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  child.once('exit', () => process.off('exit', reap));
  let out = '';
  child.stdout.on('data', (d) => (out += d.toString()));
  child.stderr.on('data', (d) => (out += d.toString()));
  return Object.assign(child, { output: () => out });
}

export function waitFor(
  child: ReturnType<typeof runScript>,
  pattern: RegExp,
  timeoutMs = 20_000,
): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const timer = setInterval(() => {
      const match = pattern.exec(child.output());
      if (match) {
        clearInterval(timer);
        resolve(match);
      } else if (child.exitCode !== null || child.signalCode !== null || Date.now() - started > timeoutMs) {
        clearInterval(timer);
        reject(new Error(`did not see ${pattern} (exit ${child.exitCode}); output:\n${child.output()}`));
      }
    }, 50);
  });
}

export function exitOf(child: ReturnType<typeof runScript>): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

/** A child process from runScript (server.ts, a script). */
export type ServerProcess = ReturnType<typeof runScript>;

/** Sends `signal` and waits until the process has exited (at once if it already has). */
export async function stopProcess(child: ServerProcess, signal: NodeJS.Signals) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

/** What a suite of real server processes shares: its own database, its own DATA_DIR, the processes it started. */
export interface ProcessWorld {
  database: TestDatabase;
  dataDir: string;
  children: ServerProcess[];
}

export interface ProcessWorldOptions {
  /** Migrate the new database before the test (default true); false: the first server.ts migrates it. */
  migrate?: boolean;
  /** The mysql:// server to create the database on (the Galera tests: one node); default DATABASE_URL's. */
  server?: string;
  /** Install before the servers start (a signing key, and an admin unless 'key'): no setup link is printed. */
  installed?: 'key' | 'key+admin';
  /** More set-up, after the database and DATA_DIR exist (seed rows, start a mail server …). */
  setUp?: (world: ProcessWorld) => Promise<void>;
  /** Runs first in `after`, before left-over processes are killed (stop servers gracefully and check how they ended). */
  tearDown?: (world: ProcessWorld) => Promise<void>;
}

/**
 * Registers the suite's hooks for a ProcessWorld named `name` (the DATA_DIR's prefix): `before` creates
 * the database and DATA_DIR; `after` kills every process still running (SIGKILL), drops the database
 * and removes the DATA_DIR. Read the fields inside tests, after `before` ran.
 */
export function useProcessWorld(name: string, options: ProcessWorldOptions = {}): ProcessWorld {
  const world = { children: [] as ServerProcess[] } as ProcessWorld;
  before(async () => {
    world.database = await createTestDatabase({ migrate: options.migrate, server: options.server });
    world.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `portico-${name}-`));
    if (options.installed) {
      await ensureSigningKey(world.database.db, world.dataDir, new Date());
      if (options.installed === 'key+admin') await createAccount(world.database.db, { role: 'admin' });
    }
    await options.setUp?.(world);
  });
  after(async () => {
    try {
      if (world.database) await options.tearDown?.(world);
    } finally {
      await Promise.all(world.children.map((c) => stopProcess(c, 'SIGKILL')));
      await world.database?.drop();
      if (world.dataDir) fs.rmSync(world.dataDir, { recursive: true, force: true });
    }
  });
  return world;
}

/**
 * The environment of a server.ts of `world`: any free port on loopback, its DATA_DIR and database,
 * warnings and worse logged, BASE_URL unset (it announces its own address); `env` adds or overrides.
 */
export function serverEnv(world: ProcessWorld, env: Record<string, string> = {}): Record<string, string> {
  return {
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: world.dataDir,
    DATABASE_URL: world.database.url,
    LOG_LEVEL: 'warn',
    BASE_URL: '',
    ...env,
  };
}

/** Starts server.ts of `world` (serverEnv) without waiting for it; `after` kills it if the test did not stop it. */
export function spawnServer(world: ProcessWorld, env: Record<string, string> = {}): ServerProcess {
  const child = runScript('server.ts', serverEnv(world, env));
  world.children.push(child);
  return child;
}

/** Starts server.ts of `world` and waits until it listens: the process and its address (on 127.0.0.1). */
export async function startServer(
  world: ProcessWorld,
  env: Record<string, string> = {},
  { timeoutMs = 30_000 } = {},
): Promise<{ child: ServerProcess; base: string }> {
  const child = spawnServer(world, env);
  const [, url] = await waitFor(child, /listening on (http:\/\/\S+)/, timeoutMs);
  return { child, base: url!.replace('localhost', '127.0.0.1') };
}
