import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import * as vouchers from '../../models/vouchers.ts';
import * as managers from '../../models/managers.ts';
import { issuableFor } from '../../policies/portal.ts';
import { voidVoucher } from '../../services/vouchers.ts';
import { onFailure } from '../../middleware/errors.ts';
import { done, idParam } from '../helpers.ts';
import { freshCodesFlow } from '../fresh-codes.ts';

/** Redeemable codes of an order (User Portal): generate, list, void; the new batch's codes once. */
export function portalVouchersController(ctx: AppContext) {
  const fresh = freshCodesFlow(ctx, (res, orderId) => res.locals.paths.portalOrderVouchers(orderId));

  const listPage = async (req: Request, res: Response, status = 200, values: object = {}, errors: object = {}) => {
    const order = req.order!;
    const now = ctx.clock.now();
    const canIssue = req.permissions.has('issue_license');
    const batches = await vouchers.listBatches(ctx.db, order.id);
    const [codes, issuable, quotas] = await Promise.all([
      vouchers.listForBatches(
        ctx.db,
        batches.map((b) => b.id),
        now,
      ),
      canIssue ? issuableFor(ctx.db, req.user!) : Promise.resolve([]),
      req.user!.role === 'manager' ? managers.quotasOf(ctx.db, req.user!.id) : Promise.resolve([]),
    ]);
    res
      .status(status)
      .set('Cache-Control', 'no-store')
      .render('portal/vouchers/index', {
        title: req.t('vouchers.title'),
        order,
        batches: batches.map((b) => ({ ...b, vouchers: codes.filter((c) => c.batchId === b.id) })),
        fresh: fresh.read(req),
        issuable,
        quotas,
        values: { count: 10, days: 90, ...values },
        errors,
        can: req.permissions,
      });
  };

  return {
    index: (req: Request, res: Response) => listPage(req, res),
    generate: (req: Request, res: Response) =>
      fresh.generate(req, res, (status, values, errors) => listPage(req, res, status, values, errors)),
    csv: fresh.csv,
    print: fresh.print,
    dismiss: fresh.dismiss,

    async void(req: Request, res: Response) {
      onFailure(res, { back: res.locals.paths.portalOrderVouchers(req.order!.id) });
      await voidVoucher(ctx, req.actor, req.order!.id, idParam(req, 'voucherId'));
      done(req, res, res.locals.paths.portalOrderVouchers(req.order!.id), 'vouchers.voided');
    },
  };
}
