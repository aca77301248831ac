import { Router, type RequestHandler } from 'express';
import type { AppContext } from './app.ts';
import type { Portal } from './models/brandings.ts';
import { anonymousActor, requireLogin, requireRole } from './middleware/auth.ts';
import { brandingByHost } from './middleware/branding.ts';
import { notFound } from './lib/errors.ts';
import { tagRoute } from './lib/metrics.ts';
import { systemController } from './controllers/system.ts';
import { sessionsController, homeFor } from './controllers/sessions.ts';
import { passwordsController } from './controllers/passwords.ts';
import { accountController } from './controllers/account.ts';
import { twoFactorController } from './controllers/two-factor.ts';
import { setupController } from './controllers/setup.ts';
import { portalHomeController } from './controllers/portal/self-service.ts';
import { portalOrdersController } from './controllers/portal/orders.ts';
import { portalLicensesController } from './controllers/portal/licenses.ts';
import { portalVouchersController } from './controllers/portal/vouchers.ts';
import { redeemController } from './controllers/redeem.ts';
import { searchController } from './controllers/search.ts';
import { can, endUsersOnly, loadPermissions, managersOnly, portalLoaders } from './controllers/portal/context.ts';
import { singleUpload, streamToDisk, uploadSlots } from './middleware/uploads.ts';
import { offlineController } from './controllers/offline.ts';
import { usageReportsController } from './controllers/usage-reports.ts';
import { airgapController } from './controllers/airgap.ts';
import { apiController } from './controllers/api.ts';
import { MAX_REQUEST_BYTES, MAX_ZIP_BYTES } from './services/offline.ts';
import { adminController } from './controllers/admin.ts';
import { adminProductsController } from './controllers/admin/products.ts';
import { adminPoliciesController } from './controllers/admin/policies.ts';
import { adminBrandingsController } from './controllers/admin/brandings.ts';
import { adminSettingsController } from './controllers/admin/settings.ts';
import { adminThrottlesController } from './controllers/admin/throttles.ts';
import { adminJobsController } from './controllers/admin/jobs.ts';
import { adminMailTemplatesController } from './controllers/admin/mail-templates.ts';
import { adminLoaders } from './controllers/admin/loaders.ts';
import { adminKeysController } from './controllers/admin/keys.ts';
import { adminCustomersController } from './controllers/admin/customers.ts';
import { adminOrdersController } from './controllers/admin/orders.ts';
import { adminLicensesController } from './controllers/admin/licenses.ts';
import { adminPeopleController } from './controllers/admin/people.ts';
import { adminRolesController } from './controllers/admin/roles.ts';
import { portalTeamController } from './controllers/portal/team.ts';
import { portalMailController } from './controllers/portal/mail.ts';
import { adminAuditController } from './controllers/admin/audit.ts';
import { confirmations } from './controllers/confirm.ts';
import { manageCustomersController } from './controllers/manage/customers.ts';
import { manageOrdersController } from './controllers/manage/orders.ts';
import { manageCatalogueController } from './controllers/manage/catalogue.ts';
import { manageManagersController } from './controllers/manage/managers.ts';
import { apiTokensController } from './controllers/api-tokens.ts';
import { manageLicensesController } from './controllers/manage/licenses.ts';
import { manageLicenseUsersController } from './controllers/manage/license-users.ts';
import { manageVouchersController } from './controllers/manage/vouchers.ts';
import { manageLoaders } from './api/manage/loaders.ts';
import { bearerAuth, scope, vendorOnly } from './api/manage/auth.ts';
import { jsonBodiesOnly, perTokenRateLimit } from './api/manage/limits.ts';
import { idempotency } from './api/manage/idempotency.ts';
import { webhooksController } from './controllers/webhooks.ts';
import { portalRenewalsController } from './controllers/portal/renewals.ts';
import { usageController } from './controllers/usage.ts';
import { adminRenewalsController } from './controllers/admin/renewals.ts';
import { adminVouchersController } from './controllers/admin/vouchers.ts';
import { unsubscribeController } from './controllers/unsubscribe.ts';
import { isOneClickUnsubscribe } from './middleware/csrf-exempt.ts';
import { ssoController } from './controllers/sso.ts';
import { ssoConfigController } from './controllers/sso-config.ts';

/**
 * Where a route lives: `public` and `account` at the root, `portal` under /portal (and at / on a
 * host bound to the User Portal), `admin` under /admin for admins only.
 */
export type Area = 'public' | 'api' | 'manage' | 'account' | 'portal' | 'offline' | 'airgap' | 'admin';

