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
import { adminProductsController } from './controllers/admin/products.ts';
import { adminPoliciesController } from './controllers/admin/policies.ts';

/**
 * Where a route lives: `public` and `account` at the root, `portal` under /portal (and at / on a
 * host bound to the User Portal), `admin` under /admin for admins only.
 */
export type Area = 'public' | 'account' | 'portal' | 'admin';

export interface RouteDef {
  method: 'get' | 'post';
  area: Area;
  path: string;
  handlers: RequestHandler[];
}

/** THE route table: every URL, its guards and its controller action. */
export function routeTable(ctx: AppContext): RouteDef[] {
  const system = systemController(ctx);
  const sessions = sessionsController(ctx);
  const passwords = passwordsController(ctx);
  const account = accountController(ctx);
  const setup = setupController(ctx);
  const portal = portalController(ctx);
  const admin = adminController(ctx);
  const products = adminProductsController(ctx);
  const policies = adminPoliciesController(ctx);

  const routes: RouteDef[] = [];
  const add = (area: Area) => ({
    get: (path: string, ...handlers: RequestHandler[]) => routes.push({ method: 'get', area, path, handlers }),
    post: (path: string, ...handlers: RequestHandler[]) => routes.push({ method: 'post', area, path, handlers }),
  });

  const pub = add('public');
  pub.get('/healthz', system.healthz);
  pub.get('/readyz', system.readyz);
  pub.get('/.well-known/portico-keys.json', system.publicKeys);
  pub.get('/branding.css', system.brandingCss);
  pub.get('/branding/logo', system.brandingLogo);

  const acc = add('account');
  acc.get('/login', sessions.show);
  acc.post('/login', sessions.create);
  acc.post('/logout', sessions.destroy);
  acc.get('/password/forgot', passwords.showForgot);
  acc.post('/password/forgot', passwords.forgot);
  acc.get('/password/reset/:token', passwords.showReset);
  acc.post('/password/reset/:token', passwords.reset);
  acc.get('/setup/:token', setup.show);
  acc.post('/setup/:token', setup.create);
  acc.post('/language', account.setLanguage);
  acc.get('/account', requireLogin, account.show);
  acc.post('/account', requireLogin, account.update);
  acc.get('/account/password', requireLogin, account.showPassword);
  acc.post('/account/password', requireLogin, account.changePassword);
  acc.get('/', requireLogin, (req, res) => res.redirect(303, homeFor(req.user!, res.locals.paths)));

  const up = add('portal');
  up.get('/', requireLogin, portal.dashboard);

  // Every admin route is behind requireRole('admin') (mounted below): others get 404.
  const adm = add('admin');
  adm.get('/', admin.dashboard);
  adm.get('/outbox', admin.outbox);
  adm.get('/outbox/:id', admin.outboxMail);
  adm.get('/products', products.index);
  adm.get('/products/new', products.new);
  adm.post('/products', products.create);
  adm.get('/products/:id', products.show);
  adm.get('/products/:id/edit', products.edit);
  adm.post('/products/:id', products.update);
  adm.post('/products/:id/archive', products.archive);
  adm.post('/products/:id/unarchive', products.unarchive);
  adm.post('/products/:id/delete', products.destroy);
  adm.post('/products/:id/features', products.createFeature);
  adm.post('/products/:id/features/:featureId', products.updateFeature);
  adm.post('/products/:id/features/:featureId/delete', products.destroyFeature);
  adm.get('/products/:id/policies/new', policies.new);
  adm.post('/products/:id/policies', policies.create);
  // --- customers, orders, licenses, license users, managers ---
  // --- brandings, settings, signing keys ---
  // --- audit log ---
  adm.get('/policies/:id', policies.show);
  adm.get('/policies/:id/edit', policies.edit);
  adm.post('/policies/:id', policies.update);
  adm.post('/policies/:id/default', policies.makeDefault);
  adm.post('/policies/:id/archive', policies.archive);
  adm.post('/policies/:id/unarchive', policies.unarchive);

  return routes;
}

/** Passes only on hosts that serve `portal` under its path (unbound hosts, or hosts bound to it). */
const hostServes = (portal: Portal | 'admin'): RequestHandler => (req, _res, next) =>
  !req.boundPortal || req.boundPortal === portal ? next() : next(notFound());

/** Mounts `router` at `/` only for requests on a host bound to `portal`. */
const onHostBoundTo = (portal: Portal, router: Router): RequestHandler => (req, res, next) => (req.boundPortal === portal ? router(req, res, next) : next());

/** Mounts the route table. CSRF protection covers every state-changing request (GET/HEAD/OPTIONS pass). */
export function buildRoutes(ctx: AppContext, guards: { csrf: RequestHandler }): Router {
  const routers: Record<Area, Router> = { public: Router(), account: Router(), portal: Router(), admin: Router() };
  routers.admin.use(hostServes('admin'), requireRole('admin'));
  for (const route of routeTable(ctx)) routers[route.area][route.method](route.path, ...route.handlers);

  const r = Router();
  r.use(routers.public);
  r.use(guards.csrf);
  r.use('/portal', hostServes('portal'), routers.portal);
  r.use(onHostBoundTo('portal', routers.portal));
  r.use('/admin', routers.admin);
  r.use(routers.account);
  return r;
}

/** The URL a route answers at on an unbound host (for tests and the route listing). */
export function fullPath(route: RouteDef): string {
  const prefix = route.area === 'portal' ? '/portal' : route.area === 'admin' ? '/admin' : '';
  return route.path === '/' && prefix ? prefix : prefix + route.path;
}
