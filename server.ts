import fs from 'node:fs';
import type { Server } from 'node:http';
import { loadConfig, ConfigError, type Config } from './config/index.ts';
import { openDatabase, migrateLatest } from './db/index.ts';
import { createApp } from './app/app.ts';
import { createLogger } from './app/lib/logger.ts';
import { systemClock } from './app/lib/clock.ts';
import { resolveSessionSecret } from './app/lib/session-secret.ts';
import { purgeOldAuditEvents } from './app/services/retention.ts';
import { RateLimiter } from './app/lib/rate-limiter.ts';
import { ensureSigningKey } from './app/services/signing-keys.ts';
import { issueSetupTokenIfNeeded } from './app/services/setup.ts';
import { makePaths } from './app/paths.ts';
import * as sessions from './app/models/sessions.ts';

const SHUTDOWN_GRACE_MS = 10_000;
const HOUSEKEEPING_MS = 10 * 60_000;

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

fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
const logger = createLogger(config.logLevel);
const db = openDatabase(config.databaseUrl);
const clock = systemClock;

const applied = await migrateLatest(db);
if (applied.length) logger.info({ applied }, 'database migrated');
const signingKey = await ensureSigningKey(db, config.dataDir, clock.now());
logger.info({ kid: signingKey.kid }, 'signing key ready');

const app = createApp({
  db,
  config: { ...config, sessionSecret: resolveSessionSecret(config.sessionSecret, config.dataDir) },
  logger,
  clock,
});
const setupToken = await issueSetupTokenIfNeeded({ db, clock });

const server: Server = app.listen(config.port, config.host, () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const baseUrl = config.baseUrl.replace(/:\d+$/, '').endsWith(String(port))
    ? config.baseUrl
    : config.baseUrl.replace(/:\d+$/, `:${port}`);
  process.stdout.write(`Portico is listening on ${baseUrl}\n`);
  if (setupToken) {
    // Printed once, not logged: whoever can read this console sets up the first admin.
    process.stdout.write(
      `\nNo administrator exists yet. Open this one-time link to create the first one (valid 24 hours):\n  ${baseUrl}${makePaths(null).setup(setupToken)}\n\n`,
    );
  }
});

const limiter = new RateLimiter(db, clock);
const housekeeping = setInterval(() => {
  Promise.all([limiter.purge(), sessions.purgeExpired(db, clock.now()), purgeOldAuditEvents(app.locals.ctx)]).catch(
    (err) => logger.warn({ err }, 'housekeeping failed'),
  );
}, HOUSEKEEPING_MS);
housekeeping.unref();

// A closed stdout (the reader of a pipe went away) must not stop the server from logging, or from
// shutting down: the write error is dropped, the process goes on.
process.stdout.on('error', () => {});

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down: no new connections, finishing requests');
  app.locals.ctx.state.shuttingDown = true;
  clearInterval(housekeeping);
  const force = setTimeout(() => {
    logger.warn('requests still running after the grace period; closing them');
    server.closeAllConnections();
  }, SHUTDOWN_GRACE_MS);
  force.unref();
  // Never hang on the way out (a stuck database call must not keep a stopped server alive).
  setTimeout(() => process.exit(1), SHUTDOWN_GRACE_MS + 5_000).unref();
  server.close(async () => {
    await db.destroy();
    logger.info('stopped');
    process.exit(0);
  });
  server.closeIdleConnections();
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