export interface RouteDef {
  method: 'get' | 'post' | 'patch' | 'delete';
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
  const twoFactor = twoFactorController(ctx);
  const setup = setupController(ctx);
  const home = portalHomeController(ctx);
  const portalOrders = portalOrdersController(ctx);
  const portalLicenses = portalLicensesController(ctx);
  const portalSearch = searchController(ctx, 'portal');
  const portalVouchers = portalVouchersController(ctx);
  const redeem = redeemController(ctx);
  const offline = offlineController(ctx);
  const airgap = airgapController(ctx);
  const api = apiController(ctx);
  const manageCustomers = manageCustomersController(ctx);
  const manageOrders = manageOrdersController(ctx);
  const catalogue = manageCatalogueController(ctx);
  const manageManagers = manageManagersController(ctx);
  const apiClients = apiTokensController(ctx, 'admin');
  const portalTokens = apiTokensController(ctx, 'portal');
  const manageLicenses = manageLicensesController(ctx);
  const manageLicenseUsers = manageLicenseUsersController(ctx);
  const manageVouchers = manageVouchersController(ctx);
  const admin = adminController(ctx);
  const products = adminProductsController(ctx);
  const policies = adminPoliciesController(ctx);
  const brandings = adminBrandingsController(ctx);
  const settings = adminSettingsController(ctx);
  const throttles = adminThrottlesController(ctx);
  const jobs = adminJobsController(ctx);
  const mailTemplates = adminMailTemplatesController(ctx);
  const signingKeys = adminKeysController(ctx);
  const customers = adminCustomersController(ctx);
  const orders = adminOrdersController(ctx);
  const licenses = adminLicensesController(ctx);
  const people = adminPeopleController(ctx);
  const roleAdmin = adminRolesController(ctx);
  const team = portalTeamController(ctx);
  const sentMail = portalMailController(ctx);
  const audit = adminAuditController(ctx);
  const consoleSearch = searchController(ctx, 'admin');
  const vendorHooks = webhooksController(ctx, 'admin');
  const managerHooks = webhooksController(ctx, 'portal');
  const renewalRequests = portalRenewalsController(ctx);
  const portalUsage = usageController(ctx, 'portal');
  const adminUsage = usageController(ctx, 'admin');
  const renewalAdmin = adminRenewalsController(ctx);
  const codes = adminVouchersController(ctx);
  const unsub = unsubscribeController(ctx);
  const sso = ssoController(ctx);
  const ssoAdmin = ssoConfigController(ctx, 'admin');
  const ssoPortal = ssoConfigController(ctx, 'portal');
  // The confirmation step of irreversible or wide actions (controllers/confirm.ts): after the loaders and guards, before the action.
  const ask = confirmations(ctx);
  const portalReports = usageReportsController(ctx, 'portal');
  const adminReports = usageReportsController(ctx, 'admin');

  const routes: RouteDef[] = [];
  const add = (area: Area) => ({
    get: (path: string, ...handlers: RequestHandler[]) => routes.push({ method: 'get', area, path, handlers }),
    post: (path: string, ...handlers: RequestHandler[]) => routes.push({ method: 'post', area, path, handlers }),
    patch: (path: string, ...handlers: RequestHandler[]) => routes.push({ method: 'patch', area, path, handlers }),
    delete: (path: string, ...handlers: RequestHandler[]) => routes.push({ method: 'delete', area, path, handlers }),
  });

  // Public and License API routes take the thin path (buildRoutes): no session, passport, CSRF or
  // page locals; the branding files resolve their host's branding themselves.
  const pub = add('public');
  const branding = brandingByHost(ctx.db, ctx.cache);
  pub.get('/healthz', system.healthz);
  pub.get('/readyz', system.readyz);
  // Prometheus metrics: 404 unless METRICS_TOKEN or METRICS_ALLOW is set (docs/operations.md, "Metrics").
  pub.get('/metrics', system.metrics);
  pub.get('/.well-known/portico-keys.json', system.publicKeys);
  pub.get('/branding.css', branding, system.brandingCss);
  pub.get('/branding/logo', branding, system.brandingLogo);
  // Single sign-on, SAML (controllers/sso.ts): the IdP's POST comes cross-site without the session
  // cookie (SameSite=Lax) or a CSRF token; the signed assertion is its credential, and the browser's
  // next request (/sso/:id/saml/complete, with its session) must match the request it answers.
  pub.post('/sso/:id/saml/acs', sso.samlAcs);
  pub.get('/sso/:id/saml/metadata', sso.samlMetadata);

  // License API (/api/v1): JSON for the SDK, no session and no CSRF (a signed request is the credential).
  const v1 = add('api');
  v1.post('/activate', api.limit, api.activate);
  v1.post('/redeem', api.limit, api.redeem);
  v1.post('/check', api.limit, api.check);
  v1.post('/deactivate', api.limit, api.deactivate);
  v1.post('/release', api.limit, api.release);
  v1.post('/consume', api.limit, api.consume);

