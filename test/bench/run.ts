/**
 * `npm run bench`: speed figures printed next to a baseline measured in the same run, on this
 * machine, never as pass/fail tests. One table for SQLite and, when DATABASE_URL points at
 * MySQL/MariaDB, one for that server (a scratch database is created there and dropped).
 *
 * Portico runs as its own process (the compiled dist/server.js as `npm start` runs it, NODE_ENV=production) so that its peak RSS is its own
 * and the load generator does not share its event loop; the no-database baseline runs as another.
 * Loopback only; every run is bounded in requests and seconds (load.ts). See docs/performance.md.
 *
 * Knobs (environment): BENCH_SECONDS (per page and API figure, 3), BENCH_ACTIVATION_SECONDS (4),
 * BENCH_ACTIVATIONS (most activations per run, 8000), BENCH_CONCURRENCY (activation clients, 16),
 * BENCH_PAGE_CONCURRENCY (8), BENCH_LARGE (licenses in the large database, 1000000),
 * BENCH_LOG_LEVEL (the server's LOG_LEVEL, info), BENCH_DATABASES (sqlite,mysql,galera), BENCH_FLOOD_CLIENTS
 * (concurrent 8 MiB uploaders of the upload flood, 200), BENCH_FLOOD_SECONDS (per flood, 4), BENCH_WORKERS
 * (the WORKERS figure: WORKERS=1 against this many, 2; workers.ts), BENCH_STARTUP_RUNS (restarts per mode of
 * the start-up figure, compiled against tsx, 5; 0 leaves it out; startup.ts).
 *
 * Galera (galera.ts): with GALERA_URLS (one mysql:// URL per node, as .ci/galera.sh prints them) the
 * run ends with the cluster's figures — racing activations through two processes on two nodes, and
 * their online check next to the same on single-node MariaDB when DATABASE_URL is set — and their
 * verdicts. BENCH_GALERA_ROUNDS (20) rounds of racing activations; BENCH_DATABASES=galera runs only
 * the Galera part (the default sqlite,mysql,galera runs all that is configured).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { usingMysql } from '../helpers/db.ts';
import * as catalog from '../../app/models/catalog.ts';
import { generateLicenses } from './generate.ts';
import {
  ORDER_LICENSES,
  countLicenses,
  mysqlDatabase,
  refreshStatistics,
  scratchDir,
  seed,
  sqliteDatabase,
  type BenchDatabase,
  type Fixture,
} from './fixture.ts';
import { startBaseline, startPortico, type ServerProcess } from './processes.ts';
import { activationUploads, baselineActivations, login, offlineActivations, pages } from './scenarios.ts';
import { measureOnlineApi, type OnlineFigures } from './online.ts';
import { measureUploadFlood, type FloodFigures, type FloodRun } from './upload-flood.ts';
import { printTable, printVerdicts, ratios, type Verdict } from './report.ts';
import { cpuMsOf, type Figures } from './load.ts';
import { measureWorkers, type WorkersFigures } from './workers.ts';
import { measureStartup, printStartup, type StartupFigures } from './startup.ts';
import { galeraUrls } from '../helpers/galera.ts';
import { galeraVerdicts, measureGalera, reportGalera, type GaleraFigures } from './galera.ts';
import * as scale from './scale.ts';

const env = (name: string, fallback: number) =>
  process.env[name] && Number.isFinite(Number(process.env[name])) ? Number(process.env[name]) : fallback;
const SECONDS = env('BENCH_SECONDS', 3);
const ACTIVATION_SECONDS = env('BENCH_ACTIVATION_SECONDS', 4);
const ACTIVATIONS = env('BENCH_ACTIVATIONS', 8000);
const CONCURRENCY = env('BENCH_CONCURRENCY', 16);
const PAGE_CONCURRENCY = env('BENCH_PAGE_CONCURRENCY', 8);
const LARGE = env('BENCH_LARGE', 1_000_000);
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL ?? 'info';
const FLOOD_CLIENTS = env('BENCH_FLOOD_CLIENTS', 200);
const FLOOD_SECONDS = env('BENCH_FLOOD_SECONDS', 4);
/** Targets of the upload flood (docs/decisions.md, "Upload limits"). */
const FLOOD_RSS_GROWTH_MB = 64;
const FLOOD_PAGE_P99_MS = 500;
const SEATS = 10;
const WARMUP = CONCURRENCY * 10;
const ONLINE_CONCURRENCY = 32;
/** The cluster figure: WORKERS=1 against this many (BENCH_WORKERS, 2). Targets from issue 15. */
const WORKERS = env('BENCH_WORKERS', 2);
const WORKERS_SPEEDUP = 1.6;
const WORKER_RSS_MB = 150;
const BIG_ORDER_CONCURRENCY = 2;
/** Restarts per mode of the start-up figure (BENCH_STARTUP_RUNS; 0 leaves it out). */
const STARTUP_RUNS = env('BENCH_STARTUP_RUNS', 5);
const GALERA_ROUNDS = env('BENCH_GALERA_ROUNDS', 20);

