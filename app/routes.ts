import { Router, type RequestHandler } from 'express';
import type { AppContext } from './app.ts';
import type { Portal } from './models/brandings.ts';
import { requireLogin, requireRole } from './middleware/auth.ts';
import { notFound } from './lib/errors.ts';
import { systemController } from './controllers/system.ts';
import { sessionsController, homeFor } from './controllers/sessions.ts';
import { passwordsController } from './controllers/passwords.ts';
import { accountController } from './controllers/account.ts';
import { setupController } from './controllers/setup.ts';
import { portalController } from './controllers/portal.ts';
import { adminController } from './controllers/admin.ts';

/** Passes only on hosts that serve `portal` under its path (unbound hosts, or hosts bound to it). */
const hostServes = (portal: Portal | 'admin'): RequestHandler => (req, _res, next) =>
  !req.boundPortal || req.boundPortal === portal ? next() : next(notFound());

/** Mounts `router` at `/` only for requests on a host bound to `portal`. */
const onHostBoundTo = (portal: Portal, router: Router): RequestHandler => (req, res, next) => (req.boundPortal === portal ? router(req, res, next) : next());

/**
 * THE route table: every URL, its guards and its controller action. CSRF protection covers every
 * state-changing request below it (GET/HEAD/OPTIONS pass).
 */
export function buildRoutes(ctx: AppContext, guards: { csrf: RequestHandler }): Router {
  const system = systemController(ctx);
  const sessions = sessionsController(ctx);
  const passwords = passwordsController(ctx);
  const account = accountController(ctx);
  const setup = setupController(ctx);
  const portal = portalController(ctx);
  const admin = adminController(ctx);

  const r = Router();
  r.get('/healthz', system.healthz);
  r.get('/readyz', system.readyz);
  r.get('/.well-known/portico-keys.json', system.publicKeys);
  r.get('/branding.css', system.brandingCss);
  r.get('/branding/logo', system.brandingLogo);

  r.use(guards.csrf);

  // Accounts
  r.get('/login', sessions.show);
  r.post('/login', sessions.create);
  r.post('/logout', sessions.destroy);
  r.get('/password/forgot', passwords.showForgot);
  r.post('/password/forgot', passwords.forgot);
  r.get('/password/reset/:token', passwords.showReset);
  r.post('/password/reset/:token', passwords.reset);
  r.get('/setup/:token', setup.show);
  r.post('/setup/:token', setup.create);
  r.post('/language', account.setLanguage);
  r.get('/account', requireLogin, account.show);
  r.post('/account', requireLogin, account.update);
  r.get('/account/password', requireLogin, account.showPassword);
  r.post('/account/password', requireLogin, account.changePassword);

  // User Portal: at /portal, and at / on a host bound to it.
  const userPortal = Router();
  userPortal.get('/', requireLogin, portal.dashboard);
  r.use('/portal', hostServes('portal'), userPortal);
  r.use(onHostBoundTo('portal', userPortal));

  // Vendor console: admins only (everyone else: 404), never on a host bound to one portal.
  const console = Router();
  console.use(hostServes('admin'), requireRole('admin'));
  console.get('/', admin.dashboard);
  console.get('/outbox', admin.outbox);
  console.get('/outbox/:id', admin.outboxMail);
  r.use('/admin', console);

  r.get('/', requireLogin, (req, res) => res.redirect(303, homeFor(req.user!, res.locals.paths)));
  return r;
}