  // Management API (/api/manage/v1): JSON for the vendor's shop and tools, a bearer token is the
  // credential (no session, no cookies, no CSRF). Authentication, the per-token rate limit and
  // Idempotency-Key cover the whole area (buildRoutes); each line names its scope, then its loaders
  // (through the token's order scope: 404 outside) and the portal's permission guard.
  const m = add('manage');
  const ml = manageLoaders(ctx);
  m.get('/customers', scope('customers:read'), manageCustomers.index);
  m.post('/customers', scope('customers:write'), vendorOnly, manageCustomers.create);
  m.get('/customers/:id', scope('customers:read'), ml.customer, manageCustomers.show);
  m.patch('/customers/:id', scope('customers:write'), ml.customer, can('edit_customer'), manageCustomers.update);
  m.get('/orders', scope('orders:read'), manageOrders.index);
  m.post('/orders', scope('orders:write'), can('create_order'), manageOrders.create);
  m.get('/orders/:id', scope('orders:read'), ml.order, manageOrders.show);
  m.patch('/orders/:id', scope('orders:write'), vendorOnly, ml.order, manageOrders.update);
  // Products and policies: a manager's token reads those it may issue from; writing is for API clients.
  m.get('/products', scope('products:read'), catalogue.products);
  m.post('/products', scope('products:write'), catalogue.createProduct);
  m.get('/products/:id', scope('products:read'), catalogue.loadProduct, catalogue.product);
  m.patch('/products/:id', scope('products:write'), catalogue.loadProduct, catalogue.updateProduct);
  m.get('/policies', scope('products:read'), catalogue.policies);
  m.post('/policies', scope('products:write'), catalogue.createPolicy);
  m.get('/policies/:id', scope('products:read'), catalogue.loadPolicy, catalogue.policy);
  m.patch('/policies/:id', scope('products:write'), catalogue.loadPolicy, catalogue.updatePolicy);
  // Managers and roles: API clients only (personal tokens never hold managers:*).
  m.get('/managers', scope('managers:read'), manageManagers.index);
  m.post('/managers', scope('managers:write'), manageManagers.invite);
  m.get('/managers/:id', scope('managers:read'), manageManagers.loadManager, manageManagers.show);
  m.post('/managers/:id/orders', scope('managers:write'), manageManagers.loadManager, manageManagers.assignOrder);
  m.patch(
    '/managers/:id/orders/:orderId',
    scope('managers:write'),
    manageManagers.loadManager,
    manageManagers.loadAssignment,
    manageManagers.setOrderRole,
  );
  m.delete(
    '/managers/:id/orders/:orderId',
    scope('managers:write'),
    manageManagers.loadManager,
    manageManagers.loadAssignment,
    manageManagers.unassignOrder,
  );
  m.get('/roles', scope('managers:read'), manageManagers.roles);
  m.post('/roles', scope('managers:write'), manageManagers.createRole);
  m.get('/roles/:id', scope('managers:read'), manageManagers.loadRole, manageManagers.role);
  m.patch('/roles/:id', scope('managers:write'), manageManagers.loadRole, manageManagers.updateRole);
  // Licenses and devices: the portal's permission per action (the console's for API clients).
  const lw = scope('licenses:write');
  m.post('/orders/:id/licenses', lw, ml.order, can('issue_license'), manageLicenses.issue);
  m.get('/licenses', scope('licenses:read'), manageLicenses.index);
  m.get('/licenses/:id', scope('licenses:read'), ml.license, manageLicenses.show);
  m.patch('/licenses/:id', lw, ml.license, can('edit_license'), manageLicenses.update);
  m.post('/licenses/:id/enable', lw, ml.license, can('edit_license'), manageLicenses.enable);
  m.post('/licenses/:id/disable', lw, ml.license, can('edit_license'), manageLicenses.disable);
  m.post('/licenses/:id/reset', lw, ml.license, can('reset_license'), manageLicenses.reset);
  m.post('/licenses/:id/dispatch', lw, ml.license, can('dispatch_license'), manageLicenses.dispatch);
  m.get('/licenses/:id/devices', scope('licenses:read'), ml.license, manageLicenses.devices);
  m.post(
    '/licenses/:id/devices/:deviceId/reset',
    lw,
    ml.license,
    can('reset_device'),
    ml.device,
    manageLicenses.resetDevice,
  );
  m.post(
    '/licenses/:id/devices/:deviceId/blacklist',
    lw,
    ml.license,
    can('revoke_device'),
    ml.device,
    manageLicenses.blacklistDevice,
  );
  m.post(
    '/licenses/:id/devices/:deviceId/unblacklist',
    lw,
    ml.license,
    can('revoke_device'),
    ml.device,
    manageLicenses.unblacklistDevice,
  );
  // Any manager of the order may download a refresh file in the portal: no permission beyond the scope.
  m.post('/licenses/:id/devices/:deviceId/refresh', lw, ml.license, ml.device, manageLicenses.refresh);
  // License users: manage_license_users (manage_user_credentials for the password link), owned accounts only.
  const uw = scope('license_users:write');
  const lu = manageLicenseUsers;
  m.get('/licenses/:id/users', scope('license_users:read'), ml.license, lu.index);
  m.post('/licenses/:id/users', uw, ml.license, can('manage_license_users'), lu.assign);
  m.patch('/licenses/:id/users/:accountId', uw, ml.license, can('manage_license_users'), ml.licenseUser, lu.setLimit);
  m.delete('/licenses/:id/users/:accountId', uw, ml.license, can('manage_license_users'), ml.licenseUser, lu.unassign);
  m.post(
    '/licenses/:id/users/:accountId/password-link',
    uw,
    ml.license,
    can('manage_user_credentials'),
    ml.licenseUser,
    lu.passwordLink,
  );
  m.get('/licenses/:id/invitations', scope('license_users:read'), ml.license, lu.invitations);
  m.delete(
    '/licenses/:id/invitations/:invitationId',
    uw,
    ml.license,
    can('manage_license_users'),
    lu.withdrawInvitation,
  );
  // Redeemable codes (services/vouchers.ts): generating and voiding need issue_license, as in the portal.
  const vw = scope('vouchers:write');
  m.get('/orders/:id/voucher-batches', scope('vouchers:read'), ml.order, manageVouchers.index);
  m.post('/orders/:id/voucher-batches', vw, ml.order, can('issue_license'), manageVouchers.create);
  m.get('/voucher-batches/:id', scope('vouchers:read'), ml.voucherBatch, manageVouchers.show);
  m.post('/vouchers/:id/void', vw, ml.voucher, can('issue_license'), manageVouchers.void);

  const acc = add('account');
  acc.get('/login', sessions.show);
  acc.post('/login', sessions.create);
  acc.get('/login/unlock/:token', passwords.showUnlock);
  acc.post('/login/unlock/:token', passwords.unlock);
  acc.get('/login/two-factor', twoFactor.showChallenge);
  acc.post('/login/two-factor', twoFactor.answerChallenge);
  acc.post('/logout', sessions.destroy);
  // Single sign-on (controllers/sso.ts): the e-mail step, the redirect to the customer's provider, its answer.
  acc.get('/login/sso', sso.showEmailStep);
  acc.post('/login/sso', sso.emailStep);
  acc.get('/login/sso/:id', sso.continuePage);
  acc.get('/sso/:id/start', sso.start);
  acc.get('/sso/:id/oidc/callback', sso.oidcCallback);
  acc.get('/sso/:id/saml/complete', sso.samlComplete);
  acc.get('/password/forgot', passwords.showForgot);
  acc.post('/password/forgot', passwords.forgot);
  acc.get('/password/reset/:token', passwords.showReset);
  acc.post('/password/reset/:token', passwords.reset);
  acc.get('/setup/:token', setup.show);
  acc.post('/setup/:token', setup.create);
  // A license invitation (services/license-users.ts): the link is the credential, no login needed.
  acc.get('/invitations/:token', portalLicenses.showInvitation);
  acc.post('/invitations/:token', portalLicenses.acceptInvitation);
  // Redeeming a code (services/vouchers.ts): public, so a visitor can create their end-user account with it.
  acc.get('/redeem', redeem.show);
  acc.post('/redeem', redeem.create);
  // A notification's one-click unsubscribe link (services/unsubscribe.ts): the signed token is the
  // credential; GET only asks, POST acts and is exempt from CSRF (middleware/csrf-exempt.ts).
  acc.get('/unsubscribe/:token', unsub.limit, unsub.show);
  acc.post('/unsubscribe/:token', unsub.limit, unsub.unsubscribe);
  acc.post('/language', account.setLanguage);
  acc.get('/account', requireLogin, account.show);
  acc.post('/account', requireLogin, account.update);
  acc.post('/account/notifications', requireLogin, account.saveNotifications);
  acc.post('/account/sessions/end', requireLogin, account.endSessions);
  acc.get('/account/password', requireLogin, account.showPassword);
  acc.post('/account/password', requireLogin, account.changePassword);
  acc.get('/account/two-factor', requireLogin, twoFactor.show);
  acc.post('/account/two-factor/setup', requireLogin, twoFactor.start);
  acc.post('/account/two-factor/confirm', requireLogin, twoFactor.confirm);
  acc.post('/account/two-factor/recovery-codes', requireLogin, twoFactor.regenerateRecoveryCodes);
  acc.get('/account/two-factor/disable', requireLogin, twoFactor.showDisable);
  acc.post('/account/two-factor/disable', requireLogin, twoFactor.disable);
  acc.get('/', requireLogin, (req, res) => res.redirect(303, homeFor(req.user!, res.locals.paths)));

