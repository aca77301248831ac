import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { runPortico } from '../../app/cli/portico.ts';
import { projectRoot } from './process.ts';

/**
 * The operator CLI (app/cli/portico.ts) for tests: `portico()` runs it inside the test process
 * (runPortico, what the program calls: same commands, output and exit codes, without a second of
 * start-up each); `porticoProcess()` runs the real program as a child process (node with the tsx
 * loader on portico.ts, or `node dist/portico.js` with `built`).
 */

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

/** The environment of an installation: its database and DATA_DIR, nothing inherited that could change the answers. */
export function installationEnv(databaseUrl: string, dataDir: string, extra: Record<string, string> = {}) {
  return {
    NODE_ENV: 'test',
    DATABASE_URL: databaseUrl,
    DATA_DIR: dataDir,
    BASE_URL: 'http://portico.test',
    LOG_LEVEL: 'warn',
    PATH: process.env.PATH ?? '',
    ...extra,
  };
}

export async function portico(env: Record<string, string>, ...args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const status = await runPortico(args, {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    env,
  });
  return { status, stdout, stderr };
}

export function porticoProcess(env: Record<string, string>, args: string[], { built = false } = {}): Promise<Run> {
  const entry = built ? [path.join('dist', 'portico.js')] : ['--import', 'tsx', 'portico.ts'];
  const child = spawn(process.execPath, [...entry, ...args], { cwd: projectRoot, env });
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d.toString()));
  child.stderr.on('data', (d) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      process.off('exit', reap);
      resolve({ status: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/** Asserts exit code 0 and passes the run on. */
export function ok(run: Run): Run {
  if (run.status !== 0) throw new Error(`exit ${run.status}\n${run.stdout}\n${run.stderr}`);
  return run;
}

/**
 * Unpacks a backup archive, lets `change` edit the unpacked files (a folder), and packs them again
 * into a new archive (what someone tampering with a backup would do). Returns the new archive's path.
 */
export async function repack(archive: string, change: (dir: string) => void): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-repack-'));
  await tar.extract({ file: archive, cwd: dir });
  change(dir);
  const list = (sub: string): string[] =>
    fs
      .readdirSync(path.join(dir, sub), { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? list(path.join(sub, e.name)) : [path.join(sub, e.name)]));
  const out = `${archive}.repacked-${fs.readdirSync(path.dirname(archive)).length}.tgz`;
  await tar.create({ gzip: true, cwd: dir, file: out, portable: true }, list(''));
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}
