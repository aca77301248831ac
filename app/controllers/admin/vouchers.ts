import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import * as vouchers from '../../models/vouchers.ts';
import * as policies from '../../models/policies.ts';
import * as products from '../../models/products.ts';
import { pageCount, pageFrom } from '../../lib/pagination.ts';
import { voidRestOfBatch, voidVoucher } from '../../services/vouchers.ts';
import { onFailure } from '../../middleware/errors.ts';
import { done, idParam, listQuery } from '../helpers.ts';
import { freshCodesFlow } from '../fresh-codes.ts';

/** The list's query-string keys: status, product, creator, text (order or customer). */
export const BATCH_FILTER_KEYS = ['status', 'product', 'creator', 'q'];

const idFrom = (v: string | undefined) => (v && /^\d{1,10}$/.test(v) ? Number(v) : undefined);

export function batchFilterFrom(query: Record<string, string>): vouchers.BatchFilter {
  return {
    status: (vouchers.BATCH_STATUSES as readonly string[]).includes(query.status ?? '')
      ? (query.status as vouchers.BatchStatus)
      : undefined,
    productId: idFrom(query.product),
    createdBy: idFrom(query.creator),
    q: query.q,
  };
}

/** How many batches an order's page shows (newest first); the order's codes page shows them all. */
export const ORDER_PAGE_BATCHES = 10;

/**
 * Redeemable codes in the vendor's console (docs/console.md, "Redeemable codes"): every batch of every
 * order, a batch's codes with voiding one or the whole rest, and generating for an order (the User
 * Portal's service and fresh-codes flow; admins have no quota).
 */
export function adminVouchersController(ctx: AppContext) {
  const fresh = freshCodesFlow(ctx, (res, orderId) => res.locals.paths.adminOrderVouchers(orderId));

  /** An order's codes: the generate form, the new codes once, the order's batches. */
  const orderPage = async (req: Request, res: Response, status = 200, values: object = {}, errors: object = {}) => {
    const order = req.order!;
    const now = ctx.clock.now();
    const [batches, issuable] = await Promise.all([
      vouchers.listBatchSummaries(ctx.db, { orderId: order.id }, now, 100, 0),
      policies.listIssuable(ctx.db),
    ]);
    res
      .status(status)
      .set('Cache-Control', 'no-store')
      .render('admin/vouchers/order', {
        title: req.t('vouchers.heading', { order: order.orderRef }),
        order,
        batches,
        fresh: fresh.read(req),
        issuable,
        values: { count: 10, days: 90, ...values },
        errors,
      });
  };

  return {
    async index(req: Request, res: Response) {
      const now = ctx.clock.now();
      const query = listQuery(req, BATCH_FILTER_KEYS);
      const filter = batchFilterFrom(query);
      const { page, limit, offset } = pageFrom(req.query);
      const [batches, total, productList, creators] = await Promise.all([
        vouchers.listBatchSummaries(ctx.db, filter, now, limit, offset),
        vouchers.countBatches(ctx.db, filter, now),
        products.listActive(ctx.db),
        vouchers.batchCreators(ctx.db),
      ]);
      res.render('admin/vouchers/index', {
        title: req.t('consoleVouchers.title'),
        batches,
        products: productList,
        creators,
        query,
        page,
        pages: pageCount(total),
        total,
      });
    },

    async show(req: Request, res: Response) {
      const batch = req.voucherBatch!;
      const codes = await vouchers.listForBatches(ctx.db, [batch.id], ctx.clock.now());
      res.set('Cache-Control', 'no-store').render('admin/vouchers/show', {
        title: req.t('consoleVouchers.batchTitle', { id: batch.id, order: batch.orderRef }),
        batch,
        codes,
      });
    },

    async void(req: Request, res: Response) {
      const batch = req.voucherBatch!;
      onFailure(res, { back: res.locals.paths.adminVoucherBatch(batch.id) });
      await voidVoucher(ctx, req.actor, batch.orderId, idParam(req, 'voucherId'), batch.id);
      done(req, res, res.locals.paths.adminVoucherBatch(batch.id), 'consoleVouchers.voided');
    },

    async voidRest(req: Request, res: Response) {
      const batch = req.voucherBatch!;
      onFailure(res, { back: res.locals.paths.adminVoucherBatch(batch.id) });
      const count = await voidRestOfBatch(ctx, req.actor, batch.id);
      done(req, res, res.locals.paths.adminVoucherBatch(batch.id), 'consoleVouchers.restVoided', { count });
    },

    order: (req: Request, res: Response) => orderPage(req, res),
    generate: (req: Request, res: Response) =>
      fresh.generate(req, res, (status, values, errors) => orderPage(req, res, status, values, errors)),
    csv: fresh.csv,
    print: fresh.print,
    dismiss: fresh.dismiss,
  };
}
