import type { RequestHandler } from 'express';
import type { Clock } from '../lib/clock.ts';
import { flash } from '../lib/flash.ts';

declare module 'express-session' {
  interface SessionData {
    /** When the account logged in (epoch milliseconds); set at every login (app.ts, serializeUser). */
    loginAt?: number;
  }
}

/**
 * The absolute session lifetime: a login older than `absoluteMs` is ended however active it has
 * been (the idle lifetime is the cookie's and the store's). A signed-in session without a login time
 * predates this rule and is ended too. The visitor lands on the login page with a message, and a
 * page they were opening (GET) is where the next login takes them.
 */
export function endExpiredLogins(clock: Clock, absoluteMs: number): RequestHandler {
  return (req, res, next) => {
    const loginAt = req.session?.loginAt;
    if (!req.user || (loginAt !== undefined && clock.now().getTime() - loginAt < absoluteMs)) return next();
    const lang = req.lang;
    const returnTo = req.method === 'GET' ? req.originalUrl : undefined;
    // Like logging out: passport drops the user and gives the visitor a new, empty session.
    req.logOut((err) => {
      if (err) return next(err);
      req.session.lang = lang;
      if (returnTo) req.session.returnTo = returnTo;
      flash(req, 'info', req.t('auth.sessionExpired', { hours: Math.round(absoluteMs / 3_600_000) }));
      res.redirect(303, res.locals.paths.login());
    });
  };
}
