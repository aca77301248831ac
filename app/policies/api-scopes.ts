/**
 * THE list of Management API scopes (docs/api.md, "Scopes"). A token carries some of them; each route
 * line names the one it needs. Personal access tokens (managers) may carry only the non-vendor ones;
 * what they then may do is further bounded by the manager's permissions on the order at hand.
 */
export const API_SCOPES = [
  'customers:read',
  'customers:write',
  'orders:read',
  'orders:write',
  'licenses:read',
  'licenses:write',
  'license_users:read',
  'license_users:write',
  'vouchers:read',
  'vouchers:write',
  'managers:read',
  'managers:write',
  'products:read',
  'products:write',
] as const;

export type ApiScope = (typeof API_SCOPES)[number];

/** Scopes only vendor API clients may hold: managers and roles, and writing the catalogue. */
export const VENDOR_ONLY_SCOPES: readonly ApiScope[] = ['managers:read', 'managers:write', 'products:write'];

export const PERSONAL_SCOPES: readonly ApiScope[] = API_SCOPES.filter((s) => !VENDOR_ONLY_SCOPES.includes(s));

export const isApiScope = (s: string): s is ApiScope => (API_SCOPES as readonly string[]).includes(s);

/** The longest a token may live (days); the form offers shorter. */
export const MAX_TOKEN_DAYS = 366;
