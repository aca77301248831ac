import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import { formData } from '../../forms/parse.ts';
import { searchForm } from '../../forms/search.ts';
import * as search from '../../models/search.ts';
import { onFailure } from '../../middleware/errors.ts';
import { scoped } from './context.ts';

/** The User Portal's search: licenses and orders of the account's order scope only (policies/orders.ts). */
export function portalSearchController(ctx: AppContext) {
  const load = scoped(ctx);
  const render = (req: Request, res: Response, status: number, extra: object = {}) =>
    res.status(status).render('portal/search', {
      title: req.t('search.page.title'),
      values: req.query,
      errors: {},
      results: null,
      ...extra,
    });

  return {
    async show(req: Request, res: Response) {
      if (req.query.q === undefined) return render(req, res, 200);
      onFailure(res, { rerender: (err) => render(req, res, 422, { errors: err.fieldErrors }) });
      const { q } = formData(searchForm, req.query);
      render(req, res, 200, { values: { q }, results: await search.search(ctx.db, load.orderIds(req), q) });
    },
  };
}
