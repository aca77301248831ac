import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import { formData } from '../../forms/parse.ts';
import { throttleLookupForm } from '../../forms/throttles.ts';
import * as throttles from '../../services/throttles.ts';
import { done } from '../helpers.ts';
import { onFailure } from '../../middleware/errors.ts';

/** Sign-in throttles: look up the counters of an e-mail address and/or a client address, and clear them. */
export function adminThrottlesController(ctx: AppContext) {
  const render = (req: Request, res: Response, status: number, values: object, extra: object = {}) =>
    res.status(status).render('admin/throttles/show', {
      title: req.t('admin.throttles.title'),
      values,
      errors: {},
      states: null,
      ...extra,
    });

  return {
    async show(req: Request, res: Response) {
      if (req.query.email === undefined && req.query.ip === undefined) return render(req, res, 200, {});
      onFailure(res, { rerender: (err) => render(req, res, 422, req.query, { errors: err.fieldErrors }) });
      const form = formData(throttleLookupForm, req.query);
      render(req, res, 200, form, { states: await throttles.inspect(ctx, form) });
    },

    async clear(req: Request, res: Response) {
      onFailure(res, { rerender: (err) => render(req, res, 422, req.body, { errors: err.fieldErrors }) });
      const form = formData(throttleLookupForm, req.body);
      await throttles.clear(ctx, req.actor, form);
      const query = new URLSearchParams(
        Object.entries(form).filter(([, v]) => v !== null) as [string, string][],
      ).toString();
      done(req, res, `${res.locals.paths.adminThrottles()}?${query}`, 'admin.throttles.cleared');
    },
  };
}
