/**
 * The servers under measurement run as processes of their own, so that their memory (VmHWM) and
 * CPU are theirs alone and the load generator does not share their event loop. Portico runs as
 * `npm start` runs it: the compiled `dist/server.js`, built once per bench run. A TypeScript entry
 * point (the baseline) is started with tsx's loader in the node process itself (not through the tsx
 * CLI, which would put a wrapper process in between and make the pid the wrong one to read).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../helpers/process.ts';
import { cpuMsOf } from './load.ts';

export interface ServerProcess {
  base: string;
  pid: number;
  /** Peak resident set size so far (VmHWM), in MiB. */
  peakRssMb(): number;
  /** Resident set size now (VmRSS), in MiB. */
  rssMb(): number;
  /** Starts the peak (VmHWM) again from the current RSS (Linux: clear_refs). */
  resetPeakRss(): void;
  /** CPU time used so far, in milliseconds. */
  cpuMs(): number;
  /** The end of its output (for a report when it did not start or crashed). */
  logTail(): string;
  /** The errors it logged (level error or fatal), counted by code and message. */
  loggedErrors(): string[];
  stop(): Promise<void>;
}

function statusField(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** The pids of a process's children (Linux /proc): the cluster workers of a primary. */
export function childPids(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Peak resident set size (VmHWM) of any process, in MiB. */
export const peakRssMbOf = (pid: number): number => statusField(pid, 'VmHWM');

/**
 * Starts an entry point (a `.ts` one through tsx's loader, a `.js` one as it is) and waits until its
 * log says which port it listens on. Output goes to a file (not a pipe the bench would have to drain
 * while measuring).
 */
export async function startProcess(
  script: string,
  env: Record<string, string>,
  logFile: string,
  listening: RegExp,
  nodeArgs: string[] = [],
  timeoutMs = 30_000,
): Promise<ServerProcess> {
  const out = fs.openSync(logFile, 'w');
  const loader = script.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, ...loader, script], {
    cwd: projectRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  const started = Date.now();
  let port: string | undefined;
  while (!port) {
    const m = listening.exec(fs.readFileSync(logFile, 'utf8'));
    if (m) port = m[1];
    else if (child.exitCode !== null || Date.now() - started > timeoutMs) {
      child.kill('SIGKILL');
      throw new Error(
        `${script} did not start (exit ${child.exitCode}):\n${fs.readFileSync(logFile, 'utf8').slice(-3000)}`,
      );
    } else await new Promise((r) => setTimeout(r, 50));
  }
  const pid = child.pid!;
  return {
    logTail: () => fs.readFileSync(logFile, 'utf8').slice(-4000),
    loggedErrors: () => {
      const counts = new Map<string, number>();
      for (const line of fs.readFileSync(logFile, 'utf8').split('\n')) {
        if (!/"level":(50|60)/.test(line)) continue;
        const err = (JSON.parse(line) as { err?: { code?: string; message?: string } }).err;
        const key = `${err?.code ?? 'error'}: ${(err?.message ?? '').replace(/^.* - /, '').slice(0, 120)}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      return [...counts].map(([k, n]) => `${n} × ${k}`);
    },
    base: `http://127.0.0.1:${port}`,
    pid,
    peakRssMb: () => statusField(pid, 'VmHWM'),
    rssMb: () => statusField(pid, 'VmRSS'),
    resetPeakRss: () => fs.writeFileSync(`/proc/${pid}/clear_refs`, '5'),
    cpuMs: () => cpuMsOf(pid),
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** `npm start` (package.json) as node options and entry point, so the bench measures the server as it is run. */
export function startCommand(): { nodeArgs: string[]; script: string } {
  const start = (
    JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { scripts: { start: string } }
  ).scripts.start.split(/\s+/);
  const entry = start.findIndex((arg) => /\.[jt]s$/.test(arg));
  if (start[0] !== 'node' || entry < 0)
    throw new Error(`npm start is not "node [options] <entry point>": ${start.join(' ')}`);
  return { nodeArgs: start.slice(1, entry), script: start[entry]! };
}

let built = false;

/** `npm run build` once per bench process, so that dist/ is the code of this checkout. */
export function buildOnce(): void {
  if (built) return;
  const build = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: projectRoot, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}${build.stderr}`);
  built = true;
}

/**
 * Portico's own server, as in production (`npm start`: the compiled build, its node options): its own pool, migrations,
 * signing key, sessions in the database. BENCH_SERVER_NODE_ARGS adds node options (for example
 * `--cpu-prof --cpu-prof-dir=/tmp/p` to see where the server's time goes).
 */
export function startPortico(o: {
  databaseUrl: string;
  dataDir: string;
  logLevel: string;
  env?: Record<string, string>;
}): Promise<ServerProcess> {
  buildOnce();
  const start = startCommand();
  return startProcess(
    start.script,
    {
      NODE_ENV: 'production',
      PORT: '0',
      HOST: '127.0.0.1',
      DATABASE_URL: o.databaseUrl,
      DATA_DIR: o.dataDir,
      SESSION_SECRET: 'bench-session-secret-that-is-long-enough-0123456789',
      // The load generator plays many clients behind a local proxy: X-Forwarded-For names each one
      // (the offline portal's per-client rate limit would otherwise stop the run after 120 uploads).
      TRUST_PROXY: 'loopback',
      LOG_LEVEL: o.logLevel,
      BASE_URL: '',
      // One process serving (no cluster) unless a figure asks for workers (workers.ts): the pid is then
      // the server itself, so its VmHWM and CPU are the whole server's.
      WORKERS: '1',
      ...o.env,
    },
    path.join(o.dataDir, 'server.log'),
    /Portico is listening on http:\/\/[^:\s]+:(\d+)/,
    [...start.nodeArgs, ...(process.env.BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)],
  );
}

/** The no-database baseline (baseline-server.ts). */
export function startBaseline(dir: string): Promise<ServerProcess> {
  return startProcess(
    'test/bench/baseline-server.ts',
    { NODE_ENV: 'production' },
    path.join(dir, 'baseline.log'),
    /baseline listening on (\d+)/,
  );
}
