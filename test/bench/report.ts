/** Prints the figures: one table per database, each figure next to its baseline and the ratio. */
import type { Figures } from './load.ts';

export interface Row {
  name: string;
  fig: Figures | null;
  baseName: string;
  base: Figures | null;
  /** Shown instead of figures when there is nothing to measure yet. */
  note?: string;
}

export interface Section {
  title: string;
  rows: Row[];
}

const num = (n: number, width: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '–').padStart(width);
const ms = (n: number, width: number) => num(n, width, n < 10 ? 2 : 1);

/** req/s of the figure over req/s of its baseline (higher is better), and p50 over p50 (lower is better). */
export function ratios(r: Row): { rps: number; p50: number } {
  if (!r.fig || !r.base) return { rps: NaN, p50: NaN };
  return { rps: r.fig.rps / r.base.rps, p50: r.fig.p50 / r.base.p50 };
}

const cpu = (f: Figures | null, width: number) =>
  (f?.cpuMs ? f.cpuMs.map((c) => c.toFixed(c < 10 ? 2 : 1)).join('+') : '').padStart(width);

export function printTable(title: string, subtitle: string[], sections: Section[]): void {
  const W = 46;
  const B = 38;
  const line = '─'.repeat(W + 37 + 3 + B + 35 + 18);
  console.log(`\n${title}`);
  for (const s of subtitle) console.log(`  ${s}`);
  console.log(line);
  console.log(
    `${'figure'.padEnd(W)} ${'req/s'.padStart(7)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'cpu ms'.padStart(11)} │ ${'baseline'.padEnd(B)} ${'req/s'.padStart(7)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'cpu ms'.padStart(11)} │ ${'req/s ÷'.padStart(8)} ${'p50 ×'.padStart(7)}`,
  );
  for (const section of sections) {
    console.log(line);
    console.log(section.title);
    for (const r of section.rows) {
      if (r.note) {
        console.log(`${r.name.padEnd(W)} ${r.note}`);
        continue;
      }
      const f = r.fig!;
      const b = r.base;
      const q = ratios(r);
      const failed = f.failed ? `  (${f.failed} failed: ${f.firstFailure})` : '';
      console.log(
        `${r.name.padEnd(W)} ${num(f.rps, 7)} ${ms(f.p50, 8)} ${ms(f.p99, 8)} ${cpu(f, 11)} │ ${r.baseName.padEnd(B)} ${b ? num(b.rps, 7) : ''.padStart(7)} ${b ? ms(b.p50, 7) : ''.padStart(7)} ${b ? ms(b.p99, 7) : ''.padStart(7)} ${cpu(b, 11)} │ ${num(q.rps, 8, 2)} ${num(q.p50, 6, 2)}×${failed}`,
      );
    }
  }
  console.log(line);
}

export interface Verdict {
  target: string;
  /** One cell per database. */
  cells: string[];
}

export function printVerdicts(databases: string[], verdicts: Verdict[]): void {
  const T = 62;
  const C = 34;
  console.log(`\nTargets (informational: a benchmark is not a test)`);
  console.log(`${'target'.padEnd(T)} ${databases.map((d) => d.padEnd(C)).join(' ')}`);
  for (const v of verdicts) console.log(`${v.target.padEnd(T)} ${v.cells.map((c) => c.padEnd(C)).join(' ')}`);
}
