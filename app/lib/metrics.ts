import type { NextFunction, Request, Response } from 'express';
import type { Knex } from 'knex';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { REFUSALS } from '../services/refusals.ts';
import { ARTIFACT_REFUSALS } from '../services/requests.ts';
import { VOUCHER_REFUSALS } from '../services/vouchers.ts';
import { onTransactionRetry, type RetryReason } from './transaction.ts';

/**
 * Prometheus metrics (`GET /metrics`, docs/operations.md "Metrics", docs/decisions.md "Metrics").
 *
 * Two registries per app. `process`: what this process counts in memory as it works (requests per
 * route pattern, activations, refusals, jobs, mail, webhooks, transaction retries, its pool and the
 * Node.js defaults) — with WORKERS > 1 the primary sums them over every worker (prom-client's
 * AggregatorRegistry, server.ts). `database`: gauges read from the database when scraped (seats in
 * use, the job queue), computed once by the process answering the scrape and cached briefly, so a
 * scrape costs two small queries at most, whatever the number of workers.
 *
 * Every label value comes from a closed set (route patterns of the route table, the refusal codes,
 * channels, job kinds, outcomes): no key, address, hardware id or URL ever becomes a label.
 */

export type Channel = 'online' | 'offline' | 'airgap' | 'portal';
const CHANNELS: ReadonlySet<string> = new Set(['online', 'offline', 'airgap', 'portal']);
const REFUSAL_CODES: ReadonlySet<string> = new Set<string>([...REFUSALS, ...ARTIFACT_REFUSALS, ...VOUCHER_REFUSALS]);
const METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const REFUSAL_ACTIONS: ReadonlySet<string> = new Set(['activation', 'deactivation', 'check', 'voucher']);

/** The label of a request that matched no route of the route table (a 404, a probe, a static file). */
export const UNMATCHED = 'unmatched';
/** The label of the static files under /static. */
export const STATIC = '/static';

/** How long the database gauges are reused between scrapes (seats in use is a sum over every license). */
export const DATABASE_GAUGES_TTL_MS = 30_000;

export type JobOutcome = 'done' | 'retried' | 'failed';
export type MailOutcome = 'sent' | 'retried' | 'failed';
export type WebhookOutcome = 'delivered' | 'retried' | 'failed' | 'skipped';

/** What the app and the services report; a disabled app gets one that does nothing. */
export interface Metrics {
  readonly enabled: boolean;
  /** Express middleware, first in the chain: times each request and counts it under its route pattern. */
  requests(req: Request, res: Response, next: NextFunction): void;
  activation(channel: Channel, repeated: boolean): void;
  refusal(action: string, channel: Channel, code: string): void;
  job(kind: string, outcome: JobOutcome): void;
  mail(outcome: MailOutcome): void;
  webhook(outcome: WebhookOutcome): void;
  /** The Prometheus text of this process (or, given `aggregate`, of all workers) followed by the database gauges. */
  scrape(aggregate?: () => Promise<string>): Promise<string>;
  /** This process's registry (what a cluster worker hands to the primary for aggregation). */
  readonly registry: Registry | null;
  readonly contentType: string;
}

/** Marks the route pattern a request matched (routes.ts puts it first on every route of the table). */
export const tagRoute =
  (pattern: string) =>
  (_req: Request, res: Response, next: NextFunction): void => {
    res.locals.routePattern = pattern;
    next();
  };

const noop = () => {};
export const disabledMetrics: Metrics = {
  enabled: false,
  requests: (_req, _res, next) => next(),
  activation: noop,
  refusal: noop,
  job: noop,
  mail: noop,
  webhook: noop,
  scrape: async () => '',
  registry: null,
  contentType: Registry.PROMETHEUS_CONTENT_TYPE,
};

interface PoolLike {
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
  numPendingCreates(): number;
  max: number;
}

const poolOf = (db: Knex): PoolLike | null => (db.client as { pool?: PoolLike }).pool ?? null;

