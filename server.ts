import cluster, { type Worker } from 'node:cluster';
import fs from 'node:fs';
import type { Server } from 'node:http';
import { loadConfig, ConfigError, type Config } from './config/index.ts';
import { openDatabase, migrateLatest } from './db/index.ts';
import { createApp } from './app/app.ts';
import { createLogger } from './app/lib/logger.ts';
import { type Clock, fileClock, systemClock } from './app/lib/clock.ts';
import { resolveSessionSecret } from './app/lib/session-secret.ts';
import { purgeOldAuditEvents } from './app/services/retention.ts';
import * as idempotencyKeys from './app/models/idempotency-keys.ts';
import { getSettings, settingDefaults } from './app/models/settings.ts';
import { RateLimiter } from './app/lib/rate-limiter.ts';
import { ensureSigningKey } from './app/services/signing-keys.ts';
import { issueSetupTokenIfNeeded } from './app/services/setup.ts';
import { makePaths } from './app/paths.ts';
import * as sessions from './app/models/sessions.ts';
import * as identityProviders from './app/models/identity-providers.ts';
import { purgeFinishedJobs, startQueueRunner } from './app/lib/queue.ts';
import { serveClusterMetrics, workerAggregate } from './app/lib/metrics-cluster.ts';

/**
 * `npm start`. With WORKERS = 1 the process itself serves. Above 1 (the default: one per available
 * core) this process is the primary of a node:cluster: it migrates the database, makes the signing key
 * and the first-start setup link once, does the housekeeping, forks the workers (which share the port
 * and only serve), replaces a worker that dies, and on SIGTERM/SIGINT has them all drain.
 * docs/decisions.md, "Workers".
 */

const SHUTDOWN_GRACE_MS = 10_000;
const HOUSEKEEPING_MS = 10 * 60_000;
/** A worker that lived at least this long before it died counts as a fresh start, not as a crash loop. */
const STABLE_MS = 60_000;
const MAX_RESTART_DELAY_MS = 30_000;

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(1);
  }
  throw err;
}

const logger = createLogger(config.logLevel);
// Tests of several processes move time for all of them through one file (lib/clock.ts, fileClock).
const clock: Clock =
  config.env === 'test' && process.env.TEST_CLOCK_FILE ? fileClock(process.env.TEST_CLOCK_FILE) : systemClock;
// A closed stdout (the reader of a pipe went away) must not stop the server from logging, or from
// shutting down: the write error is dropped, the process goes on.
process.stdout.on('error', () => {});

function baseUrlFor(port: number): string {
  return config.baseUrl.replace(/:\d+$/, '').endsWith(String(port))
    ? config.baseUrl
    : config.baseUrl.replace(/:\d+$/, `:${port}`);
}

/** The start-up lines (tests and the bench wait for "listening on"); printed once, by whichever process owns the console. */
function announce(port: number, setupToken: string | null) {
  const baseUrl = baseUrlFor(port);
  process.stdout.write(`Portico is listening on ${baseUrl}\n`);
  if (setupToken) {
    // Printed once, not logged: whoever can read this console sets up the first admin.
    process.stdout.write(
      `\nNo administrator exists yet. Open this one-time link to create the first one (valid 24 hours):\n  ${baseUrl}${makePaths(null).setup(setupToken)}\n\n`,
    );
  }
}

/** The database work done once per start (by the only process, or by the primary before it forks). */
async function prepareDatabase() {
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  // Made here, before any worker starts, so that the workers only ever read it.
  resolveSessionSecret(config.sessionSecret, config.dataDir);
  const db = openDatabase(config.databaseUrl);
  const applied = await migrateLatest(db);
  if (applied.length) logger.info({ applied }, 'database migrated');
  const signingKey = await ensureSigningKey(db, config.dataDir, clock.now());
  logger.info({ kid: signingKey.kid }, 'signing key ready');
  const setupToken = await issueSetupTokenIfNeeded({ db, clock });
  const limiter = new RateLimiter(db, clock);
  const housekeeping = setInterval(() => {
    // Audit retention reads the setting straight from the database: the primary has no app and no cache.
    const settings = () => getSettings(db, settingDefaults(config.defaultLanguage));
    Promise.all([
      limiter.purge(),
      sessions.purgeExpired(db, clock.now()),
      idempotencyKeys.purgeExpired(db, clock.now()),
      identityProviders.purgeOnce(db, clock.now()),
      purgeOldAuditEvents({ db, clock, settings }),
      purgeFinishedJobs({ db, clock }),
    ]).catch((err) => logger.warn({ err }, 'housekeeping failed'));
  }, HOUSEKEEPING_MS);
  housekeeping.unref();
  return { db, setupToken, housekeeping };
}

