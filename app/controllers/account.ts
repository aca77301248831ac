import type { Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import { changePasswordForm, languageForm, profileForm } from '../forms/auth.ts';
import { formData, parseForm } from '../forms/parse.ts';
import { onFailure } from '../middleware/errors.ts';
import { flash } from '../lib/flash.ts';
import { safeReturnPath } from '../paths.ts';
import { changePassword, endSessions, sessionsOf, updateProfile } from '../services/auth.ts';
import { homeFor } from './sessions.ts';
import type { SessionClient } from '../models/sessions.ts';
import { renewSession } from './helpers.ts';
import { NOTIFICATION_KINDS, preferencesOf, savePreferences } from '../services/unsubscribe.ts';

/** The signed-in account's own settings: name, language, password. */
export function accountController(ctx: AppContext) {
  const showPage = async (req: Request, res: Response, status = 200, extra: object = {}) =>
    res.status(status).render('account/show', {
      title: req.t('account.title'),
      values: { name: req.user!.name, language: req.user!.language },
      sessions: await sessionsOf(
        ctx,
        req.actor,
        req.user!.id,
        ctx.config.sessionMaxAgeMs,
        (req.session as { client?: SessionClient }).client ?? null,
      ),
      notifications: await preferencesOf(ctx.db, req.user!),
      ...extra,
    });

  const passwordPage = (req: Request, res: Response, status = 200, errors = {}) =>
    res.status(status).render('account/password', {
      title: req.t('account.password.title'),
      forced: req.user!.mustChangePassword,
      directory: Boolean(req.user!.directoryDn),
      errors,
    });

  return {
    show: (req: Request, res: Response) => showPage(req, res),

    async update(req: Request, res: Response) {
      onFailure(res, { rerender: (err) => showPage(req, res, 422, { values: req.body, errors: err.fieldErrors }) });
      const form = formData(profileForm, req.body);
      await updateProfile(ctx, req.actor, req.user!.id, form);
      req.session.lang = form.language;
      flash(req, 'success', ctx.i18n.getFixedT(form.language)('account.saved'));
      res.redirect(303, res.locals.paths.account());
    },

    /**
     * The notification preferences: a checkbox per kind of the account's role, on when ticked. Only
     * the signed-in account's own address is written (there is no account id in the form to forge).
     */
    async saveNotifications(req: Request, res: Response) {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const on = new Set<string>(NOTIFICATION_KINDS.filter((kind) => body[`notify_${kind}`] === 'on'));
      const changed = await savePreferences(ctx, req.actor, req.user!, on);
      flash(req, 'success', req.t(changed ? 'notificationPrefs.saved' : 'notificationPrefs.unchanged'));
      res.redirect(303, `${res.locals.paths.account()}#notifications`);
    },

    showPassword: (req: Request, res: Response) => passwordPage(req, res),

    async changePassword(req: Request, res: Response) {
      onFailure(res, { rerender: (err) => passwordPage(req, res, 422, err.fieldErrors) });
      const form = formData(changePasswordForm, req.body);
      await changePassword(ctx, req.actor, req.user!.id, form.current_password, form.password);
      await renewSession(req);
      flash(req, 'success', req.t('account.password.changed'));
      res.redirect(
        303,
        req.user!.mustChangePassword ? homeFor(req.user!, res.locals.paths) : res.locals.paths.account(),
      );
    },

    /** "Sign out everywhere else", or one other session. */
    async endSessions(req: Request, res: Response) {
      const which =
        typeof req.body?.session === 'string' && /^[\w-]{16}$/.test(req.body.session) ? req.body.session : 'others';
      const ended = await endSessions(ctx, req.actor, req.user!.id, which);
      flash(req, 'success', req.t('account.sessions.ended', { count: ended }));
      res.redirect(303, res.locals.paths.account());
    },

    /** The language switcher in the layout: remembered for the visit, and on the account when signed in. */
    async setLanguage(req: Request, res: Response) {
      const form = parseForm(languageForm, req.body);
      const back = safeReturnPath(req.body?.return_to) ?? res.locals.paths.home();
      if (!form.ok) {
        flash(req, 'error', req.t('validation.language'));
        return res.redirect(303, back);
      }
      req.session.lang = form.data.language;
      if (req.user)
        await updateProfile(ctx, req.actor, req.user.id, { name: req.user.name, language: form.data.language });
      res.redirect(303, back);
    },
  };
}
