/**
 * WORKERS (server.ts as a node:cluster, docs/decisions.md "Workers"): the online check back to back
 * against `npm start` with WORKERS=1 and with WORKERS=2, on the same database and the same signed
 * check requests, and the peak RSS of every worker. The target (issue 15): with 2 workers on two
 * cores, at least 1.6× the throughput of 1; under 150 MB peak RSS per worker.
 *
 * The load generator runs in the bench's own process on the same machine: on two cores it takes CPU
 * the workers would otherwise have, so the ratio is a lower bound of what a separate client would see.
 */
import { runLoad, cpuMsOf, type Figures } from './load.ts';
import { apiCall } from './online.ts';
import { childPids, peakRssMbOf, startPortico } from './processes.ts';

const ownCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

export interface WorkersRun {
  workers: number;
  check: Figures;
  /** VmHWM of each process serving: the workers (WORKERS > 1), or the process itself (WORKERS=1). */
  servingPeakRssMb: number[];
  /** VmHWM of the primary (WORKERS > 1 only; it serves no requests). */
  primaryPeakRssMb?: number;
}

export interface WorkersFigures {
  runs: WorkersRun[];
}

export async function measureWorkers(o: {
  databaseUrl: string;
  dataDir: string;
  logLevel: string;
  checks: string[];
  concurrency: number;
  maxSeconds: number;
  counts: number[];
}): Promise<WorkersFigures> {
  const runs: WorkersRun[] = [];
  for (const workers of o.counts) {
    const server = await startPortico({
      databaseUrl: o.databaseUrl,
      dataDir: o.dataDir,
      logLevel: o.logLevel,
      env: { WORKERS: String(workers) },
    });
    try {
      const serving = workers > 1 ? childPids(server.pid) : [server.pid];
      if (serving.length !== workers) throw new Error(`expected ${workers} serving processes, found ${serving.length}`);
      const check = await runLoad({
        base: server.base,
        concurrency: o.concurrency,
        maxRequests: 200_000,
        maxSeconds: o.maxSeconds,
        warmup: o.concurrency * 20,
        // The primary's CPU (it hands connections to the workers) next to the workers' together.
        // Last, the load generator's own CPU (this process): what it takes from the cores the workers share.
        cpu: () => [
          ...(workers > 1
            ? [cpuMsOf(server.pid), serving.reduce((sum, pid) => sum + cpuMsOf(pid), 0)]
            : [server.cpuMs()]),
          ownCpuMs(),
        ],
        call: (i) => apiCall('check', o.checks[i % o.checks.length]!, i),
      });
      runs.push({
        workers,
        check,
        servingPeakRssMb: serving.map(peakRssMbOf),
        primaryPeakRssMb: workers > 1 ? server.peakRssMb() : undefined,
      });
    } finally {
      await server.stop();
    }
  }
  return { runs };
}
