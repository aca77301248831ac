import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import { notFound } from '../../lib/errors.ts';
import * as licenses from '../../models/licenses.ts';
import * as orders from '../../models/orders.ts';
import * as licenseUsers from '../../models/license-users.ts';
import { RENEWAL_KINDS } from '../../models/renewal-requests.ts';
import { formData } from '../../forms/parse.ts';
import { renewalRequestForm } from '../../forms/renewals.ts';
import { onFailure } from '../../middleware/errors.ts';
import { requestRenewal, spendRenewalBudget } from '../../services/renewals.ts';
import { done, idParam, loader, orNotFound } from '../helpers.ts';

/** What a renewal request is about, and where its form posts and its requester goes back to. */
interface Target {
  order: orders.Order;
  license: licenses.License | null;
  action: string;
  back: string;
}

/**
 * "Request renewal" / "Request more seats" (services/renewals.ts): any manager of the order for the
 * order or one of its licenses, an end user for a license they use. The daily budget is spent before
 * the form is read; the service refuses a second open request of the same kind.
 */
export function portalRenewalsController(ctx: AppContext) {
  /** An end user addresses their license under /my (and goes back to their home); a manager the order's pages. */
  const targetOf = async (req: Request, res: Response): Promise<Target> => {
    const paths = res.locals.paths;
    const license = req.license;
    if (!license) {
      const order = req.order!;
      return { order, license: null, action: paths.portalOrderRenewals(order.id), back: paths.portalOrder(order.id) };
    }
    const order = (await orders.findById(ctx.db, license.orderId))!;
    return req.user!.role === 'end_user'
      ? { order, license, action: paths.portalMyLicenseRenewals(license.id), back: paths.portal() }
      : { order, license, action: paths.portalLicenseRenewals(license.id), back: paths.portalLicense(license.id) };
  };

  const formPage = async (req: Request, res: Response, status: number, values: object, errors: object) =>
    res.status(status).render('portal/renewals/new', {
      title: req.t('renewals.new.title'),
      target: await targetOf(req, res),
      kinds: RENEWAL_KINDS,
      values,
      errors,
    });

  return {
    /** `:id`, a license the signed-in end user is a user of (self-service on), or 404. */
    ownLicense: loader(async (req) => {
      if (!(await ctx.settings()).endUserSelfService) throw notFound();
      const id = idParam(req);
      if (!(await licenseUsers.find(ctx.db, id, req.user!.id))) throw notFound();
      req.license = orNotFound(await licenses.findById(ctx.db, id, ctx.clock.now()));
    }),

    async new(req: Request, res: Response) {
      const kind = RENEWAL_KINDS.find((k) => k === req.query.kind) ?? 'renewal';
      await formPage(req, res, 200, { kind }, {});
    },

    async create(req: Request, res: Response) {
      await spendRenewalBudget(ctx, req.user!.id);
      const target = await targetOf(req, res);
      onFailure(res, {
        rerender: (err) => formPage(req, res, 422, req.body ?? {}, err.fieldErrors),
        back: target.back,
      });
      const input = formData(renewalRequestForm, req.body);
      await requestRenewal(ctx, req.actor, req.user!, target, input);
      done(req, res, target.back, `renewals.flash.requested.${input.kind}`);
    },
  };
}
