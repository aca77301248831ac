import type { RequestHandler } from 'express';
import { HttpError } from '../lib/errors.ts';
import { isOneClickUnsubscribe } from './csrf-exempt.ts';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function originOf(url: string): string | null {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

/**
 * Defence in depth behind the CSRF token: a state-changing request (POST, PUT, PATCH, DELETE) is
 * refused with the CSRF error page (403) when the browser says it comes from another site
 * (`Sec-Fetch-Site: cross-site`), or when it names an `Origin` that is neither the request's own
 * (scheme and host as Express sees them, so behind TRUST_PROXY the proxy's) nor BASE_URL's.
 * `Origin: null` says nothing: under our `Referrer-Policy: no-referrer` browsers send it with every
 * form of ours, so it is treated like no Origin at all (Sec-Fetch-Site still tells). A request with
 * neither (older browsers, plain http, scripts, tests) goes on to the CSRF check, which still applies.
 *
 * The License API (/api/v1) is exempt: applications call it from anywhere, and it reads no cookie
 * (each request is signed by the device), so a cross-site request there can borrow nothing. So is
 * the one-click unsubscribe (middleware/csrf-exempt.ts): a mail client may POST it from anywhere.
 */
export function checkOrigin(baseUrl: string): RequestHandler {
  const configured = originOf(baseUrl);
  return (req, _res, next) => {
    if (SAFE_METHODS.has(req.method) || req.path.startsWith('/api/') || isOneClickUnsubscribe(req)) return next();
    if (req.get('sec-fetch-site') === 'cross-site') return next(new HttpError(403, 'errors.csrf'));
    const origin = req.get('origin');
    if (origin === undefined || origin === 'null') return next();
    const sent = originOf(origin);
    if (sent !== null && (sent === originOf(`${req.protocol}://${req.host}`) || sent === configured)) return next();
    next(new HttpError(403, 'errors.csrf'));
  };
}