/** The Metrics of one app: `jobKinds` is the closed set of job kinds (app/jobs.ts), anything else counts as `other`. */
export function createMetrics(db: Knex, opts: { jobKinds: readonly string[]; now?: () => number }): Metrics {
  const now = opts.now ?? Date.now;
  const jobKinds: ReadonlySet<string> = new Set(opts.jobKinds);
  const kindOf = (kind: string) => (jobKinds.has(kind) ? kind : 'other');
  const registry = new Registry();
  const database = new Registry();
  collectDefaultMetrics({ register: registry });

  const requestLabels = ['route', 'method', 'status_class'] as const;
  const requestsTotal = new Counter({
    name: 'portico_http_requests_total',
    help: 'HTTP requests answered, by route pattern of the route table (never the raw URL), method and status class.',
    labelNames: requestLabels,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'portico_http_request_duration_seconds',
    help: 'Time from the request to the end of its response, by route pattern, method and status class.',
    labelNames: requestLabels,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const activations = new Counter({
    name: 'portico_activations_total',
    help: 'Activations granted, by channel; result "repeated" is the same request or machine again (no new seat).',
    labelNames: ['channel', 'result'] as const,
    registers: [registry],
  });
  const refusals = new Counter({
    name: 'portico_refusals_total',
    help: 'Refused activations, deactivations, checks and codes, by stable refusal code and channel.',
    labelNames: ['action', 'reason', 'channel'] as const,
    registers: [registry],
  });
  const jobs = new Counter({
    name: 'portico_jobs_finished_total',
    help: 'Job attempts finished by this process, by kind and outcome (done, retried, failed for good).',
    labelNames: ['kind', 'outcome'] as const,
    registers: [registry],
  });
  const mail = new Counter({
    name: 'portico_mail_deliveries_total',
    help: 'SMTP delivery attempts, by outcome (sent, retried later, failed for good).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const webhooks = new Counter({
    name: 'portico_webhook_deliveries_total',
    help: 'Webhook delivery attempts, by outcome (delivered, retried later, failed for good, skipped).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const retries = new Counter({
    name: 'portico_db_transaction_retries_total',
    help: 'Transactions run again after a serialization failure, by reason (deadlock, lock_wait_timeout, galera_conflict, sqlite_busy).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'portico_db_pool_connections',
    help: "This process's database connections by state (used, free), and requests waiting for one (pending).",
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const pool = poolOf(db);
      if (!pool) return;
      this.set({ state: 'used' }, pool.numUsed());
      this.set({ state: 'free' }, pool.numFree());
      this.set({ state: 'pending' }, pool.numPendingAcquires() + pool.numPendingCreates());
    },
  });
  new Gauge({
    name: 'portico_db_pool_max_connections',
    help: "The most connections this process's database pool opens.",
    registers: [registry],
    collect() {
      const pool = poolOf(db);
      if (pool) this.set(pool.max);
    },
  });

  // The database gauges: one snapshot at a time, reused for DATABASE_GAUGES_TTL_MS.
  const seats = new Gauge({
    name: 'portico_seats_in_use',
    help: 'Seats in use over all licenses (activations holding a seat), read at most every 30 s.',
    registers: [database],
  });
  const queue = new Gauge({
    name: 'portico_jobs',
    help: 'Jobs in the queue by kind and state (queued, running, failed and kept), read at most every 30 s.',
    labelNames: ['kind', 'state'] as const,
    registers: [database],
  });
  let snapshot: { at: number; pending: Promise<void> } | null = null;
  const refreshDatabaseGauges = async () => {
    const [seatRow, jobRows] = await Promise.all([
      // An index-only scan: licenses (order_id, enabled, times_activated) covers the column (migration 0001).
      db('licenses').sum({ n: 'times_activated' }).first(),
      // An index on the state (jobs_claim_index or jobs_lease_index): only the few queued, running and failed rows; done jobs are never read.
      db('jobs')
        .whereIn('state', ['queued', 'running', 'failed'])
        .select('kind', 'state')
        .count({ n: '*' })
        .groupBy('kind', 'state'),
    ]);
    seats.set(Number(seatRow?.n ?? 0));
    queue.reset();
    for (const state of ['queued', 'running', 'failed']) for (const kind of jobKinds) queue.set({ kind, state }, 0);
    for (const r of jobRows as { kind: string; state: string; n: unknown }[])
      queue.inc({ kind: kindOf(String(r.kind)), state: String(r.state) }, Number(r.n));
  };
  const databaseGauges = async () => {
    if (!snapshot || now() - snapshot.at >= DATABASE_GAUGES_TTL_MS) {
      const pending = refreshDatabaseGauges();
      snapshot = { at: now(), pending };
      // A failed read is tried again at the next scrape.
      pending.catch(() => {
        if (snapshot?.pending === pending) snapshot = null;
      });
    }
    await snapshot.pending;
    return database.metrics();
  };

  onTransactionRetry(db, (reason: RetryReason) => retries.inc({ reason }));

  return {
    enabled: true,
    registry,
    contentType: registry.contentType,
    requests(req, res, next) {
      const start = process.hrtime.bigint();
      res.once('finish', () => {
        const route =
          typeof res.locals.routePattern === 'string'
            ? res.locals.routePattern
            : req.originalUrl.startsWith(`${STATIC}/`)
              ? STATIC
              : UNMATCHED;
        const labels = {
          route,
          method: METHODS.has(req.method) ? req.method : 'other',
          status_class: `${Math.floor(res.statusCode / 100)}xx`,
        };
        requestsTotal.inc(labels);
        duration.observe(labels, Number(process.hrtime.bigint() - start) / 1e9);
      });
      next();
    },
    activation(channel, repeated) {
      activations.inc({
        channel: CHANNELS.has(channel) ? channel : 'other',
        result: repeated ? 'repeated' : 'granted',
      });
    },
    refusal(action, channel, code) {
      const verb = action.replace(/\.refused$/, '');
      refusals.inc({
        action: REFUSAL_ACTIONS.has(verb) ? verb : 'other',
        reason: REFUSAL_CODES.has(code) ? code : 'other',
        channel: CHANNELS.has(channel) ? channel : 'other',
      });
    },
    job(kind, outcome) {
      jobs.inc({ kind: kindOf(kind), outcome });
    },
    mail(outcome) {
      mail.inc({ outcome });
    },
    webhook(outcome) {
      webhooks.inc({ outcome });
    },
    async scrape(aggregate) {
      const [own, gauges] = await Promise.all([aggregate ? aggregate() : registry.metrics(), databaseGauges()]);
      return `${own.trimEnd()}\n${gauges}`;
    },
  };
}
