import type { NextFunction, Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import type { Account } from '../models/accounts.ts';
import { loginForm } from '../forms/auth.ts';
import { parseForm } from '../forms/parse.ts';
import { onFailure } from '../middleware/errors.ts';
import { flash } from '../lib/flash.ts';
import { safeReturnPath, type Paths } from '../paths.ts';
import { recordLogout } from '../services/auth.ts';
import { awaitSecondFactor } from './two-factor.ts';
import { routePasswordLogin } from './sso.ts';

export function homeFor(account: Account, paths: Paths): string {
  return account.role === 'admin' ? paths.admin() : paths.portal();
}

/** Where a completed login goes: the forced password change, else where the visitor was going, else home. */
export function afterLoginPath(account: Account, returnTo: string | undefined, paths: Paths): string {
  return account.mustChangePassword ? paths.accountPassword() : (returnTo ?? homeFor(account, paths));
}

export function sessionsController(ctx: AppContext) {
  const render = (res: Response, status: number, values: object, errors: object, formError?: string) =>
    res.status(status).render('auth/login', { title: res.locals.t('auth.login.title'), values, errors, formError });

  return {
    show(req: Request, res: Response) {
      if (req.user) return res.redirect(303, homeFor(req.user, res.locals.paths));
      // After a single sign-on logout: the provider's end-session URL, offered once (controllers/sso.ts).
      const endSessionUrl = req.session.ssoEndSessionUrl;
      delete req.session.ssoEndSessionUrl;
      const email = typeof req.query.email === 'string' ? req.query.email.slice(0, 254) : '';
      res.status(200).render('auth/login', {
        title: res.locals.t('auth.login.title'),
        values: { email },
        errors: {},
        endSessionUrl,
      });
    },

    async create(req: Request, res: Response, next: NextFunction) {
      // Single sign-on: an address routed to its provider, or a password refused for its domain.
      if (await routePasswordLogin(ctx, req, res)) return;
      const form = parseForm(loginForm, req.body);
      const values = { email: typeof req.body?.email === 'string' ? req.body.email : '' };
      if (!form.ok) return render(res, 422, values, form.errors);
      // Too many failures: the form again, saying how long to wait (the mapper sets 429 and Retry-After).
      // A staff directory that cannot answer (503) or refuses the console (403): the form again, saying so.
      onFailure(res, {
        rerenderKinds: ['rate_limited', 'busy', 'forbidden'],
        rerender: (err) =>
          render(
            res,
            err.status,
            values,
            {},
            err.kind === 'rate_limited'
              ? res.locals.t('counts.loginTooManyAttempts', {
                  count: Math.ceil(Number(err.headers['Retry-After']) / 60),
                })
              : res.locals.t(err.messageKey),
          ),
      });
      ctx.passport.authenticate('local', (err: unknown, account: Account | false) => {
        if (err) return next(err);
        if (!account) return render(res, 401, values, {}, res.locals.t('auth.login.invalid'));
        const returnTo = safeReturnPath(req.session.returnTo);
        if (account.totpEnabledAt)
          return awaitSecondFactor(ctx, req, account, returnTo).then(
            () => res.redirect(303, res.locals.paths.loginTwoFactor()),
            next,
          );
        // passport regenerates the session here: the session id changes at login (no fixation).
        req.logIn(account, (loginErr) => {
          if (loginErr) return next(loginErr);
          res.redirect(303, afterLoginPath(account, returnTo, res.locals.paths));
        });
      })(req, res, next);
    },

    async destroy(req: Request, res: Response, next: NextFunction) {
      if (req.user) await recordLogout(ctx, req.actor);
      const lang = req.lang;
      const endSessionUrl = req.session.ssoEndSessionUrl;
      req.logOut((err) => {
        if (err) return next(err);
        req.session.lang = lang;
        if (endSessionUrl) req.session.ssoEndSessionUrl = endSessionUrl;
        flash(req, 'success', req.t('auth.logout.done'));
        res.redirect(303, res.locals.paths.login());
      });
    },
  };
}
