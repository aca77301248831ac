/**
 * Data at scale (issue 15, "Scale of data"): with 1,000,000 devices and 10,000,000 audit events the
 * console's audit log (its first page and each filter), a license page with its devices and trail,
 * and a manager's dashboard (the activity of their orders) stay within 2× of the same pages with
 * ~10,000 of each; and the audit retention purge deleting old events in batches does not hold up
 * online checks meanwhile (p99 during the purge against the same checks just before it).
 *
 * Knobs: BENCH_DEVICES (devices in the large database, 1000000), BENCH_AUDIT_EVENTS (audit events in
 * the large database, 10000000), BENCH_PURGE_EVENTS (old events the purge figure deletes, 1000000).
 */
import type { Knex } from 'knex';
import { isSqlite } from '../../db/knexfile.ts';
import { systemClock } from '../../app/lib/clock.ts';
import { getSettings, saveSettings, settingDefaults } from '../../app/models/settings.ts';
import { purgeOldAuditEvents } from '../../app/services/retention.ts';
import type { Fixture } from './fixture.ts';
import { benchManagerLabel, generateAuditEvents, generateDevices, licenseRange } from './generate.ts';
import { runLoad, type Figures } from './load.ts';
import { apiCall } from './online.ts';
import { printTable, ratios, type Row } from './report.ts';

const env = (name: string, fallback: number) =>
  process.env[name] && Number.isFinite(Number(process.env[name])) ? Number(process.env[name]) : fallback;
export const DEVICES = env('BENCH_DEVICES', 1_000_000);
export const AUDIT_EVENTS = env('BENCH_AUDIT_EVENTS', 10_000_000);
export const PURGE_EVENTS = env('BENCH_PURGE_EVENTS', 1_000_000);
/** Devices and audit events of the small database. */
export const SMALL_ROWS = 10_000;
/** Generated events and devices are dated over the last two years. */
const DAYS = 730;
/**
 * The bench's installation keeps its two years of events (the default, 400 days, would have a
 * server's housekeeping delete half of them; the purge figure sets its own retention).
 */
const RETENTION_DAYS = 800;
const DAY_MS = 86_400_000;
const PURGE_CONCURRENCY = 8;
/** The purge figure ends with the purge, or after this long. */
const PURGE_MAX_SECONDS = 300;

export interface ScaleGenerated {
  devices: number;
  auditEvents: number;
  devicesSeconds: number;
  auditSeconds: number;
}

const thousands = (n: number) => n.toLocaleString('en-US');
const progress = (s: string) => process.stderr.write(`· ${s}\n`);

/** The small database's share: devices on the 10,000-license order, audit events about it. */
export async function generateSmall(db: Knex, f: Fixture): Promise<ScaleGenerated> {
  await saveSettings(db, { auditRetentionDays: RETENTION_DAYS }, new Date());
  const order = await licenseRange(db, f.order);
  const now = new Date();
  const devices = await generateDevices(db, { licenses: order, count: SMALL_ROWS, now, days: DAYS, seed: 1 });
  const events = await generateAuditEvents(db, { orders: [order], count: SMALL_ROWS, now, days: DAYS, seed: 2 });
  return {
    devices: SMALL_ROWS,
    auditEvents: SMALL_ROWS,
    devicesSeconds: devices.seconds,
    auditSeconds: events.seconds,
  };
}

/** The large database's share: the rest of the devices on the big order, the rest of the events over both orders. */
export async function generateLarge(db: Knex, f: Fixture, bigOrder: number): Promise<ScaleGenerated> {
  const big = await licenseRange(db, bigOrder);
  const now = new Date();
  const deviceCount = Math.max(0, DEVICES - SMALL_ROWS);
  progress(`generating ${thousands(deviceCount)} devices`);
  const devices = await generateDevices(db, { licenses: big, count: deviceCount, now, days: DAYS, seed: 3 });
  progress(`generated in ${devices.seconds.toFixed(1)} s`);
  const eventCount = Math.max(0, AUDIT_EVENTS - SMALL_ROWS);
  progress(`generating ${thousands(eventCount)} audit events`);
  const orders = [big, await licenseRange(db, f.order)];
  const events = await generateAuditEvents(db, { orders, count: eventCount, now, days: DAYS, seed: 4 });
  progress(`generated in ${events.seconds.toFixed(1)} s`);
  // As the bench does for licenses after the bulk load (fixture.ts refreshStatistics): MySQL only.
  if (!isSqlite(db)) await db.raw('ANALYZE TABLE devices, audit_events');
  return {
    devices: deviceCount,
    auditEvents: eventCount,
    devicesSeconds: devices.seconds,
    auditSeconds: events.seconds,
  };
}

/** The pages of this figure, the same paths in both databases. */
export interface ScaleTargets {
  /** Licenses of the 10,000-license order with devices and audit events in both databases. */
  licenseIds: number[];
  /** A month a year ago, as the console's date filters take it. */
  month: { from: string; to: string };
}

