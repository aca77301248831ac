import type { RequestHandler } from 'express';
import type { Role } from '../models/accounts.ts';
import type { Settings } from '../models/settings.ts';
import { notFound } from '../lib/errors.ts';
import { mustEnrolSecondFactor } from '../policies/two-factor.ts';

/** Anonymous visitors are sent to the login page and come back after logging in. */
export const requireLogin: RequestHandler = (req, res, next) => {
  if (req.user) return next();
  if (req.method === 'GET') req.session.returnTo = req.originalUrl;
  res.redirect(303, res.locals.paths.login());
};

/** A logged-in account without the role gets 404: the area's existence is not confirmed. */
export function requireRole(...roles: Role[]): RequestHandler {
  return (req, res, next) => {
    if (!req.user) return requireLogin(req, res, next);
    if (!roles.includes(req.user.role)) return next(notFound());
    next();
  };
}

const ALLOWED_DURING_FORCED_CHANGE = new Set(['/account/password', '/logout', '/language']);

/** An account with an initial password can do nothing else until it has chosen its own. */
export const forcePasswordChange: RequestHandler = (req, res, next) => {
  if (!req.user?.mustChangePassword || ALLOWED_DURING_FORCED_CHANGE.has(req.path) || req.path.startsWith('/static/'))
    return next();
  res.redirect(303, res.locals.paths.accountPassword());
};

const ALLOWED_DURING_FORCED_ENROLMENT = new Set(['/logout', '/language']);

/**
 * Where the vendor requires a second factor for managers (Settings), a manager without one can do
 * nothing but enrol (or log out, or switch the language). The forced password change comes first.
 */
export function forceSecondFactorEnrolment(settings: () => Promise<Settings>): RequestHandler {
  return async (req, res, next) => {
    const user = req.user;
    // Cheap checks first: the settings are read only for a manager without a second factor.
    if (user?.role !== 'manager' || user.totpEnabledAt || user.mustChangePassword) return next();
    if (
      ALLOWED_DURING_FORCED_ENROLMENT.has(req.path) ||
      req.path === '/account/two-factor' ||
      req.path.startsWith('/account/two-factor/') ||
      req.path.startsWith('/static/')
    )
      return next();
    if (!mustEnrolSecondFactor(user, await settings())) return next();
    res.redirect(303, res.locals.paths.accountTwoFactor());
  };
}

/**
 * The actor of a request on the thin path (the License API): nobody signed in, its address and
 * request id for the audit trail. Pages get theirs from the locals middleware, after the session.
 */
export const anonymousActor: RequestHandler = (req, _res, next) => {
  req.actor = { accountId: null, label: null, ip: req.ip ?? null, requestId: String(req.id), sessionId: null };
  req.lang = 'en';
  next();
};
