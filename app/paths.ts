/** Appends the non-empty parameters as a query string. */
export function withQuery(path: string, params: Record<string, string | number | undefined | null> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== '' && !(k === 'page' && Number(v) <= 1)) q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

type Query = Record<string, string | number | undefined | null>;

/** The webhook pages under `base` (/admin, or the User Portal's base). */
const webhookPaths = (base: string) => ({
  index: () => `${base}/webhooks`,
  new: () => `${base}/webhooks/new`,
  show: (id: number) => `${base}/webhooks/${id}`,
  edit: (id: number) => `${base}/webhooks/${id}/edit`,
  rotate: (id: number) => `${base}/webhooks/${id}/rotate`,
  disable: (id: number) => `${base}/webhooks/${id}/disable`,
  enable: (id: number) => `${base}/webhooks/${id}/enable`,
  delete: (id: number) => `${base}/webhooks/${id}/delete`,
  test: (id: number) => `${base}/webhooks/${id}/test`,
  resend: (id: number, deliveryId: number) => `${base}/webhooks/${id}/deliveries/${deliveryId}/resend`,
});

/** A customer's single sign-on pages under `base` (/admin/customers/:id, or the User Portal's /customers/:id). */
const ssoPaths = (base: string) => ({
  index: () => `${base}/sso`,
  create: () => `${base}/sso/providers`,
  seatRule: () => `${base}/sso/seat-rule`,
  show: (id: number) => `${base}/sso/providers/${id}`,
  update: (id: number) => `${base}/sso/providers/${id}`,
  delete: (id: number) => `${base}/sso/providers/${id}/delete`,
  domains: (id: number) => `${base}/sso/providers/${id}/domains`,
  domain: (id: number, domainId: number, change: string) => `${base}/sso/providers/${id}/domains/${domainId}/${change}`,
  mappings: (id: number) => `${base}/sso/providers/${id}/mappings`,
  mappingDelete: (id: number, mappingId: number) => `${base}/sso/providers/${id}/mappings/${mappingId}/delete`,
});

/**
 * Every URL the app renders or redirects to. Views and controllers never write a URL by hand.
 * A host bound to one portal serves it at `/`: that portal's base is '' there and
 * '/portal', '/offline' or '/airgap' everywhere else.
 */
