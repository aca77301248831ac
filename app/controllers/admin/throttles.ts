import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import { parseForm } from '../../forms/parse.ts';
import { throttleLookupForm } from '../../forms/throttles.ts';
import * as throttles from '../../services/throttles.ts';
import { done } from '../helpers.ts';

/** Sign-in throttles: look up the counters of an e-mail address and/or a client address, and clear them. */
export function adminThrottlesController(ctx: AppContext) {
  const render = (req: Request, res: Response, status: number, values: object, extra: object = {}) =>
    res.status(status).render('admin/throttles/show', { title: req.t('admin.throttles.title'), values, errors: {}, states: null, ...extra });

  return {
    async show(req: Request, res: Response) {
      if (req.query.email === undefined && req.query.ip === undefined) return render(req, res, 200, {});
      const form = parseForm(throttleLookupForm, req.query);
      if (!form.ok) return render(req, res, 422, req.query, { errors: form.errors });
      render(req, res, 200, form.data, { states: await throttles.inspect(ctx, form.data) });
    },

    async clear(req: Request, res: Response) {
      const form = parseForm(throttleLookupForm, req.body);
      if (!form.ok) return render(req, res, 422, req.body, { errors: form.errors });
      await throttles.clear(ctx, req.actor, form.data);
      const query = new URLSearchParams(Object.entries(form.data).filter(([, v]) => v !== null) as [string, string][]).toString();
      done(req, res, `${res.locals.paths.adminThrottles()}?${query}`, 'admin.throttles.cleared');
    },
  };
}
