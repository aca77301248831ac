/**
 * Every URL the app renders or redirects to. Views and controllers never write a URL by hand.
 * `portalBase` is '' on a host bound to the User Portal (served at /) and '/portal' elsewhere.
 */
/** Appends the non-empty parameters as a query string. */
export function withQuery(path: string, params: Record<string, string | number | undefined | null> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '' && !(k === 'page' && Number(v) <= 1)) q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

type Query = Record<string, string | number | undefined | null>;

export function makePaths(portalBase: string) {
  const enc = encodeURIComponent;
  return {
    home: () => '/',
    login: () => '/login',
    logout: () => '/logout',
    forgotPassword: () => '/password/forgot',
    resetPassword: (token: string) => `/password/reset/${enc(token)}`,
    setup: (token: string) => `/setup/${enc(token)}`,
    account: () => '/account',
    accountPassword: () => '/account/password',
    language: () => '/language',
    healthz: () => '/healthz',
    publicKeys: () => '/.well-known/portico-keys.json',
    brandingCss: () => '/branding.css',
    brandingLogo: () => '/branding/logo',
    asset: (file: string) => `/static/${file}`,
    /** The action URL of a multipart form: its CSRF token travels in the query string. */
    withCsrf: (url: string, token: string) => `${url}${url.includes('?') ? '&' : '?'}_csrf=${enc(token)}`,
    portal: () => portalBase || '/',
    admin: () => '/admin',
    adminOutbox: (query: Query = {}) => withQuery('/admin/outbox', query),
    adminOutboxMail: (id: number) => `/admin/outbox/${id}`,
    adminProducts: (query: Query = {}) => withQuery('/admin/products', query),
    adminProductNew: () => '/admin/products/new',
    adminProduct: (id: number) => `/admin/products/${id}`,
    adminProductEdit: (id: number) => `/admin/products/${id}/edit`,
    adminProductArchive: (id: number) => `/admin/products/${id}/archive`,
    adminProductUnarchive: (id: number) => `/admin/products/${id}/unarchive`,
    adminProductDelete: (id: number) => `/admin/products/${id}/delete`,
    adminFeatures: (productId: number) => `/admin/products/${productId}/features`,
    adminFeature: (productId: number, featureId: number) => `/admin/products/${productId}/features/${featureId}`,
    adminFeatureDelete: (productId: number, featureId: number) => `/admin/products/${productId}/features/${featureId}/delete`,
    // --- customers, orders, licenses, license users, managers ---
    // --- brandings, settings, signing keys ---
    adminBrandings: () => '/admin/brandings',
    adminSettings: () => '/admin/settings',
    adminKeys: () => '/admin/keys',
    // --- audit log ---
    adminAudit: (query: Query = {}) => withQuery('/admin/audit', query),
    adminPolicies: (productId: number) => `/admin/products/${productId}/policies`,
    adminPolicyNew: (productId: number) => `/admin/products/${productId}/policies/new`,
    adminPolicy: (id: number) => `/admin/policies/${id}`,
    adminPolicyEdit: (id: number) => `/admin/policies/${id}/edit`,
    adminPolicyDefault: (id: number) => `/admin/policies/${id}/default`,
    adminPolicyArchive: (id: number) => `/admin/policies/${id}/archive`,
    adminPolicyUnarchive: (id: number) => `/admin/policies/${id}/unarchive`,
  };
}

export type Paths = ReturnType<typeof makePaths>;

/** Only same-site relative paths may be used as a redirect target taken from a request. */
export function safeReturnPath(value: unknown): string | undefined {
  if (typeof value !== 'string' || !value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\')) return undefined;
  if (value.length > 2000 || /[\r\n]/.test(value)) return undefined;
  return value;
}
