import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import { pageCount, pageFrom } from '../../lib/pagination.ts';
import * as renewals from '../../models/renewal-requests.ts';
import { formData } from '../../forms/parse.ts';
import { handleRenewalForm } from '../../forms/renewals.ts';
import { HANDLING_STATES, handleRenewal } from '../../services/renewals.ts';
import { deliveryKey, idParam, listQuery, onPage, orNotFound } from '../helpers.ts';

/** Console → Renewal requests: counts per state, the list by state, one request and its handling. */
export function adminRenewalsController(ctx: AppContext) {
  const page = async (req: Request, res: Response, status: number, values: object, errors: object) => {
    const request = orNotFound(await renewals.findById(ctx.db, idParam(req)));
    res.status(status).render('admin/renewals/show', {
      title: req.t('renewals.admin.showTitle', { id: request.id }),
      request,
      open: renewals.OPEN_STATES.includes(request.state),
      states: HANDLING_STATES.filter((s) => s !== request.state),
      values,
      errors,
    });
  };

  return {
    async index(req: Request, res: Response) {
      const query = listQuery(req, ['state']);
      const state = renewals.RENEWAL_STATES.find((s) => s === query.state) ?? null;
      const { page: current, limit, offset } = pageFrom(req.query);
      const [list, counts] = await Promise.all([
        renewals.list(ctx.db, state, limit, offset),
        renewals.countByState(ctx.db),
      ]);
      const total = state ? counts[state] : Object.values(counts).reduce((a, b) => a + b, 0);
      res.render('admin/renewals/index', {
        title: req.t('renewals.admin.title'),
        requests: list,
        counts,
        states: renewals.RENEWAL_STATES,
        query: { state: state ?? '' },
        page: current,
        pages: pageCount(total),
        total,
      });
    },

    async show(req: Request, res: Response) {
      await page(req, res, 200, {}, {});
    },

    async update(req: Request, res: Response) {
      const id = idParam(req);
      const saved = onPage(req, res, res.locals.paths.adminRenewal(id), (errors) =>
        page(req, res, 422, req.body ?? {}, errors),
      );
      const { delivery, email } = await handleRenewal(ctx, req.actor, id, formData(handleRenewalForm, req.body));
      saved(delivery ? deliveryKey('renewalNote', delivery) : 'renewals.admin.updated', { email });
    },
  };
}