const progress = (s: string) => process.stderr.write(`· ${s}\n`);
const thousands = (n: number) => n.toLocaleString('en-US');

interface Phase {
  licenses: number;
  activation: Figures;
  activationsRecorded: number;
  account: Figures;
  orderPage: Figures;
  portalKey: Figures;
  adminKey: Figures;
  /** Only in the large phase: the page of the order that holds most of the licenses. */
  bigOrderPage?: Figures;
  /** Only in the small phase: the License API figures (online.ts). */
  online?: OnlineFigures;
  /** Only in the small phase: GET /healthz of Portico, and of a bare Express app with the same handler. */
  health?: { portico: Figures; bare: Figures };
  /** The audit log, a license page and a dashboard with the phase's devices and audit events (scale.ts). */
  scale: scale.ScaleFigure[];
  /** Only in the large phase: online checks during the retention purge (scale.ts). */
  purge?: scale.PurgeFigures;
  /** What the server logged as errors during the phase. */
  errors: string[];
  peakRssMb: number;
}

async function measurePhase(
  d: BenchDatabase,
  f: Fixture,
  dataDir: string,
  pool: number,
  o: {
    adminKeys: string[];
    bigOrder?: number;
    online?: ServerProcess;
    scaleTargets: scale.ScaleTargets;
    purgeChecks?: string[];
  },
): Promise<Phase> {
  const licenses = await countLicenses(d.db);
  progress(`${d.label}: ${thousands(licenses)} licenses — starting dist/server.js`);
  // Every upload client gets a slot: these phases measure activations; the slots are the upload flood's.
  const server: ServerProcess = await startPortico({
    databaseUrl: d.url,
    dataDir,
    logLevel: LOG_LEVEL,
    env: { OFFLINE_UPLOAD_SLOTS: String(CONCURRENCY) },
  });
  const cpu = () => [server.cpuMs(), ...(d.serverPid ? [cpuMsOf(d.serverPid)] : [])];
  try {
    progress('preparing signed activation requests');
    const uploads = activationUploads(
      f.productCode,
      f.pools[pool]!,
      Math.min(ACTIVATIONS + WARMUP + 1, f.pools[pool]!.length * f.seatsPerLicense),
    );
    const before = Number((await d.db('devices').count({ n: '*' }).first())?.n ?? 0);
    progress(`offline activation, ${CONCURRENCY} clients`);
    const activation = await offlineActivations({
      base: server.base,
      concurrency: CONCURRENCY,
      uploads,
      warmup: WARMUP,
      maxSeconds: ACTIVATION_SECONDS,
      cpu,
    });
    const activationsRecorded = Number((await d.db('devices').count({ n: '*' }).first())?.n ?? 0) - before;

    const manager = await login(server.base, f.manager.email, f.manager.password);
    const admin = await login(server.base, f.admin.email, f.admin.password);
    const page = (cookie: string, paths: string[], mustContain?: RegExp, concurrency = PAGE_CONCURRENCY) =>
      pages({
        base: server.base,
        cookie,
        paths,
        concurrency,
        warmup: concurrency * 5,
        maxRequests: 100_000,
        maxSeconds: SECONDS,
        mustContain,
        cpu,
      });
    progress('pages');
    const account = await page(manager, ['/account']);
    const orderPage = await page(manager, [`/portal/orders/${f.order}`], /BENCH-10000/);
    const portalKey = await page(
      manager,
      f.orderKeys.map((k) => `/portal/orders/${f.order}?key=${encodeURIComponent(k)}`),
      new RegExp(f.orderKeys[0]!),
    );
    const adminKey = await page(
      admin,
      o.adminKeys.map((k) => `/admin/licenses?key=${encodeURIComponent(k)}`),
      new RegExp(o.adminKeys[0]!),
    );
    // Seconds per request where the count runs over the whole order: two clients keep the run short.
    const bigOrderPage = o.bigOrder
      ? await page(manager, [`/portal/orders/${o.bigOrder}`], /BENCH-LARGE/, BIG_ORDER_CONCURRENCY)
      : undefined;
    const baseline = o.online;
    const health = baseline
      ? {
          portico: await page('', ['/healthz'], /ok/),
          bare: await pages({
            base: baseline.base,
            cookie: '',
            paths: ['/healthz'],
            concurrency: PAGE_CONCURRENCY,
            warmup: PAGE_CONCURRENCY * 5,
            maxRequests: 100_000,
            maxSeconds: SECONDS,
            mustContain: /ok/,
            cpu: () => [baseline.cpuMs()],
          }),
        }
      : undefined;
    if (o.online) progress(`License API, ${ONLINE_CONCURRENCY} clients`);
    const online = baseline
      ? await measureOnlineApi({
          base: server.base,
          baselineBase: baseline.base,
          db: d.db,
          productCode: f.productCode,
          keys: f.pools[2]!,
          seatsPerLicense: f.seatsPerLicense,
          concurrency: ONLINE_CONCURRENCY,
          maxSeconds: SECONDS,
          maxActivations: Math.min(ACTIVATIONS, 4000),
          cpu,
          baselineCpu: () => [baseline.cpuMs()],
        })
      : undefined;
    progress('audit log, license page and dashboard');
    const scaleFigures = await scale.measureScalePages({
      page: (cookie, paths, mustContain) => page(cookie, paths, mustContain),
      admin,
      manager,
      targets: o.scaleTargets,
    });
    // Last: the purge deletes events the pages above read.
    const purge = o.purgeChecks?.length
      ? await scale.measurePurge({ base: server.base, db: d.db, checks: o.purgeChecks, seconds: SECONDS, cpu })
      : undefined;
    return {
      licenses,
      activation,
      activationsRecorded,
      account,
      orderPage,
      portalKey,
      adminKey,
      bigOrderPage,
      online,
      health,
      scale: scaleFigures,
      purge,
      errors: server.loggedErrors(),
      peakRssMb: server.peakRssMb(),
    };
  } catch (err) {
    console.error(`server output (end):\n${server.logTail()}`);
    throw err;
  } finally {
    await server.stop();
  }
}