export function makePaths(boundPortal: string | null) {
  const enc = encodeURIComponent;
  const portalBase = boundPortal === 'portal' ? '' : '/portal';
  const offlineBase = boundPortal === 'offline' ? '' : '/offline';
  const airgapBase = boundPortal === 'airgap' ? '' : '/airgap';
  return {
    home: () => '/',
    login: () => '/login',
    unlockLogin: (token: string) => `/login/unlock/${enc(token)}`,
    unsubscribe: (token: string) => `/unsubscribe/${enc(token)}`,
    logout: () => '/logout',
    forgotPassword: () => '/password/forgot',
    resetPassword: (token: string) => `/password/reset/${enc(token)}`,
    setup: (token: string) => `/setup/${enc(token)}`,
    licenseInvitation: (token: string) => `/invitations/${enc(token)}`,
    account: () => '/account',
    accountPassword: () => '/account/password',
    accountNotifications: () => '/account/notifications',
    accountSessionsEnd: () => '/account/sessions/end',
    accountTwoFactor: () => '/account/two-factor',
    accountTwoFactorSetup: () => '/account/two-factor/setup',
    accountTwoFactorConfirm: () => '/account/two-factor/confirm',
    accountTwoFactorRecoveryCodes: () => '/account/two-factor/recovery-codes',
    accountTwoFactorDisable: () => '/account/two-factor/disable',
    loginTwoFactor: () => '/login/two-factor',
    language: () => '/language',
    healthz: () => '/healthz',
    publicKeys: () => '/.well-known/portico-keys.json',
    brandingCss: () => '/branding.css',
    brandingLogo: () => '/branding/logo',
    asset: (file: string) => `/static/${file}`,
    /** The action URL of a multipart form: its CSRF token travels in the query string. */
    withCsrf: (url: string, token: string) => `${url}${url.includes('?') ? '&' : '?'}_csrf=${enc(token)}`,
    portal: () => portalBase || '/',
    offline: () => offlineBase || '/',
    offlineUpload: () => `${offlineBase}/requests`,
    offlineReport: () => `${offlineBase}/reports`,
    offlineDownload: (token: string) => `${offlineBase}/download/${enc(token)}`,
    offlineScript: () => '/static/js/offline.js',
    airgap: (query: Query = {}) => withQuery(airgapBase || '/', query),
    airgapActivate: () => `${airgapBase}/activate`,
    airgapDeactivate: () => `${airgapBase}/deactivate`,
    airgapDownload: (token: string) => `${airgapBase}/download/${enc(token)}`,
    copyScript: () => '/static/js/copy.js',
    confirmScript: () => '/static/js/confirm.js',
    /** The charting library (chart.js, served from node_modules by app/app.ts) and the usage pages' script. */
    chartScript: () => '/static/vendor/chart.umd.min.js',
    usageScript: () => '/static/js/usage.js',
    /** The usage pages (app/controllers/usage.ts) of the console (`admin`) or the User Portal. */
    usage: (area: 'admin' | 'portal') => {
      const base = area === 'admin' ? '/admin' : portalBase;
      return {
        overview: (query: Query = {}) => withQuery('/admin/usage', query),
        overviewCsv: (query: Query = {}) => withQuery('/admin/usage.csv', query),
        order: (id: number, query: Query = {}) => withQuery(`${base}/orders/${id}/usage`, query),
        orderCsv: (id: number, query: Query = {}) => withQuery(`${base}/orders/${id}/usage.csv`, query),
        license: (id: number, query: Query = {}) => withQuery(`${base}/licenses/${id}/usage`, query),
        licenseCsv: (id: number, query: Query = {}) => withQuery(`${base}/licenses/${id}/usage.csv`, query),
        release: (licenseId: number, deviceId: number) =>
          `${base}/licenses/${licenseId}/usage/devices/${deviceId}/release`,
      };
    },
    portalOrders: (query: Query = {}) => withQuery(`${portalBase}/orders`, query),
    portalOrderNew: () => `${portalBase}/orders/new`,
    portalBundleNew: () => `${portalBase}/orders/bundle/new`,
    portalBundle: () => `${portalBase}/orders/bundle`,
    portalOrder: (id: number, query: Query = {}) => withQuery(`${portalBase}/orders/${id}`, query),
    portalOrderExport: (id: number) => `${portalBase}/orders/${id}/export.csv`,
    portalOrderDispatch: (id: number) => `${portalBase}/orders/${id}/dispatch`,
    portalOrderDispatchCsv: (id: number) => `${portalBase}/orders/${id}/dispatch/csv`,
    portalOrderLicenses: (id: number) => `${portalBase}/orders/${id}/licenses`,
    portalOrderManagers: (id: number) => `${portalBase}/orders/${id}/managers`,
    portalOrderManagerRemove: (id: number, accountId: number) =>
      `${portalBase}/orders/${id}/managers/${accountId}/delete`,
    portalOrderManagerRole: (id: number, accountId: number) => `${portalBase}/orders/${id}/managers/${accountId}/role`,
    portalTeam: () => `${portalBase}/team`,
    portalTokens: () => `${portalBase}/tokens`,
    portalTokenNew: () => `${portalBase}/tokens/new`,
    portalTokenRevoke: (id: number) => `${portalBase}/tokens/${id}/revoke`,
    portalMail: (query: Query = {}) => withQuery(`${portalBase}/mail`, query),
    portalMailItem: (id: number) => `${portalBase}/mail/${id}`,
    portalTeamQuota: (accountId: number) => `${portalBase}/team/${accountId}/quotas`,
    portalOrderCustomer: (id: number) => `${portalBase}/orders/${id}/customer`,
    portalOrderCustomerEdit: (id: number) => `${portalBase}/orders/${id}/customer/edit`,
    portalOrderVouchers: (id: number) => `${portalBase}/orders/${id}/vouchers`,
    portalOrderVouchersCsv: (id: number) => `${portalBase}/orders/${id}/vouchers/new-codes.csv`,
    portalOrderVouchersPrint: (id: number) => `${portalBase}/orders/${id}/vouchers/new-codes/print`,
    portalOrderVouchersDismiss: (id: number) => `${portalBase}/orders/${id}/vouchers/new-codes/dismiss`,
    portalVoucherVoid: (id: number, voucherId: number) => `${portalBase}/orders/${id}/vouchers/${voucherId}/void`,
    redeem: (query: Query = {}) => withQuery('/redeem', query),
    // --- renewal requests (services/renewals.ts) ---
    portalOrderRenewals: (id: number) => `${portalBase}/orders/${id}/renewals`,
    portalOrderRenewalNew: (id: number, kind: string) => withQuery(`${portalBase}/orders/${id}/renewals/new`, { kind }),
    portalLicenseRenewals: (id: number) => `${portalBase}/licenses/${id}/renewals`,
    portalLicenseRenewalNew: (id: number, kind: string) =>
      withQuery(`${portalBase}/licenses/${id}/renewals/new`, { kind }),
    portalMyLicenseRenewals: (id: number) => `${portalBase}/my/licenses/${id}/renewals`,
    portalMyLicenseRenewalNew: (id: number, kind: string) =>
      withQuery(`${portalBase}/my/licenses/${id}/renewals/new`, { kind }),
    adminRenewals: (query: Query = {}) => withQuery('/admin/renewals', query),
    adminRenewal: (id: number) => `/admin/renewals/${id}`,
    portalLicense: (id: number) => `${portalBase}/licenses/${id}`,
    portalLicenseDisable: (id: number) => `${portalBase}/licenses/${id}/disable`,
    portalLicenseEnable: (id: number) => `${portalBase}/licenses/${id}/enable`,
    portalLicenseNote: (id: number) => `${portalBase}/licenses/${id}/note`,
    portalLicenseReset: (id: number) => `${portalBase}/licenses/${id}/reset`,
    portalDeviceReset: (id: number, deviceId: number) => `${portalBase}/licenses/${id}/devices/${deviceId}/reset`,
    portalDeviceRevoke: (id: number, deviceId: number) => `${portalBase}/licenses/${id}/devices/${deviceId}/revoke`,
    portalDeviceUnblacklist: (id: number, deviceId: number) =>
      `${portalBase}/licenses/${id}/devices/${deviceId}/unblacklist`,
    portalDeviceBorrow: (id: number, deviceId: number) => `${portalBase}/licenses/${id}/devices/${deviceId}/borrow`,
    portalDeviceRefresh: (id: number, deviceId: number) => `${portalBase}/licenses/${id}/devices/${deviceId}/refresh`,
    portalDeviceReports: (id: number, deviceId: number) => `${portalBase}/licenses/${id}/devices/${deviceId}/reports`,
    adminDeviceReports: (id: number, deviceId: number) => `/admin/licenses/${id}/devices/${deviceId}/reports`,
    portalLicenseUsers: (id: number) => `${portalBase}/licenses/${id}/users`,
    portalLicenseUser: (id: number, accountId: number) => `${portalBase}/licenses/${id}/users/${accountId}`,
    portalLicenseUserRemove: (id: number, accountId: number) =>
      `${portalBase}/licenses/${id}/users/${accountId}/delete`,
    portalLicenseUserPassword: (id: number, accountId: number) =>
      `${portalBase}/licenses/${id}/users/${accountId}/password`,
    portalLicenseInvitationWithdraw: (id: number, invitationId: number) =>
      `${portalBase}/licenses/${id}/invitations/${invitationId}/delete`,
    portalPolicyNew: (query: Query = {}) => withQuery(`${portalBase}/policies/new`, query),
    portalPolicies: () => `${portalBase}/policies`,
    portalMyDeviceRelease: (deviceId: number) => `${portalBase}/my/devices/${deviceId}/release`,
    portalSearch: (query: Query = {}) => withQuery(`${portalBase}/search`, query),
    admin: () => '/admin',
    adminOutbox: (query: Query = {}) => withQuery('/admin/outbox', query),
    adminOutboxMail: (id: number) => `/admin/outbox/${id}`,
    adminJobs: (query: Query = {}) => withQuery('/admin/jobs', query),
    adminMailTemplates: () => '/admin/mail-templates',
    adminMailTemplate: (kind: string, query: Query = {}) => withQuery(`/admin/mail-templates/${enc(kind)}`, query),
    adminJobRunAgain: (id: number) => `/admin/jobs/${id}/run-again`,
    adminJobCancel: (id: number) => `/admin/jobs/${id}/cancel`,
    adminProducts: (query: Query = {}) => withQuery('/admin/products', query),
    adminProductNew: () => '/admin/products/new',
    adminProduct: (id: number) => `/admin/products/${id}`,
    adminProductEdit: (id: number) => `/admin/products/${id}/edit`,
    adminProductArchive: (id: number) => `/admin/products/${id}/archive`,
    adminProductUnarchive: (id: number) => `/admin/products/${id}/unarchive`,
    adminProductDelete: (id: number) => `/admin/products/${id}/delete`,
    adminFeatures: (productId: number) => `/admin/products/${productId}/features`,
    adminFeature: (productId: number, featureId: number) => `/admin/products/${productId}/features/${featureId}`,
    adminFeatureDelete: (productId: number, featureId: number) =>
      `/admin/products/${productId}/features/${featureId}/delete`,
    // --- customers, orders, licenses, license users, managers ---
    adminCustomers: (query: Query = {}) => withQuery('/admin/customers', query),
    adminCustomerNew: () => '/admin/customers/new',
    adminCustomer: (id: number, query: Query = {}) => withQuery(`/admin/customers/${id}`, query),
    adminCustomerEdit: (id: number) => `/admin/customers/${id}/edit`,
    adminCustomerDelete: (id: number) => `/admin/customers/${id}/delete`,
    adminCustomerOrderNew: (id: number) => `/admin/customers/${id}/orders/new`,
    adminCustomerOrders: (id: number) => `/admin/customers/${id}/orders`,
    adminOrders: (query: Query = {}) => withQuery('/admin/orders', query),
    adminOrder: (id: number, query: Query = {}) => withQuery(`/admin/orders/${id}`, query),
    adminOrderEdit: (id: number) => `/admin/orders/${id}/edit`,
    adminOrderDelete: (id: number) => `/admin/orders/${id}/delete`,
    adminOrderLicenses: (id: number) => `/admin/orders/${id}/licenses`,
    // --- redeemable codes in the console (controllers/admin/vouchers.ts) ---
    adminVouchers: (query: Query = {}) => withQuery('/admin/vouchers', query),
    adminVoucherBatch: (id: number) => `/admin/vouchers/${id}`,
    adminVoucherVoid: (batchId: number, voucherId: number) => `/admin/vouchers/${batchId}/codes/${voucherId}/void`,
    adminVoucherBatchVoidRest: (batchId: number) => `/admin/vouchers/${batchId}/void-rest`,
    adminOrderVouchers: (id: number) => `/admin/orders/${id}/vouchers`,
    adminOrderVouchersCsv: (id: number) => `/admin/orders/${id}/vouchers/new-codes.csv`,
    adminOrderVouchersPrint: (id: number) => `/admin/orders/${id}/vouchers/new-codes/print`,
    adminOrderVouchersDismiss: (id: number) => `/admin/orders/${id}/vouchers/new-codes/dismiss`,
    adminLicenses: (query: Query = {}) => withQuery('/admin/licenses', query),
    adminLicense: (id: number) => `/admin/licenses/${id}`,
    adminLicenseEdit: (id: number) => `/admin/licenses/${id}/edit`,
    adminLicenseDisable: (id: number) => `/admin/licenses/${id}/disable`,
    adminLicenseEnable: (id: number) => `/admin/licenses/${id}/enable`,
    adminLicenseReset: (id: number) => `/admin/licenses/${id}/reset`,
    adminDeviceReset: (licenseId: number, deviceId: number) => `/admin/licenses/${licenseId}/devices/${deviceId}/reset`,
    adminDeviceBlacklist: (licenseId: number, deviceId: number) =>
      `/admin/licenses/${licenseId}/devices/${deviceId}/blacklist`,
    adminDeviceUnblacklist: (licenseId: number, deviceId: number) =>
      `/admin/licenses/${licenseId}/devices/${deviceId}/unblacklist`,
    adminDeviceRefresh: (licenseId: number, deviceId: number) =>
      `/admin/licenses/${licenseId}/devices/${deviceId}/refresh`,
    adminLicenseAssignUser: (id: number) => `/admin/licenses/${id}/users`,
    adminLicenseUserLimit: (id: number, accountId: number) => `/admin/licenses/${id}/users/${accountId}`,
    adminLicenseUserUnassign: (id: number, accountId: number) => `/admin/licenses/${id}/users/${accountId}/delete`,
    adminLicenseUsers: (query: Query = {}) => withQuery('/admin/license-users', query),
    adminLicenseUserNew: () => '/admin/license-users/new',
    adminLicenseUser: (id: number) => `/admin/license-users/${id}`,
    adminLicenseUserPassword: (id: number) => `/admin/license-users/${id}/password`,
    adminManagers: (query: Query = {}) => withQuery('/admin/managers', query),
    adminManagerNew: () => '/admin/managers/new',
    adminManagerDefaults: () => '/admin/managers/defaults',
    adminManager: (id: number) => `/admin/managers/${id}`,
    adminManagerInvitation: (id: number) => `/admin/managers/${id}/invitation`,
    adminManagerPermissions: (id: number) => `/admin/managers/${id}/permissions`,
    adminManagerOrders: (id: number) => `/admin/managers/${id}/orders`,
    adminManagerOrderRemove: (id: number, orderId: number) => `/admin/managers/${id}/orders/${orderId}/delete`,
    adminManagerOrderRole: (id: number, orderId: number) => `/admin/managers/${id}/orders/${orderId}/role`,
    adminRoles: () => '/admin/roles',
    adminApiClients: () => '/admin/api-clients',
    adminApiClientNew: () => '/admin/api-clients/new',
    adminApiClientRevoke: (id: number) => `/admin/api-clients/${id}/revoke`,
    adminRoleNew: () => '/admin/roles/new',
    adminRole: (id: number) => `/admin/roles/${id}`,
    adminRoleEdit: (id: number) => `/admin/roles/${id}/edit`,
    adminRoleDefault: (id: number) => `/admin/roles/${id}/default`,
    adminRoleDelete: (id: number) => `/admin/roles/${id}/delete`,
    adminManagerQuotas: (id: number) => `/admin/managers/${id}/quotas`,
    adminManagerQuotaRemove: (id: number, productId: number) => `/admin/managers/${id}/quotas/${productId}/delete`,
    adminManagerPolicies: (id: number) => `/admin/managers/${id}/policies`,
    // --- brandings, settings, signing keys ---
    adminBrandings: (query: Query = {}) => withQuery('/admin/brandings', query),
    adminBrandingNew: () => '/admin/brandings/new',
    adminBranding: (id: number) => `/admin/brandings/${id}`,
    adminBrandingEdit: (id: number) => `/admin/brandings/${id}/edit`,
    adminBrandingDelete: (id: number) => `/admin/brandings/${id}/delete`,
    adminBrandingHosts: (id: number) => `/admin/brandings/${id}/hosts`,
    adminBrandingHostDelete: (id: number, hostId: number) => `/admin/brandings/${id}/hosts/${hostId}/delete`,
    adminBrandingLogo: (id: number) => `/admin/brandings/${id}/logo`,
    adminBrandingLogoDelete: (id: number) => `/admin/brandings/${id}/logo/delete`,
    adminSettings: () => '/admin/settings',
    adminSettingsLdap: () => '/admin/settings/ldap',
    adminThrottles: () => '/admin/throttles',
    adminSearch: (query: Query = {}) => withQuery('/admin/search', query),
    adminThrottlesClear: () => '/admin/throttles/clear',
    adminKeys: () => '/admin/keys',
    adminKeyActivate: (kid: string) => `/admin/keys/${enc(kid)}/activate`,
    adminKeyRetire: (kid: string) => `/admin/keys/${enc(kid)}/retire`,
    // --- audit log ---
    adminAudit: (query: Query = {}) => withQuery('/admin/audit', query),
    adminAuditEvent: (id: number) => `/admin/audit/${id}`,
    adminAuditCsv: (query: Query = {}) => withQuery('/admin/audit.csv', query),
    adminPolicies: (productId: number) => `/admin/products/${productId}/policies`,
    adminPolicyNew: (productId: number) => `/admin/products/${productId}/policies/new`,
    adminPolicy: (id: number) => `/admin/policies/${id}`,
    adminPolicyEdit: (id: number) => `/admin/policies/${id}/edit`,
    adminPolicyDefault: (id: number) => `/admin/policies/${id}/default`,
    adminPolicyArchive: (id: number) => `/admin/policies/${id}/archive`,
    adminPolicyUnarchive: (id: number) => `/admin/policies/${id}/unarchive`,
    // --- webhooks: the same pages in the console (the vendor's endpoints) and the User Portal (a manager's) ---
    adminWebhooks: () => '/admin/webhooks',
    adminWebhook: (id: number) => `/admin/webhooks/${id}`,
    portalWebhook: (id: number) => `${portalBase}/webhooks/${id}`,
    webhooks: (area: 'admin' | 'portal') => webhookPaths(area === 'admin' ? '/admin' : portalBase),
    // --- single sign-on (docs/sso.md): the login side, then a customer's pages in the console and the User Portal ---
    ssoLogin: (query: Query = {}) => withQuery('/login/sso', query),
    ssoContinue: (id: number, query: Query = {}) => withQuery(`/login/sso/${id}`, query),
    ssoStart: (id: number, query: Query = {}) => withQuery(`/sso/${id}/start`, query),
    ssoScript: () => '/static/js/sso.js',
    ssoOidcCallback: (id: number) => `/sso/${id}/oidc/callback`,
    ssoSamlAcs: (id: number) => `/sso/${id}/saml/acs`,
    ssoSamlMetadata: (id: number) => `/sso/${id}/saml/metadata`,
    ssoSamlComplete: (id: number, query: Query = {}) => withQuery(`/sso/${id}/saml/complete`, query),
    sso: (area: 'admin' | 'portal', customerId: number) =>
      ssoPaths(area === 'admin' ? `/admin/customers/${customerId}` : `${portalBase}/customers/${customerId}`),
  };
}

export type Paths = ReturnType<typeof makePaths>;

/** Only same-site relative paths may be used as a redirect target taken from a request. */
export function safeReturnPath(value: unknown): string | undefined {
  if (typeof value !== 'string' || !value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\'))
    return undefined;
  if (value.length > 2000 || /[\r\n]/.test(value)) return undefined;
  return value;
}
