/**
 * The Galera figures (issue 15): Portico on a multi-primary MariaDB Galera cluster (GALERA_URLS, one
 * mysql:// URL per node, see test/helpers/galera.ts and .ci/galera.sh), two server processes (the
 * compiled dist/server.js, as processes.ts starts it) each on another node, one scratch database.
 *
 * 1. Racing activations: rounds of 50 simultaneous offline activations of a new 5-seat license, each
 *    browser opening its session through one process and uploading through the other, as the stress
 *    test does (test/stress/galera.test.ts) — but counted instead of asserted: rounds with exactly 5
 *    granted, 45 "no seats" and the rows exact, answers of 500 and more, and the conflicts the cluster
 *    resolved meanwhile (certification failures + brute-force aborts, each one a transaction Portico
 *    ran again: app/lib/transaction.ts does not log its retries).
 * 2. Online check throughput: POST /api/v1/check back to back, 32 connections split over the two
 *    processes; the same method (two processes, one database) on the single MariaDB server of
 *    DATABASE_URL when it is set, for the ratio.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { keysDir } from '../../app/lib/key-files.ts';
import { ensureSigningKey } from '../../app/services/signing-keys.ts';
import { PRODUCT, assertFullLicense, openBrowser, range, seedVendor, tally } from '../helpers/concurrency.ts';
import {
  EXACT_ROUND,
  RACERS,
  RACE_SEATS,
  clusterConflicts,
  galeraRaceRound,
  galeraUrls,
  nodeAdmin,
  nodeUrl,
} from '../helpers/galera.ts';
import { mysqlDatabase, scratchDir, serverPidOf, type BenchDatabase } from './fixture.ts';
import { cpuMsOf, fetchOnce, runLoad, type Figures } from './load.ts';
import { apiCall } from './online.ts';
import { startPortico, type ServerProcess } from './processes.ts';
import { printTable, type Verdict } from './report.ts';
import { activationRequest, checkRequest, newDevice } from './scenarios.ts';

/** Devices activated online for the check run, 5 per license (the API allows 120 requests a minute per license). */
const CHECK_DEVICES = 400;
const CHECK_SEATS = 5;

export interface RaceFigures {
  rounds: number;
  /** Rounds with exactly RACE_SEATS granted, the others "no seats", and the rows in the database exact. */
  exactRounds: number;
  /** Every answer of every round: "<status> <what the page said>". */
  answers: Record<string, number>;
  /** Answers with status 500 or more (or no answer at all). */
  serverErrors: number;
  /** Certification failures + brute-force aborts on all nodes during the rounds. */
  conflicts: number;
  /** The first round that was not exact, and why. */
  firstMiss?: string;
  seconds: number;
}

export interface TwoProcessRun {
  label: string;
  check: Figures;
  /** Galera only: certification failures + brute-force aborts during the check run. */
  conflicts?: number;
  loggedErrors: string[];
}

export interface GaleraFigures {
  label: string;
  race: RaceFigures;
  galera: TwoProcessRun;
  /** The same check run on single-node MariaDB (DATABASE_URL), when it is set. */
  single?: TwoProcessRun;
}

type AddLicense = Awaited<ReturnType<typeof seedVendor>>;

const progress = (s: string) => process.stderr.write(`· ${s}\n`);

/** Status of every node: all must be ready and synced in one cluster. Returns the cluster size. */
async function clusterSize(): Promise<number> {
  let size = 0;
  for (const i of galeraUrls.keys()) {
    const admin = nodeAdmin(i);
    try {
      const [rows] = await admin.raw(
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_cluster_size', 'wsrep_local_state_comment')",
      );
      const s = Object.fromEntries(
        (rows as { Variable_name: string; Value: string }[]).map((r) => [r.Variable_name, r.Value]),
      );
      if (s.wsrep_ready !== 'ON' || s.wsrep_local_state_comment !== 'Synced')
        throw new Error(`Galera node ${galeraUrls[i]} is not ready: ${JSON.stringify(s)}`);
      size = Number(s.wsrep_cluster_size);
    } finally {
      await admin.destroy();
    }
  }
  return size;
}