interface DatabaseResult {
  label: string;
  small: Phase;
  large: Phase;
  baseline: Figures;
  baselineRssMb: number;
  generatedSeconds: number;
  scaleGenerated: scale.ScaleGenerated;
  flood: FloodFigures;
  workers?: WorkersFigures;
}

async function benchDatabase(open: () => Promise<BenchDatabase>, baseline: ServerProcess): Promise<DatabaseResult> {
  const dir = scratchDir('portico-bench-');
  const dataDir = path.join(dir, 'data');
  fs.mkdirSync(dataDir, { recursive: true });
  const d = await open();
  try {
    progress(`${d.label}: seeding`);
    const f = await seed(d.db, { activationsPerPhase: ACTIVATIONS + WARMUP + 1, phases: 3, seatsPerLicense: SEATS });
    await scale.generateSmall(d.db, f);
    const scaleTargets = await scale.scaleTargets(d.db, f);
    const small = await measurePhase(d, f, dataDir, 0, { adminKeys: f.orderKeys, online: baseline, scaleTargets });

    const checks = small.online?.checks ?? [];
    let workers: WorkersFigures | undefined;
    if (checks.length) {
      progress(`online check, ${ONLINE_CONCURRENCY} clients: WORKERS=1, then WORKERS=${WORKERS}`);
      workers = await measureWorkers({
        databaseUrl: d.url,
        dataDir,
        logLevel: LOG_LEVEL,
        checks,
        concurrency: ONLINE_CONCURRENCY,
        maxSeconds: SECONDS,
        counts: [1, WORKERS],
      });
    }

    progress(
      `upload flood: ${FLOOD_CLIENTS} clients sending 8 MiB uploads, ${FLOOD_SECONDS} s from one client over its limit, ${FLOOD_SECONDS} s from many`,
    );
    const flood = await measureUploadFlood({
      databaseUrl: d.url,
      dataDir,
      manager: f.manager,
      logLevel: LOG_LEVEL,
      clients: FLOOD_CLIENTS,
      seconds: FLOOD_SECONDS,
      pageSeconds: SECONDS,
    });

    progress('no-database baseline');
    const uploads = activationUploads(f.productCode, f.pools[0]!, 500);
    const baselineFigures = await baselineActivations({
      base: baseline.base,
      concurrency: CONCURRENCY,
      uploads,
      maxRequests: 200_000,
      maxSeconds: ACTIVATION_SECONDS,
      cpu: () => [baseline.cpuMs()],
    });

    const bigCount = Math.max(0, LARGE - ORDER_LICENSES);
    progress(`generating ${thousands(bigCount)} licenses`);
    const now = new Date();
    const bigOrder = await catalog.insertOrder(d.db, { orderRef: 'BENCH-LARGE', customerId: f.customerId }, now);
    const manager = await d.db('accounts').where({ email: f.manager.email }).first('id');
    await catalog.assignManager(d.db, Number(manager.id), bigOrder, now);
    const generated = await generateLicenses(d.db, {
      orderId: bigOrder,
      productId: f.productId,
      policyId: f.policyId,
      count: bigCount,
      now,
      disabledEvery: 50,
      activeEvery: 3,
      sampleKeys: 500,
    });
    progress(`generated in ${generated.seconds.toFixed(1)} s`);
    const scaleGenerated = await scale.generateLarge(d.db, f, bigOrder);
    await refreshStatistics(d.db);
    const large = await measurePhase(d, f, dataDir, 1, {
      adminKeys: generated.sample,
      bigOrder,
      scaleTargets,
      purgeChecks: checks,
    });
    return {
      label: d.label,
      small,
      large,
      baseline: baselineFigures,
      baselineRssMb: baseline.peakRssMb(),
      generatedSeconds: generated.seconds,
      scaleGenerated,
      flood,
      workers,
    };
  } finally {
    await d.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function report(r: DatabaseResult) {
  const s = r.small;
  const l = r.large;
  const S = `${thousands(s.licenses)}`;
  const L = `${thousands(l.licenses)}`;
  const noDb = `no database: verify + sign, ${CONCURRENCY} clients`;
  printTable(
    `${r.label} — Portico (dist/server.js, as npm start runs it) as its own process (WORKERS=1, NODE_ENV=production, LOG_LEVEL=${LOG_LEVEL}), loopback`,
    [
      `databases: small = ${S} licenses (the 10,000-license order + activation pools), large = ${L} (+ an order of ${thousands(LARGE - ORDER_LICENSES)}, generated in ${r.generatedSeconds.toFixed(1)} s)`,
      `offline activation: POST /offline/requests (multipart upload → activation → result page), then GET of the signed license file behind its download link, timed together; ${CONCURRENCY} clients, each a new device on a license with free seats; baseline: one request verifying the request and returning a signed license in the page;`,
      `pages: ${PAGE_CONCURRENCY} clients with a logged-in session; figures after warm-up; p50/p99 are per-request latencies under that concurrency;`,
      `cpu ms: CPU time per request of the server process${r.label.startsWith('SQLite') ? '' : ' + of the database server'}, from /proc (steady where req/s suffers from other load on the machine)`,
    ],
    [
      {
        title: 'against a baseline measured in the same run',
        rows: [
          {
            name: `offline activation, ${CONCURRENCY} clients (${S})`,
            fig: s.activation,
            baseName: noDb,
            base: r.baseline,
          },
          {
            name: `offline activation, ${CONCURRENCY} clients (${L})`,
            fig: l.activation,
            baseName: noDb,
            base: r.baseline,
          },
          {
            name: `order page, 10,000 licenses (${S})`,
            fig: s.orderPage,
            baseName: '/account: same layout, no data',
            base: s.account,
          },
          {
            name: `order page, 10,000 licenses (${L})`,
            fig: l.orderPage,
            baseName: '/account: same layout, no data',
            base: l.account,
          },
        ],
      },
      {
        title: `${L} licenses against ${S} (baseline: the same request on the small database)`,
        rows: [
          {
            name: 'lookup by key: console /admin/licenses?key=',
            fig: l.adminKey,
            baseName: `same, ${S}`,
            base: s.adminKey,
          },
          { name: 'lookup by key: order page ?key=', fig: l.portalKey, baseName: `same, ${S}`, base: s.portalKey },
          { name: 'lookup by key: offline activation', fig: l.activation, baseName: `same, ${S}`, base: s.activation },
          { name: 'order page, 10,000-license order', fig: l.orderPage, baseName: `same, ${S}`, base: s.orderPage },
          {
            name: `order page, ${thousands(LARGE - ORDER_LICENSES)}-license order (${BIG_ORDER_CONCURRENCY} cl.)`,
            fig: l.bigOrderPage!,
            baseName: `10,000-license order, ${S}`,
            base: s.orderPage,
          },
        ],
      },
      {
        title: `License API (POST /api/v1/activate and /check, JSON), each activation a new device`,
        rows: s.online?.rows ?? [],
      },
      {
        title: 'The thin path: GET /healthz against a bare Express app with the same handler',
        rows: s.health
          ? [
              {
                name: 'GET /healthz, Portico',
                fig: s.health.portico,
                baseName: 'bare Express, same handler',
                base: s.health.bare,
              },
            ]
          : [],
      },
    ],
  );
  // Every successful upload (and the one sanity upload before the run) must be a new device: no repeats, nothing lost.
  for (const [name, p] of [
    ['small', s],
    ['large', l],
  ] as const) {
    if (p.activationsRecorded !== p.activation.okTotal + 1)
      console.log(
        `  ! ${name}: ${p.activationsRecorded} devices recorded for ${p.activation.okTotal + 1} successful uploads`,
      );
  }
  for (const [name, p] of [
    ['small', s],
    ['large', l],
  ] as const)
    for (const e of p.errors) console.log(`  ! server errors (${name}): ${e}`);
  console.log(
    `  peak RSS (VmHWM) of the Portico server process: ${s.peakRssMb.toFixed(0)} MB (small), ${l.peakRssMb.toFixed(0)} MB (large); no-database baseline process (through tsx): ${r.baselineRssMb.toFixed(0)} MB`,
  );
  scale.report(r.label, { small: s.scale, large: l.scale, purge: l.purge, generated: r.scaleGenerated, S, L });
  reportFlood(r.label, r.flood);
  reportWorkers(r.label, r.workers);
}

function reportWorkers(label: string, w: WorkersFigures | undefined) {
  if (!w) return;
  const [one, many] = w.runs;
  if (!one || !many) return;
  printTable(
    `${label} — WORKERS: npm start with WORKERS=${many.workers} (node:cluster) against WORKERS=1, same database, same signed checks`,
    [
      `online check: POST /api/v1/check back to back, ${ONLINE_CONCURRENCY} keep-alive clients (the cluster spreads connections round robin); the load generator shares the machine's ${os.availableParallelism()} cores`,
      `cpu ms: WORKERS=1 the process + the load generator (the bench process); WORKERS=${many.workers} the primary + all workers together + the load generator`,
    ],
    [
      {
        title: 'throughput with more workers',
        rows: [
          {
            name: `online check, ${ONLINE_CONCURRENCY} clients, WORKERS=${many.workers}`,
            fig: many.check,
            baseName: 'same, WORKERS=1',
            base: one.check,
          },
        ],
      },
    ],
  );
  console.log(
    `  peak RSS (VmHWM): WORKERS=1 ${one.servingPeakRssMb.map((m) => m.toFixed(0)).join('')} MB; WORKERS=${many.workers}: workers ${many.servingPeakRssMb.map((m) => `${m.toFixed(0)} MB`).join(', ')}, primary ${many.primaryPeakRssMb?.toFixed(0)} MB`,
  );
}

const floodGrowthMb = (f: FloodFigures, run: FloodRun) => run.peakRssMb - f.idleRssMb;

function reportFlood(label: string, f: FloodFigures) {
  const answers = (run: FloodRun) =>
    Object.entries(run.answers)
      .sort((a, b) => b[1] - a[1])
      .map(([answer, n]) => `${thousands(n)} × ${answer}`)
      .join(', ');
  printTable(
    `${label} — upload flood: POST /offline/requests by ${f.clients} clients at once, each sending 8 MiB uploads back to back (a server process of its own, OFFLINE_UPLOAD_SLOTS default)`,
    [
      `page: GET /account of a logged-in manager, 2 clients; baseline: the same page on the same server, idle, just before the floods`,
    ],
    [
      {
        title: 'a logged-in page during the flood, against the same page idle',
        rows: [
          {
            name: 'page, flood from one client over its limit',
            fig: f.oneClient.page,
            baseName: '/account, idle',
            base: f.idlePage,
          },
          {
            name: 'page, flood from many clients',
            fig: f.manyClients.page,
            baseName: '/account, idle',
            base: f.idlePage,
          },
        ],
      },
    ],
  );
  console.log(`  RSS of the server: ${f.idleRssMb.toFixed(0)} MB idle (after warm-up)`);
  for (const [name, run] of [
    ['one client over its limit', f.oneClient],
    ['many clients', f.manyClients],
  ] as const) {
    console.log(
      `  ${name}: peak ${run.peakRssMb.toFixed(0)} MB (+${floodGrowthMb(f, run).toFixed(0)} MB); ${thousands(run.uploads)} uploads in ${run.seconds.toFixed(1)} s: ${answers(run)}`,
    );
  }
  for (const e of f.loggedErrors) console.log(`  server errors logged during the floods: ${e}`);
}

function verdicts(results: DatabaseResult[], startup: StartupFigures | null): Verdict[] {
  const mark = (ok: boolean, text: string) => `${ok ? 'met' : 'NOT met'}: ${text}`;
  const cell = (fn: (r: DatabaseResult) => string) => results.map(fn);
  return [
    {
      target: 'start-up to /readyz: compiled ≤ 1/2 of tsx (SQLite)',
      cell: (r: DatabaseResult) => {
        if (!startup) return 'not measured';
        if (r !== results[0]) return '(one figure: first column)';
        const ratio = startup.compiled.medianMs / startup.tsx.medianMs;
        return mark(
          ratio <= 0.5,
          `${ratio.toFixed(2)} (${startup.compiled.medianMs.toFixed(0)} / ${startup.tsx.medianMs.toFixed(0)} ms; CPU ${(startup.compiled.medianCpuMs / startup.tsx.medianCpuMs).toFixed(2)})`,
        );
      },
    },
    {
      target: 'offline activation ≥ 1,000/s on SQLite',
      cell: (r: DatabaseResult) =>
        r.label.startsWith('SQLite')
          ? mark(r.small.activation.rps >= 1000, `${r.small.activation.rps.toFixed(0)}/s`)
          : `(SQLite target) ${r.small.activation.rps.toFixed(0)}/s`,
    },
    {
      target: 'offline activation ≥ 1/3 of its no-database baseline',
      cell: (r: DatabaseResult) =>
        mark(
          r.small.activation.rps / r.baseline.rps >= 1 / 3,
          `${(r.small.activation.rps / r.baseline.rps).toFixed(2)}`,
        ),
    },
    {
      target: `online check p99 < 20 ms at ${ONLINE_CONCURRENCY} connections`,
      cell: (r: DatabaseResult) => {
        const c = r.small.online?.check;
        const paced = r.small.online?.pacedCheck;
        if (!c || !paced) return 'not measured: no License API';
        return mark(c.p99 < 20 && !c.failed, `p99 ${c.p99.toFixed(0)} ms (paced ${paced.p99.toFixed(0)} ms)`);
      },
    },
    {
      target: 'GET /healthz ≥ 1/2 of a bare Express app with the same handler',
      cell: (r: DatabaseResult) => {
        const h = r.small.health;
        if (!h) return 'not measured';
        return mark(h.portico.rps / h.bare.rps >= 0.5, `${(h.portico.rps / h.bare.rps).toFixed(2)}`);
      },
    },
    {
      target: 'online check back to back ≥ 1/2 of its baseline (SQLite), ≥ 1/3 (MariaDB)',
      cell: (r: DatabaseResult) => {
        const c = r.small.online?.check;
        const b = r.small.online?.baselineCheck;
        if (!c || !b) return 'not measured: no License API';
        const want = r.label.startsWith('SQLite') ? 1 / 2 : 1 / 3;
        return mark(c.rps / b.rps >= want, `${(c.rps / b.rps).toFixed(2)}`);
      },
    },
    {
      target: 'order page (10,000 licenses) ≥ 1/2 of static baseline',
      cell: (r: DatabaseResult) =>
        mark(
          r.small.orderPage.rps / r.small.account.rps >= 0.5,
          `${(r.small.orderPage.rps / r.small.account.rps).toFixed(2)}`,
        ),
    },
    {
      target: `lookups by key at ${thousands(LARGE)} within 2× of 10,000`,
      cell: (r: DatabaseResult) => {
        const worst = Math.max(
          ...[
            [r.large.adminKey, r.small.adminKey],
            [r.large.portalKey, r.small.portalKey],
            [r.large.activation, r.small.activation],
          ].map(([big, small]) => ratios({ name: '', baseName: '', fig: small!, base: big! }).rps),
        );
        return mark(worst <= 2, `worst ${worst.toFixed(2)}× slower`);
      },
    },
    {
      target: 'server peak RSS < 250 MB',
      cell: (r: DatabaseResult) =>
        mark(
          Math.max(r.small.peakRssMb, r.large.peakRssMb) < 250,
          `${Math.max(r.small.peakRssMb, r.large.peakRssMb).toFixed(0)} MB`,
        ),
    },
    {
      target: `online check, WORKERS=${WORKERS} ≥ ${WORKERS_SPEEDUP}× WORKERS=1`,
      cell: (r: DatabaseResult) => {
        const [one, many] = r.workers?.runs ?? [];
        if (!one || !many) return 'not measured: no License API';
        const ratio = many.check.rps / one.check.rps;
        return mark(
          ratio >= WORKERS_SPEEDUP && !many.check.failed,
          `${ratio.toFixed(2)}× (${many.check.rps.toFixed(0)} / ${one.check.rps.toFixed(0)} req/s)`,
        );
      },
    },
    {
      target: `peak RSS per worker < ${WORKER_RSS_MB} MB (WORKERS=${WORKERS})`,
      cell: (r: DatabaseResult) => {
        const many = r.workers?.runs[1];
        if (!many) return 'not measured';
        const worst = Math.max(...many.servingPeakRssMb);
        return mark(worst < WORKER_RSS_MB, `${worst.toFixed(0)} MB`);
      },
    },
    {
      target: `upload flood: server RSS grows < ${FLOOD_RSS_GROWTH_MB} MB over idle`,
      cell: (r: DatabaseResult) => {
        const growth = [r.flood.oneClient, r.flood.manyClients].map((run) => floodGrowthMb(r.flood, run));
        return mark(
          Math.max(...growth) < FLOOD_RSS_GROWTH_MB,
          `+${growth.map((g) => g.toFixed(0)).join(' / +')} MB (one / many)`,
        );
      },
    },
    {
      target: `upload flood: logged-in page p99 < ${FLOOD_PAGE_P99_MS} ms`,
      cell: (r: DatabaseResult) => {
        const p99 = [r.flood.oneClient.page, r.flood.manyClients.page].map((p) => p.p99);
        return mark(
          Math.max(...p99) < FLOOD_PAGE_P99_MS && !r.flood.oneClient.page.failed && !r.flood.manyClients.page.failed,
          `${p99.map((p) => p.toFixed(0)).join(' / ')} ms (idle ${r.flood.idlePage.p99.toFixed(0)})`,
        );
      },
    },
    ...scale.verdicts.map((v) => ({
      target: v.target,
      cell: (r: DatabaseResult) => v.cell(r.small.scale, r.large.scale, r.large.purge),
    })),
  ].map((v) => ({ target: v.target, cells: cell(v.cell) }));
}

async function main() {
  const started = Date.now();
  const wanted = (process.env.BENCH_DATABASES ?? 'sqlite,mysql,galera').split(',');
  const openers: (() => Promise<BenchDatabase>)[] = [];
  const dir = scratchDir('portico-bench-');
  if (wanted.includes('sqlite')) openers.push(() => sqliteDatabase(dir));
  if (wanted.includes('mysql') && usingMysql) openers.push(() => mysqlDatabase(process.env.DATABASE_URL!));
  const cpu =
    /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown CPU';
  console.log(
    `Portico benchmark — ${os.cpus().length} cores (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
  );
  const baseline = await startBaseline(dir);
  const results: DatabaseResult[] = [];
  let galera: GaleraFigures | undefined;
  try {
    for (const open of openers) {
      const r = await benchDatabase(open, baseline);
      results.push(r);
      report(r);
    }
    if (wanted.includes('galera') && galeraUrls.length >= 2) {
      galera = await measureGalera({
        rounds: GALERA_ROUNDS,
        concurrency: ONLINE_CONCURRENCY,
        seconds: SECONDS,
        logLevel: LOG_LEVEL,
        singleNodeUrl: usingMysql ? process.env.DATABASE_URL : undefined,
      });
      reportGalera(galera, ONLINE_CONCURRENCY);
    }
  } finally {
    await baseline.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const startup = results.length && STARTUP_RUNS > 0 ? measureStartup(STARTUP_RUNS) : null;
  if (startup) printStartup(startup);
  if (results.length)
    printVerdicts(
      results.map((r) => r.label),
      verdicts(results, startup),
    );
  if (galera) printVerdicts([galera.label], galeraVerdicts(galera, ONLINE_CONCURRENCY));
  console.log(`\n(${((Date.now() - started) / 1000).toFixed(0)} s in all)`);
}

await main();
