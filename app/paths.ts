/**
 * Every URL the app renders or redirects to. Views and controllers never write a URL by hand.
 * `portalBase` is '' on a host bound to the User Portal (served at /) and '/portal' elsewhere.
 */
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
    portal: () => portalBase || '/',
    admin: () => '/admin',
    adminOutbox: (page?: number) => (page && page > 1 ? `/admin/outbox?page=${page}` : '/admin/outbox'),
    adminOutboxMail: (id: number) => `/admin/outbox/${id}`,
  };
}

export type Paths = ReturnType<typeof makePaths>;

/** Only same-site relative paths may be used as a redirect target taken from a request. */
export function safeReturnPath(value: unknown): string | undefined {
  if (typeof value !== 'string' || !value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\')) return undefined;
  if (value.length > 2000 || /[\r\n]/.test(value)) return undefined;
  return value;
}