/** The mariadbd processes of the nodes, when they run on this machine (their CPU per request is reported). */
async function nodePids(): Promise<number[]> {
  const pids: number[] = [];
  for (const i of galeraUrls.keys()) {
    const admin = nodeAdmin(i);
    try {
      const pid = await serverPidOf(admin);
      if (pid) pids.push(pid);
    } finally {
      await admin.destroy();
    }
  }
  return pids;
}

/**
 * Two Portico processes on one database: the first on `urls[0]`, the second on `urls[1]` (two nodes,
 * or the same server twice). Each has a data folder of its own (its log) holding the same signing key.
 */
async function startTwo(d: BenchDatabase, urls: [string, string], dir: string, logLevel: string) {
  const dataDirs = [path.join(dir, 'p1'), path.join(dir, 'p2')];
  await ensureSigningKey(d.db, dataDirs[0]!, new Date());
  fs.cpSync(keysDir(dataDirs[0]!), keysDir(dataDirs[1]!), { recursive: true });
  const servers: ServerProcess[] = [];
  try {
    for (const [i, url] of urls.entries())
      servers.push(
        await startPortico({
          databaseUrl: url,
          dataDir: dataDirs[i]!,
          logLevel,
          // Every racing upload gets a slot: the seats are measured here, not the upload cap.
          env: { OFFLINE_UPLOAD_SLOTS: String(RACERS) },
        }),
      );
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop()));
    throw err;
  }
  return servers;
}

/** Rounds of galeraRaceRound (test/helpers/galera.ts) through both processes, counted instead of asserted. */
async function racingRounds(
  db: Knex,
  servers: ServerProcess[],
  addLicense: AddLicense,
  rounds: number,
): Promise<RaceFigures> {
  const bases = servers.map((s) => s.base);
  const browsers = await Promise.all(range(RACERS).map((i) => openBrowser(bases[i % 2]!)));
  const conflictsBefore = await clusterConflicts();
  const started = Date.now();
  const all: string[] = [];
  let exactRounds = 0;
  let firstMiss: string | undefined;
  for (let round = 0; round < rounds; round++) {
    const { licenseId, answers, granted } = await galeraRaceRound(bases, browsers, addLicense, round);
    all.push(...answers);
    const label = `round ${round + 1}`;
    try {
      assert.deepEqual(tally(answers), EXACT_ROUND, label);
      await assertFullLicense(db, licenseId, RACE_SEATS, RACERS, granted, label);
      exactRounds += 1;
    } catch (err) {
      firstMiss ??= (err as Error).message.split('\n')[0];
    }
  }
  const status = (answer: string) => Number(answer.split(' ')[0]);
  return {
    rounds,
    exactRounds,
    answers: tally(all),
    serverErrors: all.filter((a) => status(a) >= 500 || status(a) === 0).length,
    conflicts: (await clusterConflicts()) - conflictsBefore,
    firstMiss,
    seconds: (Date.now() - started) / 1000,
  };
}

/** CHECK_DEVICES devices activated online, alternately through the processes: a signed check request of each. */
async function activatedChecks(addLicense: AddLicense, servers: ServerProcess[]): Promise<string[]> {
  const bases = servers.map((s) => s.base);
  const licenses = await Promise.all(
    range(CHECK_DEVICES / CHECK_SEATS).map(() => addLicense({ maxActivations: CHECK_SEATS })),
  );
  const checks: string[] = [];
  // Activated a few at a time, alternately through both processes.
  for (let start = 0; start < CHECK_DEVICES; start += 20) {
    await Promise.all(
      range(20).map(async (k) => {
        const i = start + k;
        const license = licenses[i % licenses.length]!;
        const device = newDevice();
        const r = await fetchOnce(
          bases[i % 2]!,
          apiCall('activate', activationRequest(device, PRODUCT, license.licenseKey), i),
        );
        if (r.status !== 200) throw new Error(`online activation: HTTP ${r.status} ${r.body.slice(0, 300)}`);
        const { activationId } = JSON.parse(r.body) as { activationId: number };
        checks.push(checkRequest(device, PRODUCT, license.id, activationId));
      }),
    );
  }
  const sample = await fetchOnce(bases[1]!, apiCall('check', checks[0]!, 0));
  if (sample.status !== 200 || !/"valid":true/.test(sample.body))
    throw new Error(`online check does not work: HTTP ${sample.status} ${sample.body.slice(0, 300)}`);
  return checks;
}

