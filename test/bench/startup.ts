import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../helpers/process.ts';
import { buildOnce } from './processes.ts';

/** One mode's start-up figures from scripts/measure-startup.mjs (medians over the restarts). */
export interface StartupMode {
  runs: number;
  medianMs: number;
  medianCpuMs: number;
  medianRssMb: number;
  first: { ms: number; cpu: number; rss: number };
}

export interface StartupFigures {
  compiled: StartupMode;
  tsx: StartupMode;
}

/**
 * Start-up to the first 200 of `/readyz` of the compiled server (`npm start`) and of the same server
 * through tsx (`npm run dev`, what `npm start` ran before the build), restarts on a migrated SQLite
 * database taking turns: scripts/measure-startup.mjs, the tool behind docs/performance.md's
 * start-up table, asked for its figures as JSON.
 */
export function measureStartup(runs: number): StartupFigures {
  buildOnce();
  const script = path.join(projectRoot, 'scripts', 'measure-startup.mjs');
  const out = spawnSync(process.execPath, [script, '--runs', String(runs), '--json', 'compiled', 'tsx'], {
    cwd: projectRoot,
    encoding: 'utf8',
    timeout: 5 * 60_000,
  });
  const last = out.stdout.trim().split('\n').at(-1) ?? '';
  if (out.status !== 0 || !last.startsWith('{')) throw new Error(`measure-startup failed:\n${out.stdout}${out.stderr}`);
  return JSON.parse(last) as StartupFigures;
}

export function printStartup(f: StartupFigures): void {
  console.log('\nStart-up to /readyz (SQLite, migrated database; medians of the restarts, modes taking turns)');
  for (const [name, m] of [
    ['compiled (npm start)', f.compiled],
    ['tsx (npm run dev)', f.tsx],
  ] as const) {
    console.log(
      `  ${name.padEnd(22)} ${m.medianMs.toFixed(0).padStart(5)} ms, CPU ${m.medianCpuMs.toFixed(0).padStart(5)} ms, RSS ${m.medianRssMb.toFixed(0)} MB (${m.runs} restarts; first start ${m.first.ms.toFixed(0)} ms)`,
    );
  }
}
