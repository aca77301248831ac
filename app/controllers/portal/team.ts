import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import * as managers from '../../models/managers.ts';
import { formData } from '../../forms/parse.ts';
import { subQuotaForm } from '../../forms/portal.ts';
import { setSubQuota } from '../../services/delegation.ts';
import { idParam, onPage } from '../helpers.ts';

/**
 * "My team" (docs/user-portal.md, "Delegation"): the managers the signed-in manager invited, on which
 * orders with which role, and the sub-quotas given to them out of the manager's own quotas.
 */
export function portalTeamController(ctx: AppContext) {
  const page = async (req: Request, res: Response, status = 200, errors: object = {}, values: object = {}) => {
    const [team, own, granted] = await Promise.all([
      managers.inviteesOf(ctx.db, req.user!.id),
      managers.quotasOf(ctx.db, req.user!.id),
      managers.subQuotasGrantedBy(ctx.db, req.user!.id),
    ]);
    res.status(status).render('portal/team', {
      title: req.t('portal.team.title'),
      team,
      quotas: own,
      granted,
      errors,
      values,
    });
  };
  return {
    async show(req: Request, res: Response) {
      await page(req, res);
    },
    async setQuota(req: Request, res: Response) {
      const saved = onPage(req, res, res.locals.paths.portalTeam(), (errors) =>
        page(req, res, 422, errors, { ...req.body, accountId: idParam(req, 'accountId') }),
      );
      const form = formData(subQuotaForm, req.body);
      await setSubQuota(ctx, req.actor, req.user!, idParam(req, 'accountId'), form.product_id, form.quota);
      saved('portal.team.quotaSaved');
    },
  };
}
