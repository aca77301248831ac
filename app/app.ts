import path from 'node:path';
import { fileURLToPath } from 'node:url';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import express, { type Express } from 'express';
import session from 'express-session';
import helmet from 'helmet';
import { pinoHttp } from 'pino-http';
import { Passport } from 'passport';
import { Strategy as LocalStrategy } from 'passport-local';
import { csrfSync } from 'csrf-sync';
import type { Knex } from 'knex';
import type { TFunction } from 'i18next';
import type { Config } from '../config/index.ts';
import type { Clock } from './lib/clock.ts';
import { type Logger, redactUrl } from './lib/logger.ts';
import { createI18n, memoizedTranslators } from './lib/i18n.ts';
import { createMailer, type Mailer } from './lib/mailer.ts';
import { RateLimiter } from './lib/rate-limiter.ts';
import { layoutEngine } from './lib/views.ts';
import { SessionStore } from './lib/session-store.ts';
import { GenerationCache } from './lib/generation-cache.ts';
import { createMetrics, disabledMetrics, type Metrics } from './lib/metrics.ts';
import type { Registry } from 'prom-client';
import { JOBS } from './jobs.ts';
import * as accounts from './models/accounts.ts';
import { brandingByHost } from './middleware/branding.ts';
import { locals } from './middleware/locals.ts';
import { forcePasswordChange, forceSecondFactorEnrolment } from './middleware/auth.ts';
import { noStoreForPrivatePages } from './middleware/no-store.ts';
import { endExpiredLogins } from './middleware/session-lifetime.ts';
import { checkOrigin } from './middleware/origin-check.ts';
import { getSettings, settingDefaults, type Settings } from './models/settings.ts';
import { errorHandler, notFoundHandler } from './middleware/errors.ts';
import { saveSessionBeforeRedirect } from './middleware/session-before-redirect.ts';
import { sessionClient } from './middleware/session-client.ts';
import { buildRoutes } from './routes.ts';
import { authenticate } from './services/auth.ts';
import { createSigner, type Signer } from './services/signer.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface AppDeps {
  db: Knex;
  config: Config;
  logger: Logger;
  clock: Clock;
  mailer?: Mailer;
  /** How often each process looks for a console change made by another (lib/generation-cache.ts); 1 s. */
  cacheCheckMs?: number;
  /**
   * With WORKERS > 1 (server.ts): given this worker's metrics registry, how to get the sum over all
   * workers (app/lib/metrics-cluster.ts). Absent: /metrics shows this process alone.
   */
  aggregateMetrics?: (registry: Registry) => () => Promise<string>;
}

/** Everything a controller may use, built once per app (no module-level singletons). */
export interface AppContext {
  db: Knex;
  config: Config;
  logger: Logger;
  clock: Clock;
  mailer: Mailer;
  limiter: RateLimiter;
  /** Everything the server signs goes through it (services/signer.ts). */
  signer: Signer;
  /** Settings, brandings by host and signing keys between requests (lib/generation-cache.ts). */
  cache: GenerationCache;
  /**
   * The installation's settings (console → Settings), with their defaults: the one way to read them.
   * Inside a transaction pass its handle (on SQLite the pool has one connection: the transaction's).
   */
  settings: (db?: Knex) => Promise<Settings>;
  i18n: ReturnType<typeof createI18n>;
  /** Counters and gauges for /metrics (app/lib/metrics.ts); a no-op unless METRICS_TOKEN or METRICS_ALLOW is set. */
  metrics: Metrics;
  /** The Prometheus text of all cluster workers (WORKERS > 1), or undefined: this process's own. */
  aggregateMetrics?: () => Promise<string>;
  passport: InstanceType<typeof Passport>;
  state: { shuttingDown: boolean };
  /** The public URL (for links in mails) and a translator for a recipient's language. */
  baseUrl: string;
  translatorFor: (lng: string) => TFunction;
}

export interface PorticoApp extends Express {
  locals: Express['locals'] & { ctx: AppContext };
}