  // User Portal: every route needs a login (mounted below); `mgr` pages are for managers (and admins),
  // each action then checks its permission code after loading its object through the order scope.
  const up = add('portal');
  const mgr = managersOnly;
  // Loaders resolve the URL's ids through the account's order scope (404 outside it): req.order, req.license, req.device.
  const { order, license, device, licenseUser, invitee } = portalLoaders(ctx);
  up.get('/', home.dashboard);
  up.post('/my/devices/:deviceId/release', endUsersOnly, home.release);
  up.get('/orders', mgr, portalOrders.index);
  // Search (licenses by key, user e-mail, hardware id; orders by number, customer): the order scope only.
  up.get('/search', mgr, portalSearch.show);
  up.get('/orders/new', mgr, can('create_order'), portalOrders.new);
  up.post('/orders', mgr, can('create_order'), portalOrders.create);
  up.get('/orders/bundle/new', mgr, can('create_bundle_order'), portalOrders.newBundle);
  up.post('/orders/bundle', mgr, can('create_bundle_order'), portalOrders.createBundle);
  up.get('/orders/:id', mgr, order, portalOrders.show);
  up.get('/orders/:id/export.csv', mgr, order, portalOrders.exportCsv);
  up.get('/orders/:id/dispatch', mgr, order, can('dispatch_license'), portalOrders.dispatchForm);
  up.post('/orders/:id/dispatch', mgr, order, can('dispatch_license'), portalOrders.dispatch);
  up.post(
    '/orders/:id/dispatch/csv',
    mgr,
    order,
    can('dispatch_license'),
    singleUpload('csv', 1024 * 1024),
    portalOrders.dispatchCsv,
  );
  up.post('/orders/:id/licenses', mgr, order, can('issue_license'), portalOrders.issue);
  // Redeemable codes: any manager of the order sees them; generating and voiding needs issue_license.
  up.get('/orders/:id/vouchers', mgr, order, portalVouchers.index);
  up.post('/orders/:id/vouchers', mgr, order, can('issue_license'), portalVouchers.generate);
  up.get('/orders/:id/vouchers/new-codes.csv', mgr, order, can('issue_license'), portalVouchers.csv);
  up.get('/orders/:id/vouchers/new-codes/print', mgr, order, can('issue_license'), portalVouchers.print);
  up.post('/orders/:id/vouchers/new-codes/dismiss', mgr, order, portalVouchers.dismiss);
  up.post(
    '/orders/:id/vouchers/:voucherId/void',
    mgr,
    order,
    can('issue_license'),
    ask.voidVoucher,
    portalVouchers.void,
  );
  up.post('/orders/:id/managers', mgr, order, can('manage_managers'), portalOrders.addManager);
  up.post('/orders/:id/managers/:accountId/role', mgr, order, can('manage_managers'), portalOrders.setManagerRole);
  up.post(
    '/orders/:id/managers/:accountId/delete',
    mgr,
    order,
    can('manage_managers'),
    ask.removeManager,
    portalOrders.removeManager,
  );
  // Delegation: the managers I invited and the sub-quotas I gave them (404 for anyone else's).
  up.get('/team', mgr, team.show);
  up.post('/team/:accountId/quotas', mgr, invitee, team.setQuota);
  // Sent mail: the mails my dispatches and invitations caused and their delivery state (404 for anyone else's).
  up.get('/mail', mgr, sentMail.index);
  up.get('/mail/:mailId', mgr, sentMail.show);
  // Renewal requests (services/renewals.ts): any manager of the order, no permission beyond the scope; an
  // end user for a license they use. The daily budget is spent first, then the form is read.
  up.get('/orders/:id/renewals/new', mgr, order, renewalRequests.new);
  up.post('/orders/:id/renewals', mgr, order, renewalRequests.create);
  up.get('/licenses/:id/renewals/new', mgr, license, renewalRequests.new);
  up.post('/licenses/:id/renewals', mgr, license, renewalRequests.create);
  up.get('/my/licenses/:id/renewals/new', endUsersOnly, renewalRequests.ownLicense, renewalRequests.new);
  up.post('/my/licenses/:id/renewals', endUsersOnly, renewalRequests.ownLicense, renewalRequests.create);
  // Single sign-on of a customer (controllers/sso-config.ts): edit_customer on one of its orders, else 404.
  const ssoOf = [mgr, ssoPortal.customer];
  const ssoProv = [...ssoOf, ssoPortal.provider];
  up.get('/customers/:id/sso', ...ssoOf, ssoPortal.index);
  up.post('/customers/:id/sso/providers', ...ssoOf, ssoPortal.create);
  up.post('/customers/:id/sso/seat-rule', ...ssoOf, ssoPortal.seatRule);
  up.get('/customers/:id/sso/providers/:providerId', ...ssoProv, ssoPortal.show);
  up.post('/customers/:id/sso/providers/:providerId', ...ssoProv, ssoPortal.update);
  up.post('/customers/:id/sso/providers/:providerId/delete', ...ssoProv, ssoPortal.destroy);
  up.post('/customers/:id/sso/providers/:providerId/domains', ...ssoProv, ssoPortal.addDomain);
  up.post('/customers/:id/sso/providers/:providerId/domains/:domainId/:change', ...ssoProv, ssoPortal.changeDomain);
  up.post('/customers/:id/sso/providers/:providerId/mappings', ...ssoProv, ssoPortal.addMapping);
  up.post('/customers/:id/sso/providers/:providerId/mappings/:mappingId/delete', ...ssoProv, ssoPortal.removeMapping);
  up.get('/orders/:id/customer/edit', mgr, order, can('edit_customer'), portalOrders.editCustomer);
  up.post('/orders/:id/customer', mgr, order, can('edit_customer'), portalOrders.updateCustomer);
  up.get('/licenses/:id', mgr, license, portalLicenses.show);
  up.post('/licenses/:id/disable', mgr, license, can('edit_license'), ask.disableLicense, portalLicenses.disable);
  up.post('/licenses/:id/enable', mgr, license, can('edit_license'), portalLicenses.enable);
  up.post('/licenses/:id/note', mgr, license, can('edit_license'), portalLicenses.note);
  up.post('/licenses/:id/reset', mgr, license, can('reset_license'), ask.resetLicense, portalLicenses.reset);
  up.get(
    '/licenses/:id/devices/:deviceId/reset',
    mgr,
    license,
    can('reset_device'),
    device,
    portalLicenses.confirmResetDevice,
  );
  up.post(
    '/licenses/:id/devices/:deviceId/reset',
    mgr,
    license,
    can('reset_device'),
    device,
    ask.resetDevice,
    portalLicenses.resetDevice,
  );
  up.post(
    '/licenses/:id/devices/:deviceId/revoke',
    mgr,
    license,
    can('revoke_device'),
    device,
    ask.blacklistDevice,
    portalLicenses.revokeDevice,
  );
  up.post(
    '/licenses/:id/devices/:deviceId/unblacklist',
    mgr,
    license,
    can('revoke_device'),
    device,
    portalLicenses.unblacklistDevice,
  );
  // Usage (controllers/usage.ts): managers within their order scope (end users: 404); release = the device reset.
  up.get('/orders/:id/usage', mgr, order, portalUsage.page);
  up.get('/orders/:id/usage.csv', mgr, order, portalUsage.csv);
  up.get('/licenses/:id/usage', mgr, license, portalUsage.page);
  up.get('/licenses/:id/usage.csv', mgr, license, portalUsage.csv);
  up.post(
    '/licenses/:id/usage/devices/:deviceId/release',
    mgr,
    license,
    can('reset_device'),
    device,
    ask.releaseDevice,
    portalUsage.release,
  );
  up.post('/licenses/:id/devices/:deviceId/borrow', mgr, license, can('borrow_license'), device, portalLicenses.borrow);
  up.get('/licenses/:id/devices/:deviceId/refresh', mgr, license, device, portalLicenses.refresh);
  up.get('/licenses/:id/devices/:deviceId/reports', mgr, license, device, portalReports.index);
  up.post('/licenses/:id/users', mgr, license, can('manage_license_users'), portalLicenses.assignUser);
  up.post(
    '/licenses/:id/users/:accountId',
    mgr,
    license,
    can('manage_license_users'),
    licenseUser,
    portalLicenses.setUserLimit,
  );
  up.post(
    '/licenses/:id/users/:accountId/delete',
    mgr,
    license,
    can('manage_license_users'),
    licenseUser,
    ask.unassignUser,
    portalLicenses.unassignUser,
  );
  up.post(
    '/licenses/:id/users/:accountId/password',
    mgr,
    license,
    can('manage_user_credentials'),
    licenseUser,
    portalLicenses.userPassword,
  );
  up.post(
    '/licenses/:id/invitations/:invitationId/delete',
    mgr,
    license,
    can('manage_license_users'),
    ask.withdrawInvitation,
    portalLicenses.withdrawInvitation,
  );
  // Personal access tokens of the Management API (the manager's own; 404 for anyone else's).
  up.get('/tokens', mgr, can('manage_api_clients'), portalTokens.index);
  up.get('/tokens/new', mgr, can('manage_api_clients'), portalTokens.new);
  up.post('/tokens', mgr, can('manage_api_clients'), portalTokens.create);
  up.post(
    '/tokens/:id/revoke',
    mgr,
    portalTokens.load,
    can('manage_api_clients'),
    portalTokens.askRevoke,
    portalTokens.revoke,
  );
  up.get('/policies/new', mgr, can('create_license_policy'), home.newPolicy);
  up.post('/policies', mgr, can('create_license_policy'), home.createPolicy);
  // Webhooks (services/webhooks.ts): a manager's own endpoints, events of the orders in their scope (others' endpoints: 404).
  const hooksOf = [mgr, managerHooks.allowed];
  const myHook = [...hooksOf, managerHooks.load];
  up.get('/webhooks', ...hooksOf, managerHooks.index);
  up.get('/webhooks/new', ...hooksOf, managerHooks.new);
  up.post('/webhooks', ...hooksOf, managerHooks.create);
  up.get('/webhooks/:id', ...myHook, managerHooks.show);
  up.get('/webhooks/:id/edit', ...myHook, managerHooks.edit);
  up.post('/webhooks/:id', ...myHook, managerHooks.update);
  up.post('/webhooks/:id/rotate', ...myHook, managerHooks.rotate);
  up.post('/webhooks/:id/disable', ...myHook, managerHooks.disable);
  up.post('/webhooks/:id/enable', ...myHook, managerHooks.enable);
  up.post('/webhooks/:id/delete', ...myHook, ask.deleteWebhook, managerHooks.destroy);
  up.post('/webhooks/:id/test', ...myHook, managerHooks.test);
  up.post('/webhooks/:id/deliveries/:deliveryId/resend', ...myHook, managerHooks.resend);

