import type { RequestHandler } from 'express';
import type { AppContext } from '../../app.ts';
import { AppError } from '../../lib/errors.ts';
import { authenticateApiToken, type TokenRefusal } from '../../services/api-tokens.ts';
import { permissionsFor } from '../../policies/portal.ts';
import { VENDOR_ONLY_SCOPES, type ApiScope } from '../../policies/api-scopes.ts';

/** A 401 of the Management API: one shape for every refusal, `WWW-Authenticate: Bearer` as RFC 6750 asks. */
export function unauthorized(code: TokenRefusal): AppError {
  const error = code === 'token_missing' ? '' : ', error="invalid_token"';
  return new AppError('unauthorized', code, 401, `api.errors.${code}`, {
    headers: { 'WWW-Authenticate': `Bearer realm="portico"${error}` },
  });
}

/**
 * Authenticates every Management API request by its bearer token (docs/api.md, "Authentication").
 * Cookies are never read here (the area is mounted before the session): a signed-in browser has no
 * power over this API. Sets `req.api` (the principal), `req.actor` (audit rows name the token) and
 * `req.permissions` (the portal's permission codes of the principal outside any order).
 */
export function bearerAuth(ctx: AppContext): RequestHandler {
  return async (req, res, next) => {
    const header = req.get('authorization');
    if (!header) throw unauthorized('token_missing');
    const m = /^Bearer +([!-~]{1,200})$/i.exec(header.trim());
    if (!m) throw unauthorized('token_invalid');
    const result = await authenticateApiToken(ctx, m[1]!, { ip: req.ip ?? null, requestId: String(req.id) });
    if (typeof result === 'string') throw unauthorized(result);
    req.api = result;
    req.actor = result.actor;
    res.locals.apiToken = `#${result.token.id} ${result.token.displayPrefix}…`;
    req.permissions = await permissionsFor(ctx.db, result.account);
    next();
  };
}

/**
 * The scope guard of a route line: 403 `insufficient_scope` unless the token carries the scope. A
 * personal token never passes a vendor-only scope, whatever it carries.
 */
export const scope =
  (needed: ApiScope): RequestHandler =>
  (req, _res, next) => {
    const principal = req.api!;
    const vendorOnly = VENDOR_ONLY_SCOPES.includes(needed) && principal.token.kind !== 'client';
    if (vendorOnly || !principal.token.scopes.includes(needed))
      throw new AppError('forbidden', 'insufficient_scope', 403, 'api.errors.insufficient_scope', {
        headers: { 'WWW-Authenticate': `Bearer realm="portico", error="insufficient_scope", scope="${needed}"` },
        vars: { scope: needed },
      });
    next();
  };

/** Routes only vendor API clients may use (a manager's token gets 404: the resource does not exist for it). */
export const vendorOnly: RequestHandler = (req, _res, next) => {
  if (req.api?.token.kind !== 'client') throw AppError.notFound();
  next();
};