export function createApp(deps: AppDeps): PorticoApp {
  const { db, config, logger, clock } = deps;
  if (!config.sessionSecret) throw new Error('createApp needs config.sessionSecret (server.ts provides one)');
  const i18n = createI18n();
  const translatorFor = memoizedTranslators(i18n);
  const passport = new Passport();
  const cache = new GenerationCache(db, deps.cacheCheckMs ?? 1000);
  const defaults = settingDefaults(config.defaultLanguage);
  const metrics = config.metrics
    ? createMetrics(db, { jobKinds: Object.keys(JOBS), now: () => clock.now().getTime() })
    : disabledMetrics;
  const ctx: AppContext = {
    db,
    config,
    logger,
    clock,
    mailer: deps.mailer ?? createMailer({ smtpUrl: config.smtpUrl, from: config.mailFrom, db, clock, logger }),
    limiter: new RateLimiter(db, clock),
    signer: createSigner(config.dataDir, cache),
    cache,
    settings: (handle: Knex = db) =>
      cache.get(handle, 'settings', async (h) => Object.freeze(await getSettings(h, defaults))),
    i18n,
    metrics,
    aggregateMetrics: metrics.registry && deps.aggregateMetrics ? deps.aggregateMetrics(metrics.registry) : undefined,
    passport,
    state: { shuttingDown: false },
    baseUrl: config.baseUrl,
    translatorFor,
  };

  const app = express() as unknown as PorticoApp;
  app.locals.ctx = ctx;
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  app.set('views', path.join(root, 'views'));
  app.engine('ejs', layoutEngine(path.join(root, 'views'), config.env === 'production'));
  app.set('view engine', 'ejs');

  // First: the request's time and count under its route pattern (routes.ts tags each route of the table).
  app.use(metrics.requests);
  app.use(
    pinoHttp({
      logger,
      genReqId: (req, res) => {
        const incoming = req.headers['x-request-id'];
        const id = typeof incoming === 'string' && /^[\w.-]{8,64}$/.test(incoming) ? incoming : crypto.randomUUID();
        res.setHeader('X-Request-Id', id);
        return id;
      },
      serializers: {
        req: (req: { id: unknown; method: string; url: string }) => ({
          id: req.id,
          method: req.method,
          url: redactUrl(req.url),
        }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
      autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/readyz' },
      // A scrape comes every few seconds: an answered one is not logged, a refused one (401, 403) is.
      customLogLevel: (req, res, err) =>
        !err && res.statusCode < 400 && /^\/metrics(\?|$)/.test(req.url ?? '') ? 'silent' : 'info',
      // Every Management API request, reads included, names its token in the request log (never the token itself).
      customProps: (_req, res) => {
        const token = (res as express.Response).locals?.apiToken as string | undefined;
        return token ? { apiToken: token } : {};
      },
    }),
  );

  app.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'", 'data:'],
          fontSrc: ["'self'"],
          connectSrc: ["'self'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          objectSrc: ["'none'"],
          baseUri: ["'none'"],
          ...(config.cookieSecure ? { upgradeInsecureRequests: [] } : {}),
        },
      },
      strictTransportSecurity: config.cookieSecure,
      crossOriginEmbedderPolicy: false,
    }),
  );

  // The charting library of the usage pages, from our own origin (CSP script-src 'self'): the file of the installed package.
  const chartJs = path.join(path.dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.min.js');
  app.get('/static/vendor/chart.umd.min.js', (_req, res, next) =>
    res.sendFile(chartJs, { maxAge: config.env === 'production' ? '1d' : 0 }, (err) => err && next(err)),
  );
  app.use(
    '/static',
    express.static(path.join(root, 'public'), { index: false, maxAge: config.env === 'production' ? '1d' : 0 }),
  );
  app.use(express.urlencoded({ extended: false, limit: '100kb', parameterLimit: 200 }));
  app.use(express.json({ limit: '100kb' }));

  const { generateToken, csrfSynchronisedProtection } = csrfSync({
    // Multipart forms carry the token in the action URL: their body is parsed after this check.
    getTokenFromRequest: (req) =>
      (req.body?._csrf as string | undefined) ??
      (req.headers['x-csrf-token'] as string | undefined) ??
      (req.is('multipart/form-data') ? (req.query._csrf as string | undefined) : undefined),
  });
  const routes = buildRoutes(ctx, { csrf: csrfSynchronisedProtection });
  // The thin path: health, keys, branding files and the License API, before any session work.
  app.use(routes.thin);

  app.use(
    session({
      // A Secure cookie takes the __Host- prefix: the browser then refuses it unless it is Secure, for
      // Path=/ and without Domain, so no sibling subdomain can plant or overwrite it. Plain http (a
      // local install) cannot use the prefix.
      name: config.cookieSecure ? '__Host-portico.sid' : 'portico.sid',
      secret: config.sessionSecret,
      store: new SessionStore(db),
      resave: false,
      saveUninitialized: false,
      rolling: true,
      cookie: { httpOnly: true, sameSite: 'lax', secure: config.cookieSecure, maxAge: config.sessionMaxAgeMs },
    }),
  );
  app.use(saveSessionBeforeRedirect());

  passport.use(
    new LocalStrategy(
      { usernameField: 'email', passwordField: 'password', passReqToCallback: true },
      (req, email, password, done) => {
        // The host the sign-in came on brands an unlock mail (app/services/mail.ts).
        authenticate({ ...ctx, origin: req.hostname }, req.actor, email, password).then(
          (result) => done(null, result.ok ? result.account : false),
          done,
        );
      },
    ),
  );
  // Passport calls this at every login (password, second factor, first-admin setup), in the new session.
  passport.serializeUser((req: express.Request, user: Express.User, done: (err: unknown, id?: number) => void) => {
    req.session.loginAt = clock.now().getTime();
    done(null, (user as accounts.Account).id);
  });
  passport.deserializeUser((id: number, done) => {
    accounts.findById(db, Number(id)).then(
      (account) => done(null, account && !account.disabled ? account : false),
      (err) => done(err),
    );
  });
  app.use(passport.initialize());
  app.use(passport.session());
  app.use(noStoreForPrivatePages);
  app.use(sessionClient());

  app.use(brandingByHost(db, cache));
  app.use(locals(translatorFor, config.defaultLanguage, (req) => generateToken(req)));
  app.use(endExpiredLogins(clock, config.sessionAbsoluteMs));
  // Before the routes (and their uploads) and before the CSRF check, which it backs up.
  app.use(checkOrigin(config.baseUrl));
  app.use(forcePasswordChange);
  app.use(forceSecondFactorEnrolment(ctx.settings));

  app.use(routes.full);

  app.use(notFoundHandler);
  app.use(errorHandler(i18n, logger));
  return app;
}