  // Offline Activation Portal: public (the file is the credential), rate-limited per client. An
  // upload is limited (per client, then a slot of this process) before a byte of its body is read.
  const off = add('offline');
  const offlineSlots = uploadSlots(ctx.config.offlineUploadSlots);
  const offlineBody = streamToDisk({ field: 'file', maxFileBytes: MAX_ZIP_BYTES, maxFieldBytes: MAX_REQUEST_BYTES });
  off.get('/', offline.show);
  off.post('/requests', offline.limitPerClient, offlineSlots.acquire, offlineBody, offline.upload);
  const reportBody = streamToDisk({
    field: 'file',
    maxFileBytes: MAX_REQUEST_BYTES,
    maxFieldBytes: MAX_REQUEST_BYTES,
    onTooLarge: offline.reportTooLarge,
  });
  off.post('/reports', offline.limitPerClient, offlineSlots.acquire, reportBody, offline.report);
  off.get('/download/:token', offline.download);

  // Air-Gapped Activation Portal: public (license key + codes are the credential), rate-limited in the controller.
  const ag = add('airgap');
  ag.get('/', airgap.show);
  ag.post('/activate', airgap.activate);
  ag.post('/deactivate', airgap.deactivate);
  ag.get('/download/:token', airgap.download);

  // Every admin route is behind requireRole('admin') (mounted below): others get 404.
  const adm = add('admin');
  const load = adminLoaders(ctx);
  adm.get('/', admin.dashboard);
  adm.get('/search', consoleSearch.show);
  adm.get('/outbox', admin.outbox);
  adm.get('/outbox/:id', admin.outboxMail);
  adm.get('/jobs', jobs.index);
  adm.get('/mail-templates', mailTemplates.index);
  adm.get('/mail-templates/:kind', mailTemplates.show);
  adm.post('/jobs/:id/run-again', jobs.runAgain);
  adm.post('/jobs/:id/cancel', jobs.cancel);
  adm.get('/products', products.index);
  adm.get('/products/new', products.new);
  adm.post('/products', products.create);
  adm.get('/products/:id', load.product, products.show);
  adm.get('/products/:id/edit', load.product, products.edit);
  adm.post('/products/:id', load.product, products.update);
  adm.post('/products/:id/archive', load.product, products.archive);
  adm.post('/products/:id/unarchive', load.product, products.unarchive);
  adm.post('/products/:id/delete', load.product, ask.deleteProduct, products.destroy);
  adm.post('/products/:id/features', load.product, products.createFeature);
  adm.post('/products/:id/features/:featureId', products.updateFeature);
  adm.post('/products/:id/features/:featureId/delete', ask.deleteFeature, products.destroyFeature);
  adm.get('/products/:id/policies/new', load.product, policies.new);
  adm.post('/products/:id/policies', load.product, policies.create);
  // --- customers, orders, licenses, license users, managers ---
  adm.get('/customers', customers.index);
  adm.get('/customers/new', customers.new);
  adm.post('/customers', customers.create);
  adm.get('/customers/:id', load.customer, customers.show);
  adm.get('/customers/:id/edit', load.customer, customers.edit);
  adm.post('/customers/:id', load.customer, customers.update);
  adm.post('/customers/:id/delete', load.customer, ask.deleteCustomer, customers.destroy);
  adm.get('/customers/:id/orders/new', load.customer, customers.newOrder);
  adm.post('/customers/:id/orders', load.customer, customers.createOrder);
  // Single sign-on of a customer (controllers/sso-config.ts; docs/sso.md).
  const ssoProvider = [load.customer, ssoAdmin.provider];
  adm.get('/customers/:id/sso', load.customer, ssoAdmin.index);
  adm.post('/customers/:id/sso/providers', load.customer, ssoAdmin.create);
  adm.post('/customers/:id/sso/seat-rule', load.customer, ssoAdmin.seatRule);
  adm.get('/customers/:id/sso/providers/:providerId', ...ssoProvider, ssoAdmin.show);
  adm.post('/customers/:id/sso/providers/:providerId', ...ssoProvider, ssoAdmin.update);
  adm.post('/customers/:id/sso/providers/:providerId/delete', ...ssoProvider, ssoAdmin.destroy);
  adm.post('/customers/:id/sso/providers/:providerId/domains', ...ssoProvider, ssoAdmin.addDomain);
  adm.post('/customers/:id/sso/providers/:providerId/domains/:domainId/:change', ...ssoProvider, ssoAdmin.changeDomain);
  adm.post('/customers/:id/sso/providers/:providerId/mappings', ...ssoProvider, ssoAdmin.addMapping);
  adm.post(
    '/customers/:id/sso/providers/:providerId/mappings/:mappingId/delete',
    ...ssoProvider,
    ssoAdmin.removeMapping,
  );
  adm.get('/orders', orders.index);
  adm.get('/orders/:id', load.order, orders.show);
  adm.get('/orders/:id/edit', load.order, orders.edit);
  adm.post('/orders/:id', load.order, orders.update);
  adm.post('/orders/:id/delete', load.order, ask.deleteOrder, orders.destroy);
  adm.post('/orders/:id/licenses', load.order, orders.issue);
  // Redeemable codes (services/vouchers.ts): every batch, a batch's codes, generating for an order.
  adm.get('/vouchers', codes.index);
  adm.get('/vouchers/:id', load.voucherBatch, codes.show);
  adm.post('/vouchers/:id/codes/:voucherId/void', load.voucherBatch, ask.voidBatchVoucher, codes.void);
  adm.post('/vouchers/:id/void-rest', load.voucherBatch, ask.voidBatchRest, codes.voidRest);
  adm.get('/orders/:id/vouchers', load.order, codes.order);
  adm.post('/orders/:id/vouchers', load.order, codes.generate);
  adm.get('/orders/:id/vouchers/new-codes.csv', load.order, codes.csv);
  adm.get('/orders/:id/vouchers/new-codes/print', load.order, codes.print);
  adm.post('/orders/:id/vouchers/new-codes/dismiss', load.order, codes.dismiss);
  adm.get('/licenses', licenses.index);
  adm.get('/licenses/:id', load.license, licenses.show);
  adm.get('/licenses/:id/edit', load.license, licenses.edit);
  adm.post('/licenses/:id', load.license, licenses.update);
  adm.post('/licenses/:id/disable', load.license, ask.disableLicense, licenses.disable);
  adm.post('/licenses/:id/enable', load.license, licenses.enable);
  adm.post('/licenses/:id/reset', load.license, ask.resetLicense, licenses.reset);
  adm.post('/licenses/:id/devices/:deviceId/reset', load.license, device, ask.resetDevice, licenses.resetDevice);
  adm.post(
    '/licenses/:id/devices/:deviceId/blacklist',
    load.license,
    device,
    ask.blacklistDevice,
    licenses.blacklistDevice,
  );
  adm.post('/licenses/:id/devices/:deviceId/unblacklist', load.license, device, licenses.unblacklistDevice);
  adm.get('/licenses/:id/devices/:deviceId/refresh', load.license, device, licenses.refresh);
  adm.get('/usage', adminUsage.page);
  adm.get('/usage.csv', adminUsage.csv);
  adm.get('/orders/:id/usage', load.order, adminUsage.page);
  adm.get('/orders/:id/usage.csv', load.order, adminUsage.csv);
  adm.get('/licenses/:id/usage', load.license, adminUsage.page);
  adm.get('/licenses/:id/usage.csv', load.license, adminUsage.csv);
  adm.post(
    '/licenses/:id/usage/devices/:deviceId/release',
    load.license,
    device,
    ask.releaseDevice,
    adminUsage.release,
  );
  adm.get('/licenses/:id/devices/:deviceId/reports', load.license, device, adminReports.index);
  adm.post('/licenses/:id/users', load.license, licenses.assignUser);
  adm.post('/licenses/:id/users/:accountId', load.license, licenses.setUserLimit);
  adm.post('/licenses/:id/users/:accountId/delete', load.license, ask.unassignUser, licenses.unassignUser);
  adm.get('/license-users', people.licenseUsers);
  adm.get('/license-users/new', people.newLicenseUser);
  adm.post('/license-users', people.createLicenseUser);
  adm.get('/license-users/:id', load.endUser, people.licenseUser);
  adm.post('/license-users/:id/password', load.endUser, people.resetLicenseUserPassword);
  adm.get('/managers', people.managers);
  adm.get('/managers/new', people.newManager);
  adm.post('/managers', people.inviteManager);
  adm.get('/managers/defaults', people.defaults);
  adm.post('/managers/defaults', people.saveDefaults);
  adm.get('/managers/:id', load.manager, people.manager);
  adm.post('/managers/:id', load.manager, people.updateManager);
  adm.post('/managers/:id/invitation', load.manager, people.resendInvitation);
  adm.post('/managers/:id/permissions', load.manager, people.setPermissions);
  adm.post('/managers/:id/orders', load.manager, people.assignOrder);
  adm.post('/managers/:id/orders/:orderId/role', load.manager, people.setOrderRole);
  adm.post('/managers/:id/orders/:orderId/delete', load.manager, ask.unassignManagerOrder, people.unassignOrder);
  adm.post('/managers/:id/quotas', load.manager, people.setQuota);
  adm.post('/managers/:id/quotas/:productId/delete', load.manager, ask.removeQuota, people.removeQuota);
  adm.post('/managers/:id/policies', load.manager, people.setPolicies);
  adm.get('/api-clients', apiClients.index);
  adm.get('/api-clients/new', apiClients.new);
  adm.post('/api-clients', apiClients.create);
  adm.post('/api-clients/:id/revoke', apiClients.load, apiClients.askRevoke, apiClients.revoke);
  adm.get('/roles', roleAdmin.index);
  adm.get('/roles/new', roleAdmin.new);
  adm.post('/roles', roleAdmin.create);
  adm.get('/roles/:id/edit', load.role, roleAdmin.edit);
  adm.post('/roles/:id', load.role, roleAdmin.update);
  adm.post('/roles/:id/default', load.role, roleAdmin.makeDefault);
  adm.post('/roles/:id/delete', load.role, ask.deleteRole, roleAdmin.destroy);
  // --- brandings, settings, signing keys ---
  adm.get('/brandings', brandings.index);
  adm.get('/brandings/new', brandings.new);
  adm.post('/brandings', brandings.create);
  adm.get('/brandings/:id', load.branding, brandings.show);
  adm.get('/brandings/:id/edit', load.branding, brandings.edit);
  adm.post('/brandings/:id', load.branding, brandings.update);
  adm.post('/brandings/:id/delete', ask.deleteBranding, brandings.destroy);
  adm.post('/brandings/:id/hosts', load.branding, brandings.addHost);
  adm.post('/brandings/:id/hosts/:hostId/delete', ask.removeHost, brandings.removeHost);
  adm.get('/brandings/:id/logo', brandings.logo);
  adm.post('/brandings/:id/logo', load.branding, brandings.logoUpload, brandings.uploadLogo);
  adm.post('/brandings/:id/logo/delete', ask.removeLogo, brandings.removeLogo);
  adm.get('/throttles', throttles.show);
  adm.post('/throttles/clear', throttles.clear);
  adm.get('/settings', settings.show);
  adm.post('/settings', settings.update);
  adm.post('/settings/ldap', settings.updateLdap);
  adm.get('/keys', signingKeys.index);
  adm.post('/keys', signingKeys.create);
  adm.post('/keys/:kid/activate', signingKeys.activate);
  adm.post('/keys/:kid/retire', ask.retireKey, signingKeys.retire);
  // --- webhooks: the vendor's endpoints (services/webhooks.ts) ---
  adm.get('/webhooks', vendorHooks.index);
  adm.get('/webhooks/new', vendorHooks.new);
  adm.post('/webhooks', vendorHooks.create);
  adm.get('/webhooks/:id', vendorHooks.load, vendorHooks.show);
  adm.get('/webhooks/:id/edit', vendorHooks.load, vendorHooks.edit);
  adm.post('/webhooks/:id', vendorHooks.load, vendorHooks.update);
  adm.post('/webhooks/:id/rotate', vendorHooks.load, vendorHooks.rotate);
  adm.post('/webhooks/:id/disable', vendorHooks.load, vendorHooks.disable);
  adm.post('/webhooks/:id/enable', vendorHooks.load, vendorHooks.enable);
  adm.post('/webhooks/:id/delete', vendorHooks.load, ask.deleteWebhook, vendorHooks.destroy);
  adm.post('/webhooks/:id/test', vendorHooks.load, vendorHooks.test);
  adm.post('/webhooks/:id/deliveries/:deliveryId/resend', vendorHooks.load, vendorHooks.resend);
  // --- renewal requests of managers and license users (services/renewals.ts) ---
  adm.get('/renewals', renewalAdmin.index);
  adm.get('/renewals/:id', renewalAdmin.show);
  adm.post('/renewals/:id', renewalAdmin.update);
  // --- audit log ---
  adm.get('/audit', audit.index);
  adm.get('/audit.csv', audit.csv);
  adm.get('/audit/:id', audit.show);
  adm.get('/policies/:id', load.policy, policies.show);
  adm.get('/policies/:id/edit', load.policy, policies.edit);
  adm.post('/policies/:id', load.policy, policies.update);
  adm.post('/policies/:id/default', load.policy, policies.makeDefault);
  adm.post('/policies/:id/archive', load.policy, policies.archive);
  adm.post('/policies/:id/unarchive', load.policy, policies.unarchive);