/** Online checks back to back, `concurrency` connections split over the processes; their CPU and the database's. */
function checkThroughput(
  servers: ServerProcess[],
  checks: string[],
  databasePids: number[],
  o: { concurrency: number; seconds: number },
): Promise<Figures> {
  return runLoad({
    base: servers.map((s) => s.base),
    concurrency: o.concurrency,
    maxRequests: 200_000,
    maxSeconds: o.seconds,
    warmup: o.concurrency * 10,
    cpu: () => [
      servers.reduce((sum, s) => sum + s.cpuMs(), 0),
      ...(databasePids.length ? [databasePids.reduce((sum, pid) => sum + cpuMsOf(pid), 0)] : []),
    ],
    // Client addresses after the activations' (the API limits requests per address).
    call: (i) => apiCall('check', checks[i % checks.length]!, CHECK_DEVICES + i),
  });
}

/** A scratch database named for this run (several benches may share a server): it contains "bench". */
const scratchName = (kind: string) => `portico_bench_${kind}_${process.pid}`;

/** Two processes on database `d` (through `urls`) and a seeded product: `work` with them, then both stopped and `d` dropped. */
async function withTwoProcesses<T>(
  d: BenchDatabase,
  urls: [string, string],
  dir: string,
  logLevel: string,
  work: (servers: ServerProcess[], addLicense: AddLicense) => Promise<T>,
): Promise<T> {
  try {
    const servers = await startTwo(d, urls, dir, logLevel);
    try {
      return await work(servers, await seedVendor(d.db, new Date()));
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  } finally {
    await d.drop();
  }
}

export async function measureGalera(o: {
  rounds: number;
  concurrency: number;
  seconds: number;
  logLevel: string;
  /** DATABASE_URL when it names MySQL/MariaDB: the single-node figure. */
  singleNodeUrl?: string;
}): Promise<GaleraFigures> {
  if (galeraUrls.length < 2) throw new Error('GALERA_URLS must name at least two nodes');
  const size = await clusterSize();
  const dir = scratchDir('portico-bench-galera-');
  try {
    const name = scratchName('galera');
    const d = await mysqlDatabase(nodeUrl(0, name));
    const label = `Galera (${d.label}, ${size} nodes)`;
    const pids = await nodePids();
    const { race, galera } = await withTwoProcesses(
      d,
      [nodeUrl(0, name), nodeUrl(1, name)],
      path.join(dir, 'galera'),
      o.logLevel,
      async (servers, addLicense) => {
        progress(`${label}: ${o.rounds} rounds of ${RACERS} racing activations of a ${RACE_SEATS}-seat license`);
        const race = await racingRounds(d.db, servers, addLicense, o.rounds);
        progress(`${label}: online check, ${o.concurrency} connections over two processes on two nodes`);
        const checks = await activatedChecks(addLicense, servers);
        const conflictsBefore = await clusterConflicts();
        const check = await checkThroughput(servers, checks, pids, o);
        const conflicts = (await clusterConflicts()) - conflictsBefore;
        return { race, galera: { label, check, conflicts, loggedErrors: servers.flatMap((s) => s.loggedErrors()) } };
      },
    );

    let single: TwoProcessRun | undefined;
    if (o.singleNodeUrl) {
      const url = new URL(o.singleNodeUrl.replace(/^mariadb:/, 'mysql:'));
      url.pathname = `/${scratchName('single')}`;
      const s = await mysqlDatabase(url.toString());
      single = await withTwoProcesses(
        s,
        [url.toString(), url.toString()],
        path.join(dir, 'single'),
        o.logLevel,
        async (servers, addLicense) => {
          progress(`${s.label} (single node): online check, ${o.concurrency} connections over two processes`);
          const checks = await activatedChecks(addLicense, servers);
          const check = await checkThroughput(servers, checks, s.serverPid ? [s.serverPid] : [], o);
          return { label: s.label, check, loggedErrors: servers.flatMap((p) => p.loggedErrors()) };
        },
      );
    }
    return { label, race, galera, single };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The Galera table: racing activations, and the check throughput next to single-node MariaDB's. */
export function reportGalera(g: GaleraFigures, concurrency: number): void {
  printTable(
    `${g.label} — two Portico processes (dist/server.js, WORKERS=1 each) on two different nodes, one database, loopback`,
    [
      `online check: POST /api/v1/check back to back, ${concurrency} keep-alive connections split over the two processes, ${CHECK_DEVICES} devices activated online;`,
      'baseline: the same two processes, checks and connections on the single MariaDB server of DATABASE_URL;',
      'cpu ms: the two Portico processes together + the database servers (Galera: all its nodes on this machine)',
    ],
    [
      {
        title: 'online check on the cluster against single-node MariaDB, same method',
        rows: [
          g.single
            ? {
                name: `online check, ${concurrency} conn. over 2 nodes`,
                fig: g.galera.check,
                baseName: `${g.single.label}, one node`,
                base: g.single.check,
              }
            : {
                name: `online check, ${concurrency} conn. over 2 nodes`,
                fig: g.galera.check,
                baseName: 'not measured: DATABASE_URL unset',
                base: null,
              },
        ],
      },
    ],
  );
  const r = g.race;
  const answers = Object.entries(r.answers)
    .sort((a, b) => b[1] - a[1])
    .map(([answer, n]) => `${n} × ${answer}`)
    .join(', ');
  console.log(
    `  racing activations: ${r.rounds} rounds of ${RACERS} simultaneous uploads on a new ${RACE_SEATS}-seat license, each through the other node than its browser's session, in ${r.seconds.toFixed(1)} s`,
  );
  console.log(`  ${r.exactRounds} of ${r.rounds} rounds exact; answers: ${answers}`);
  if (r.firstMiss) console.log(`  ! first round not exact: ${r.firstMiss}`);
  console.log(
    `  conflicts the cluster resolved meanwhile (certification failures + brute-force aborts, each a transaction run again): ${r.conflicts}; during the online check run (warm-up included): ${g.galera.conflicts}`,
  );
  for (const run of [g.galera, ...(g.single ? [g.single] : [])])
    for (const e of run.loggedErrors) console.log(`  ! server errors (${run.label}): ${e}`);
}

/** Galera's rule for the check: the issue sets no ratio, so the bench asks for half of a single node's throughput. */
export const GALERA_CHECK_SHARE = 1 / 2;

export function galeraVerdicts(g: GaleraFigures, concurrency: number): Verdict[] {
  const mark = (ok: boolean, text: string) => `${ok ? 'met' : 'NOT met'}: ${text}`;
  const r = g.race;
  const c = g.galera.check;
  const failed = c.failed ? `, ${c.failed} failed` : '';
  return [
    {
      target: `${RACERS} racing activations × ${r.rounds} rounds: ${RACE_SEATS} granted each, 0 × 5xx`,
      cells: [
        mark(
          r.exactRounds === r.rounds && r.serverErrors === 0,
          `${r.exactRounds}/${r.rounds} rounds exact, ${r.serverErrors} × 5xx, ${r.conflicts} conflicts retried`,
        ),
      ],
    },
    {
      target: `online check, 2 nodes ≥ 1/2 of single-node MariaDB (${concurrency} conn.)`,
      cells: [
        g.single
          ? mark(
              c.rps / g.single.check.rps >= GALERA_CHECK_SHARE && !c.failed,
              `${(c.rps / g.single.check.rps).toFixed(2)} (${c.rps.toFixed(0)} / ${g.single.check.rps.toFixed(0)} req/s${failed})`,
            )
          : `figure: ${c.rps.toFixed(0)} req/s${failed} (no single node: DATABASE_URL unset)`,
      ],
    },
  ];
}