export async function scaleTargets(db: Knex, f: Fixture): Promise<ScaleTargets> {
  // Every license of that order has a device (generateSmall): take some that have events too.
  const rows = await db('audit_events')
    .where({ object_type: 'license', order_id: f.order })
    .distinct('object_id')
    .limit(20);
  const licenseIds = rows.map((r: { object_id: string }) => Number(r.object_id));
  if (!licenseIds.length) throw new Error('no license with devices and audit events for the scale figures');
  const day = (d: Date) => d.toISOString().slice(0, 10);
  const from = new Date(Date.now() - 365 * DAY_MS);
  return { licenseIds, month: { from: day(from), to: day(new Date(from.getTime() + 30 * DAY_MS)) } };
}

type Page = (cookie: string, paths: string[], mustContain?: RegExp) => Promise<Figures>;

export interface ScaleFigure {
  name: string;
  /** The console's audit log (the verdict on the audit log), or another page that reads devices and events. */
  audit: boolean;
  fig: Figures;
}

const EVENT_ROW = /\/admin\/audit\/\d+"/;

/** The console's audit log and its filters, a license page with devices, a manager's dashboard. */
export async function measureScalePages(o: {
  page: Page;
  admin: string;
  manager: string;
  targets: ScaleTargets;
}): Promise<ScaleFigure[]> {
  const { page, admin, manager, targets } = o;
  const m = targets.month;
  const audit: [string, string][] = [
    ['first page', ''],
    ['action (exact, common)', '?action=activation.granted'],
    ['action (exact, rare)', '?action=settings.updated'],
    ['action (prefix)', '?action=license.'],
    ['actor (whole address)', `?actor=${encodeURIComponent(benchManagerLabel(7))}`],
    ['actor (prefix)', '?actor=manager7'],
    ['object type', '?object_type=license'],
    ['object type + id', '?object_type=license&object_id=ID'],
    ['date range (a month)', `?from=${m.from}&to=${m.to}`],
    ['action + date range', `?action=activation.granted&from=${m.from}&to=${m.to}`],
  ];
  const figures: ScaleFigure[] = [];
  for (const [name, query] of audit) {
    const paths = query.includes('ID')
      ? targets.licenseIds.map((id) => `/admin/audit${query.replace('ID', String(id))}`)
      : [`/admin/audit${query}`];
    figures.push({ name: `audit log: ${name}`, audit: true, fig: await page(admin, paths, EVENT_ROW) });
  }
  figures.push({
    name: 'license page: devices + trail',
    audit: false,
    fig: await page(
      admin,
      targets.licenseIds.map((id) => `/admin/licenses/${id}`),
      /trail-heading/,
    ),
  });
  figures.push({
    name: "manager's dashboard: orders' activity",
    audit: false,
    fig: await page(manager, ['/portal'], /activity-heading/),
  });
  return figures;
}

/** Rows of the report: each figure of the large database against the same on the small one. */
export function scaleRows(small: ScaleFigure[], large: ScaleFigure[], smallLabel: string): Row[] {
  return large.map((l, k) => ({ name: l.name, fig: l.fig, baseName: `same, ${smallLabel}`, base: small[k]!.fig }));
}

/** The worst slowdown (small req/s ÷ large req/s) among the figures `which` selects, and its name. */
export function worstSlowdown(
  small: ScaleFigure[],
  large: ScaleFigure[],
  which: (f: ScaleFigure) => boolean,
): { ratio: number; name: string } {
  let worst = { ratio: 0, name: '' };
  large.forEach((l, k) => {
    if (!which(l)) return;
    const ratio = ratios({ name: '', baseName: '', fig: small[k]!.fig, base: l.fig }).rps;
    if (ratio > worst.ratio) worst = { ratio, name: l.name };
  });
  return worst;
}

export interface PurgeFigures {
  idle: Figures;
  during: Figures;
  deleted: number;
  seconds: number;
  retentionDays: number;
}

/**
 * Online checks back to back, first alone and then while the retention purge deletes the
 * PURGE_EVENTS oldest events (its retention set to keep the rest), through the service the server's
 * housekeeping runs (app/services/retention.ts), from this process on the same database, as the
 * primary of a cluster runs it next to its workers. The second figure lasts as long as the purge.
 */