  return routes;
}

/** Passes only on hosts that serve `portal` under its path (unbound hosts, or hosts bound to it). */
const hostServes =
  (portal: Portal | 'admin'): RequestHandler =>
  (req, _res, next) =>
    !req.boundPortal || req.boundPortal === portal ? next() : next(notFound());

/** Mounts `router` at `/` only for requests on a host bound to `portal`. */
const onHostBoundTo =
  (portal: Portal, router: Router): RequestHandler =>
  (req, res, next) =>
    req.boundPortal === portal ? router(req, res, next) : next();

/**
 * Mounts the route table as two routers. `thin`: the public routes and the License API, mounted
 * before the session — they read no cookie, write no session row and need no CSRF token (the API's
 * signed request is its credential). `full`: everything else, after session, passport and the page
 * locals; CSRF protection covers every state-changing request there (GET/HEAD/OPTIONS pass).
 */
export function buildRoutes(ctx: AppContext, guards: { csrf: RequestHandler }): { thin: Router; full: Router } {
  const routers: Record<Area, Router> = {
    public: Router(),
    api: Router(),
    manage: Router(),
    account: Router(),
    portal: Router(),
    offline: Router(),
    airgap: Router(),
    admin: Router(),
  };
  routers.admin.use(hostServes('admin'), requireRole('admin'));
  // Per route, not router.use(): on a host bound to the User Portal this router sits at `/`, where
  // a router-level guard would also catch /login.
  const portalGuards = [requireLogin, loadPermissions(ctx)];
  // Each route first tags its pattern (fullPath: the same on a bound host) for the request metrics.
  const tagged = ctx.metrics.enabled;
  for (const route of routeTable(ctx))
    routers[route.area][route.method](
      route.path,
      ...(tagged ? [tagRoute(fullPath(route))] : []),
      ...(route.area === 'portal' ? portalGuards : []),
      ...route.handlers,
    );

  const thin = Router();
  thin.use(routers.public);
  thin.use('/api/v1', anonymousActor, routers.api, (_req, _res, next) => next(notFound()));
  // Who, how often, whether it ran already — before any route's work; unknown paths are a JSON 404.
  thin.use(
    MANAGE_API_PREFIX,
    anonymousActor,
    bearerAuth(ctx),
    perTokenRateLimit(ctx),
    jsonBodiesOnly,
    idempotency(ctx),
    routers.manage,
    (_req, _res, next) => next(notFound()),
  );

  const r = Router();
  // Every state-changing request needs its CSRF token, except the one-click unsubscribe (RFC 8058).
  r.use((req, res, next) => (isOneClickUnsubscribe(req) ? next() : guards.csrf(req, res, next)));
  r.use('/portal', hostServes('portal'), routers.portal);
  r.use(onHostBoundTo('portal', routers.portal));
  r.use('/offline', hostServes('offline'), routers.offline);
  r.use(onHostBoundTo('offline', routers.offline));
  r.use('/airgap', hostServes('airgap'), routers.airgap);
  r.use(onHostBoundTo('airgap', routers.airgap));
  r.use('/admin', routers.admin);
  r.use(routers.account);
  return { thin, full: r };
}

export const MANAGE_API_PREFIX = '/api/manage/v1';

/** The URL a route answers at on an unbound host (for tests and the route listing). */
export function fullPath(route: RouteDef): string {
  const prefix =
    route.area === 'api'
      ? '/api/v1'
      : route.area === 'manage'
        ? MANAGE_API_PREFIX
        : route.area === 'portal' || route.area === 'offline' || route.area === 'airgap' || route.area === 'admin'
          ? `/${route.area}`
          : '';
  return route.path === '/' && prefix ? prefix : prefix + route.path;
}
