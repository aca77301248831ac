import type { Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import { formData } from '../forms/parse.ts';
import { searchForm } from '../forms/search.ts';
import * as search from '../models/search.ts';
import { onFailure } from '../middleware/errors.ts';
import { scoped } from './portal/context.ts';

/**
 * The search page of the User Portal (licenses and orders of the account's order scope only,
 * policies/orders.ts) and of the console (every order): one page, two scopes.
 */
export function searchController(ctx: AppContext, where: 'portal' | 'admin') {
  const load = scoped(ctx);
  const scopeOf = (req: Request) => (where === 'portal' ? load.orderIds(req) : null);
  const render = (req: Request, res: Response, status: number, extra: object = {}) =>
    res.status(status).render(`${where}/search`, {
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
      render(req, res, 200, { values: { q }, results: await search.search(ctx.db, scopeOf(req), q) });
    },
  };
}