/** Serves requests: the process itself (WORKERS=1) or one cluster worker. */
async function serve() {
  const worker = cluster.isWorker;
  const prepared = worker ? null : await prepareDatabase();
  const db = prepared?.db ?? openDatabase(config.databaseUrl);
  const log = worker ? logger.child({ worker: cluster.worker!.id }) : logger;
  const app = createApp({
    db,
    config: { ...config, sessionSecret: resolveSessionSecret(config.sessionSecret, config.dataDir) },
    logger: log,
    clock,
    // A scrape answered by one worker shows the sum over all of them (app/lib/metrics-cluster.ts).
    aggregateMetrics: worker ? workerAggregate : undefined,
  });

  // Express 5 hands a listen error (port taken, address not available) to this callback instead of throwing it.
  const server: Server = app.listen(config.port, config.host, (err?: Error) => {
    if (err) {
      log.error({ err }, `cannot listen on ${config.host}:${config.port}`);
      process.exit(1);
    }
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    if (worker) process.send?.({ type: 'portico:listening', port });
    else announce(port, prepared!.setupToken);
  });
  // Every serving process runs the job queue (mail, webhooks, periodic checks) unless told not to.
  const runner = config.queueRunner ? startQueueRunner(app.locals.ctx) : null;

  let stopping = false;
  async function shutdown(signal: string) {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: no new connections, finishing requests');
    app.locals.ctx.state.shuttingDown = true;
    if (prepared) clearInterval(prepared.housekeeping);
    // The runner takes no new job; the one it is running finishes (its lease covers a forced exit).
    const runnerStopped = runner?.stop();
    const force = setTimeout(() => {
      log.warn('requests still running after the grace period; closing them');
      server.closeAllConnections();
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    // Never hang on the way out (a stuck database call must not keep a stopped server alive).
    setTimeout(() => process.exit(1), SHUTDOWN_GRACE_MS + 5_000).unref();
    server.close(async () => {
      await runnerStopped;
      await db.destroy();
      log.info('stopped');
      process.exit(0);
    });
    server.closeIdleConnections();
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

/** The cluster's primary: prepares the database once, forks the workers, keeps them running, drains them. */
async function primary() {
  const { db, setupToken, housekeeping } = await prepareDatabase();
  const started = new Map<Worker, { at: number; listening: boolean }>();
  const restarts = new Set<NodeJS.Timeout>();
  let announced = false;
  let stopping = false;
  let failed = false;
  let finished = false;
  /** When workers died young (lived less than STABLE_MS) lately: the more, the longer the next start waits. */
  let deaths: number[] = [];

  const fork = () => {
    const worker = cluster.fork();
    started.set(worker, { at: Date.now(), listening: false });
    worker.on('message', (m: { type?: string; port?: number }) => {
      if (m?.type !== 'portico:listening') return;
      const state = started.get(worker);
      if (!state) return;
      state.listening = true;
      logger.info({ worker: worker.id, workerPid: worker.process.pid }, 'worker listening');
      if (!announced && [...started.values()].filter((s) => s.listening).length >= config.workers) {
        announced = true;
        announce(m.port ?? config.port, setupToken);
      }
    });
  };

  const finish = async () => {
    // Our own count of live workers (a worker leaves cluster.workers only once it has both exited and
    // disconnected, in either order; `started` loses it at its exit).
    if (started.size || finished) return;
    finished = true;
    clearInterval(housekeeping);
    await db.destroy();
    logger.info('stopped');
    process.exit(failed ? 1 : 0);
  };

  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, workers: started.size }, 'shutting down: workers finish their requests');
    for (const t of restarts) clearTimeout(t);
    restarts.clear();
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    // Each worker forces its own way out after its grace period; this is for one that does not.
    setTimeout(() => {
      logger.warn('workers still running after the grace period; killing them');
      failed = true;
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
      setTimeout(() => process.exit(1), 2_000).unref();
    }, SHUTDOWN_GRACE_MS + 7_000).unref();
    void finish();
  };

  cluster.on('exit', (worker, code, signal) => {
    const state = started.get(worker);
    started.delete(worker);
    if (stopping) {
      // A worker still starting has no SIGTERM handler yet: ended by the signal, it had nothing to drain.
      if (code !== 0 && !(signal === 'SIGTERM' && !state?.listening)) failed = true;
      void finish();
      return;
    }
    if (!announced && !state?.listening) {
      // A worker that cannot even start (port taken, database unreachable) would fail again: stop.
      logger.error({ worker: worker.id, code, signal }, 'a worker failed to start; stopping');
      failed = true;
      stop('worker start-up failure');
      return;
    }
    const now = Date.now();
    const lived = now - (state?.at ?? now);
    deaths = deaths.filter((t) => now - t < STABLE_MS);
    if (lived < STABLE_MS) deaths.push(now);
    // The first death restarts at once; a crash loop waits 1 s, 2 s, 4 s … up to 30 s between starts.
    const delay = deaths.length <= 1 ? 0 : Math.min(MAX_RESTART_DELAY_MS, 1000 * 2 ** (deaths.length - 2));
    // A worker told to stop on its own (SIGTERM to its pid) drains and exits 0: a graceful restart of that one worker.
    const clean = code === 0 && !signal;
    logger[clean ? 'warn' : 'error'](
      { worker: worker.id, workerPid: worker.process.pid, code, signal, livedMs: lived, restartInMs: delay },
      clean ? 'worker stopped; starting another' : 'worker died; starting another',
    );
    const timer = setTimeout(() => {
      restarts.delete(timer);
      if (!stopping) fork();
    }, delay);
    restarts.add(timer);
  });

  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (config.metrics) serveClusterMetrics();
  logger.info({ workers: config.workers }, 'starting workers');
  for (let i = 0; i < config.workers; i++) fork();
}

if (cluster.isPrimary && config.workers > 1) await primary();
else await serve();