export async function measurePurge(o: {
  base: string;
  db: Knex;
  checks: string[];
  seconds: number;
  cpu: () => number[];
}): Promise<PurgeFigures> {
  const oldest = await o
    .db('audit_events')
    .orderBy('occurred_at')
    .offset(PURGE_EVENTS - 1)
    .first('occurred_at');
  const cutoffAge = oldest ? Date.now() - new Date(oldest.occurred_at).getTime() : DAYS * DAY_MS;
  const retentionDays = Math.max(30, Math.floor(cutoffAge / DAY_MS));
  const check = (maxSeconds: number, warmup: number, until?: () => boolean) =>
    runLoad({
      base: o.base,
      concurrency: PURGE_CONCURRENCY,
      maxRequests: 1_000_000,
      maxSeconds,
      warmup,
      until,
      cpu: o.cpu,
      call: (i) => apiCall('check', o.checks[i % o.checks.length]!, i),
    });
  const idle = await check(o.seconds, PURGE_CONCURRENCY * 20);
  const settings = async () => ({
    ...(await getSettings(o.db, settingDefaults('en'))),
    auditRetentionDays: retentionDays,
  });
  progress(`online checks during the retention purge (${retentionDays} days)`);
  const started = Date.now();
  let done = false;
  const purge = purgeOldAuditEvents({ db: o.db, clock: systemClock, settings }).finally(() => {
    done = true;
  });
  const during = await check(PURGE_MAX_SECONDS, 0, () => done);
  const deleted = await purge;
  return { idle, during, deleted, seconds: (Date.now() - started) / 1000, retentionDays };
}

export function purgeRows(p: PurgeFigures): Row[] {
  return [
    {
      name: `online check, ${PURGE_CONCURRENCY} cl., during the purge`,
      fig: p.during,
      baseName: 'same, just before it',
      base: p.idle,
    },
  ];
}

export const purgeSummary = (p: PurgeFigures) =>
  `retention purge: ${thousands(p.deleted)} events older than ${p.retentionDays} days deleted in ${p.seconds.toFixed(1)} s (${thousands(Math.round(p.deleted / p.seconds))}/s, batches of up to 1,000)`;

/** The table of this file's figures for one database (after the main table of run.ts). */
export function report(
  label: string,
  r: {
    small: ScaleFigure[];
    large: ScaleFigure[];
    purge?: PurgeFigures;
    generated: ScaleGenerated;
    S: string;
    L: string;
  },
): void {
  const g = r.generated;
  printTable(
    `${label} — data at scale: ${thousands(DEVICES)} devices and ${thousands(AUDIT_EVENTS)} audit events against ${thousands(SMALL_ROWS)} of each`,
    [
      `large database: + ${thousands(g.devices)} devices in ${g.devicesSeconds.toFixed(1)} s, + ${thousands(g.auditEvents)} audit events in ${g.auditSeconds.toFixed(1)} s (${thousands(Math.round(g.auditEvents / g.auditSeconds))}/s), dated over ${DAYS} days; the small one holds ${thousands(SMALL_ROWS)} of each (+ the bench's own activations)`,
      'audit log: the console page /admin/audit (50 events, a count up to 10,000, the object types of the filter) as an admin; license page: /admin/licenses/:id (its devices and its audit trail); dashboard: /portal of a manager of both orders (their newest events)',
    ],
    [
      {
        title: `${r.L} licenses and the data above against ${r.S} (baseline: the same request on the small database)`,
        rows: scaleRows(r.small, r.large, 'small'),
      },
      {
        title: 'audit retention purge (app/services/retention.ts) on the large database',
        rows: r.purge ? purgeRows(r.purge) : [],
      },
    ],
  );
  if (r.purge) console.log(`  ${purgeSummary(r.purge)}`);
}

const mark = (ok: boolean, text: string) => `${ok ? 'met' : 'NOT met'}: ${text}`;

/** The targets of this file, one cell per database. */
export const verdicts: {
  target: string;
  cell: (small: ScaleFigure[], large: ScaleFigure[], purge?: PurgeFigures) => string;
}[] = [
  {
    target: `audit log (first page, each filter) at ${thousands(AUDIT_EVENTS)} events within 2× of ${thousands(SMALL_ROWS)}`,
    cell: (small, large) => {
      const w = worstSlowdown(small, large, (f) => f.audit);
      return mark(w.ratio <= 2, `worst ${w.ratio.toFixed(2)}× (${w.name.replace('audit log: ', '')})`);
    },
  },
  {
    target: `license page (devices), manager's dashboard: large within 2× of small`,
    cell: (small, large) => {
      const w = worstSlowdown(small, large, (f) => !f.audit);
      return mark(w.ratio <= 2, `worst ${w.ratio.toFixed(2)}× (${w.name.replace(/:.*/, '')})`);
    },
  },
  {
    target: 'online check p99 during the audit purge ≤ 2× without',
    cell: (_small, _large, purge) => {
      if (!purge) return 'not measured: no License API';
      const ratio = purge.during.p99 / purge.idle.p99;
      return mark(
        ratio <= 2 && !purge.during.failed,
        `${ratio.toFixed(2)}× (p99 ${purge.during.p99.toFixed(0)} / ${purge.idle.p99.toFixed(0)} ms)`,
      );
    },
  },
];
