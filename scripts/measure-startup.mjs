#!/usr/bin/env node
/**
 * Start-up time and memory of the server, as `npm start` runs it (node --max-old-space-size=192):
 * the time from spawning the process to the first successful GET /readyz (the database answers), and its RSS (VmRSS from
 * /proc) right then and one second later, and the CPU time the process had used by then (user +
 * system, from /proc/<pid>/stat: steadier than the wall time on a shared machine). Plain JavaScript
 * so that it runs without tsx.
 *
 *   node scripts/measure-startup.mjs [--runs N] [--json] [compiled] [tsx] [tsx-nocache]
 *
 *   compiled     node dist/server.js (needs `npm run build`)
 *   tsx          node --import tsx server.ts (tsx's on-disk cache as a second start finds it)
 *   tsx-nocache  the same with TSX_DISABLE_CACHE=1 (every file compiled at start, as after a change)
 *
 * Each mode gets one DATA_DIR: a first start on it (migrations, signing key: reported separately),
 * then N restarts on the migrated database, the modes taking turns (a busy moment of a shared
 * machine then falls on all of them alike). SQLite, NODE_ENV=production, LOG_LEVEL=warn, PORT=0,
 * WORKERS=1 (the figures are one server process's). `--json` adds a last line with every figure
 * (`npm run bench` reads it). Exits 1 if a server does not answer /readyz within 30 s (CI uses
 * `--runs 1 compiled` as a smoke test of the build).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const HEAP = '--max-old-space-size=192';
const MODES = {
  compiled: { args: [HEAP, 'dist/server.js'], env: {} },
  tsx: { args: [HEAP, '--import', 'tsx', 'server.ts'], env: {} },
  'tsx-nocache': { args: [HEAP, '--import', 'tsx', 'server.ts'], env: { TSX_DISABLE_CACHE: '1' } },
};

const argv = process.argv.slice(2);
let runs = 5;
let json = false;
const modes = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--runs') runs = Number(argv[++i]);
  else if (argv[i] === '--json') json = true;
  else if (argv[i] in MODES) modes.push(argv[i]);
  else {
    console.error(`unknown argument ${argv[i]}; modes: ${Object.keys(MODES).join(', ')}`);
    process.exit(2);
  }
}
if (!modes.length) modes.push('compiled', 'tsx');
if (!(runs >= 0)) throw new Error('--runs must be a number');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rssMb = (pid) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
};

async function startOnce(mode, dataDir) {
  const { args, env } = MODES[mode];
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: {
      ...process.env,
      NODE_OPTIONS: '',
      PORT: '0',
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      DATABASE_URL: '',
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      // One server process (no cluster): its pid's RSS and CPU are the server's (docs/decisions.md, "Workers").
      WORKERS: '1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  try {
    const deadline = Date.now() + 30_000;
    let port;
    while (!port) {
      port = /listening on http:\/\/[^:]+:(\d+)/.exec(out)?.[1];
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`${mode}: no "listening" line (exit ${child.exitCode}):\n${out}`);
      if (!port) await sleep(2);
    }
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`);
        await res.arrayBuffer();
        if (res.ok) break;
      } catch {
        /* not yet */
      }
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`${mode}: /readyz did not answer 200:\n${out}`);
      await sleep(2);
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const cpu = cpuMs(child.pid);
    const rss = rssMb(child.pid);
    await sleep(1000);
    const rssLater = rssMb(child.pid);
    return { ms, cpu, rss, rssLater };
  } finally {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  }
}

const cpuMs = (pid) => {
  const fields = fs
    .readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /, '')
    .split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in USER_HZ (100/s)
};

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (xs, digits = 0) =>
  `median ${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

let failed = false;
const dirs = Object.fromEntries(
  modes.map((mode) => [mode, fs.mkdtempSync(path.join(os.tmpdir(), `portico-startup-${mode}-`))]),
);
const firsts = {};
const restarts = Object.fromEntries(modes.map((mode) => [mode, []]));
try {
  for (const mode of modes) {
    const first = await startOnce(mode, dirs[mode]);
    firsts[mode] = first;
    console.log(
      `${mode}: first start (empty database) ${first.ms.toFixed(0)} ms, CPU ${first.cpu} ms, RSS ${first.rss} MB, ${first.rssLater} MB 1 s later`,
    );
  }
  for (let i = 0; i < runs; i++) for (const mode of modes) restarts[mode].push(await startOnce(mode, dirs[mode]));
} catch (err) {
  failed = true;
  console.error(String(err.message ?? err));
} finally {
  for (const dir of Object.values(dirs)) fs.rmSync(dir, { recursive: true, force: true });
}
const summary = {};
for (const mode of modes) {
  const results = restarts[mode];
  if (!results.length) continue;
  summary[mode] = {
    first: firsts[mode],
    runs: results.length,
    medianMs: median(results.map((r) => r.ms)),
    medianCpuMs: median(results.map((r) => r.cpu)),
    medianRssMb: median(results.map((r) => r.rss)),
  };
  console.log(
    `${mode}: ${results.length} restarts: start → /readyz ms ${fmt(results.map((r) => r.ms))}; CPU ms ${fmt(results.map((r) => r.cpu))}; RSS MB ${fmt(results.map((r) => r.rss))}; 1 s later ${fmt(results.map((r) => r.rssLater))}`,
  );
  console.log(`${mode}:   each: ${results.map((r) => `${r.ms.toFixed(0)} ms/${r.cpu} cpu/${r.rss} MB`).join(', ')}`);
}
if (json) console.log(JSON.stringify(summary));
process.exitCode = failed ? 1 : 0;
