import type { NextFunction, Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import { setupForm } from '../forms/auth.ts';
import { parseForm } from '../forms/parse.ts';
import { notFound } from '../lib/errors.ts';
import { flash } from '../lib/flash.ts';
import { completeSetup, isSetupTokenUsable } from '../services/setup.ts';

/** The one-time link printed at first start: it creates the first admin, once. */
export function setupController(ctx: AppContext) {
  const token = (req: Request) => String(req.params.token ?? '');
  const render = (req: Request, res: Response, status: number, values: object, errors: object) =>
    res
      .status(status)
      .set('Referrer-Policy', 'no-referrer')
      .render('setup/show', { title: req.t('setup.title'), token: token(req), values, errors });

  return {
    async show(req: Request, res: Response) {
      if (!(await isSetupTokenUsable(ctx, token(req)))) throw notFound();
      render(req, res, 200, { language: req.lang }, {});
    },

    async create(req: Request, res: Response, next: NextFunction) {
      if (!(await isSetupTokenUsable(ctx, token(req)))) throw notFound();
      const form = parseForm(setupForm, req.body);
      if (!form.ok) return render(req, res, 422, req.body, form.errors);
      const admin = await completeSetup(ctx, req.actor, token(req), form.data);
      req.logIn(admin, (err) => {
        if (err) return next(err);
        flash(req, 'success', ctx.i18n.getFixedT(admin.language)('setup.done'));
        res.redirect(303, res.locals.paths.admin());
      });
    },
  };
}
