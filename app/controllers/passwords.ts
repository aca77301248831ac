import type { Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import { forgotPasswordForm, resetPasswordForm } from '../forms/auth.ts';
import { formData, parseForm } from '../forms/parse.ts';
import { onFailure } from '../middleware/errors.ts';
import { flash } from '../lib/flash.ts';
import {
  RESET_LINK_MINUTES,
  isResetTokenUsable,
  isUnlockTokenUsable,
  requestPasswordReset,
  isInvitationToken,
  resetPassword,
  unlockAccount,
} from '../services/auth.ts';
import { homeFor } from './sessions.ts';
import { mailingFrom } from './helpers.ts';

/** Forgot password (e-mailed single-use link) and the reset form behind that link. */
export function passwordsController(ctx: AppContext) {
  const token = (req: Request) => String(req.params.token ?? '');

  return {
    showForgot(_req: Request, res: Response) {
      res.render('auth/forgot', { title: res.locals.t('auth.forgot.title') });
    },

    async forgot(req: Request, res: Response) {
      onFailure(res, {
        rerender: (err) =>
          res
            .status(422)
            .render('auth/forgot', { title: req.t('auth.forgot.title'), values: req.body, errors: err.fieldErrors }),
      });
      const form = formData(forgotPasswordForm, req.body);
      await requestPasswordReset(mailingFrom(ctx, req), req.actor, form.email);
      // The same answer whether or not the address has an account.
      flash(req, 'info', req.t('auth.forgot.sent', { minutes: RESET_LINK_MINUTES }));
      res.redirect(303, res.locals.paths.login());
    },

    async showReset(req: Request, res: Response) {
      if (!(await isResetTokenUsable(ctx, token(req))))
        return res.status(410).render('auth/reset-invalid', { title: req.t('auth.reset.title') });
      const welcome = await isInvitationToken(ctx, token(req));
      res.set('Referrer-Policy', 'no-referrer').render('auth/reset', {
        title: req.t(welcome ? 'auth.welcome.title' : 'auth.reset.title'),
        token: token(req),
        welcome,
      });
    },

    async reset(req: Request, res: Response) {
      const form = parseForm(resetPasswordForm, req.body);
      if (!form.ok) {
        if (!(await isResetTokenUsable(ctx, token(req))))
          return res.status(410).render('auth/reset-invalid', { title: req.t('auth.reset.title') });
        const welcome = await isInvitationToken(ctx, token(req));
        return res.status(422).render('auth/reset', {
          title: req.t(welcome ? 'auth.welcome.title' : 'auth.reset.title'),
          token: token(req),
          welcome,
          errors: form.errors,
        });
      }
      onFailure(res, {
        rerenderKinds: ['gone'],
        rerender: () => res.render('auth/reset-invalid', { title: req.t('auth.reset.title') }),
      });
      const { account, signIn } = await resetPassword(ctx, req.actor, token(req), form.data.password);
      if (!signIn) {
        flash(req, 'success', req.t('auth.reset.done'));
        return res.redirect(303, res.locals.paths.login());
      }
      // An accepted invitation: signed in (passport gives the session a new id), then a welcome.
      await new Promise<void>((resolve, reject) => req.logIn(account, (err) => (err ? reject(err) : resolve())));
      // In the account's language, which the pages use from now on.
      flash(
        req,
        'success',
        ctx.translatorFor(account.language)(`auth.welcome.${account.role}`, { name: account.name }),
      );
      res.redirect(303, homeFor(account, res.locals.paths));
    },

    /** The e-mailed link that lifts an account's sign-in throttle (single use, like a reset link). */
    async showUnlock(req: Request, res: Response) {
      if (!(await isUnlockTokenUsable(ctx, token(req))))
        return res.status(410).render('auth/unlock', { title: req.t('auth.unlock.title'), token: null });
      res
        .set('Referrer-Policy', 'no-referrer')
        .render('auth/unlock', { title: req.t('auth.unlock.title'), token: token(req) });
    },

    async unlock(req: Request, res: Response) {
      if (!(await unlockAccount(ctx, req.actor, token(req))))
        return res.status(410).render('auth/unlock', { title: req.t('auth.unlock.title'), token: null });
      flash(req, 'success', req.t('auth.unlock.done'));
      res.redirect(303, res.locals.paths.login());
    },
  };
}
