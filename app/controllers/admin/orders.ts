import * as usageReports from '../../models/usage-reports.ts';
import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import * as orders from '../../models/orders.ts';
import * as licenses from '../../models/licenses.ts';
import * as policies from '../../models/policies.ts';
import * as products from '../../models/products.ts';
import * as brandings from '../../models/brandings.ts';
import * as vouchers from '../../models/vouchers.ts';
import { ORDER_PAGE_BATCHES } from './vouchers.ts';
import { formData } from '../../forms/parse.ts';
import { issueForm, orderForm } from '../../forms/console.ts';
import { pageCount, pageFrom } from '../../lib/pagination.ts';
import * as service from '../../services/customers.ts';
import { issueAndInvite } from '../../services/portal.ts';
import { done, listQuery, onPage, orderListPage } from '../helpers.ts';
import { LICENSE_FILTER_KEYS, licenseFilterFrom } from './licenses.ts';
import { onFailure } from '../../middleware/errors.ts';

/** The brandings an order's select offers (at most 500, by name). */
export const brandingChoices = (db: AppContext['db']) => brandings.list(db, {}, 500, 0);

export function adminOrdersController(ctx: AppContext) {
  const showPage = async (
    req: Request,
    res: Response,
    order: orders.Order,
    status = 200,
    issueValues: object = {},
    issueErrors: object = {},
  ) => {
    const now = ctx.clock.now();
    const query = listQuery(req, ['q', ...LICENSE_FILTER_KEYS]);
    const filter = { ...licenseFilterFrom(query), orderId: order.id };
    const { page, limit, offset } = pageFrom(req.query);
    const [rows, total, managers, issuable, productList, branding, trueUp, batches, batchTotal] = await Promise.all([
      licenses.list(ctx.db, filter, now, limit, offset),
      licenses.countInOrder(ctx.db, order, filter, now),
      orders.listManagers(ctx.db, order.id),
      policies.listIssuable(ctx.db),
      products.listActive(ctx.db),
      order.brandingId === null ? undefined : brandings.findById(ctx.db, order.brandingId),
      usageReports.trueUpOf(ctx.db, order.id),
      vouchers.listBatchSummaries(ctx.db, { orderId: order.id }, now, ORDER_PAGE_BATCHES, 0),
      vouchers.countBatches(ctx.db, { orderId: order.id }, now),
    ]);
    res.status(status).render('admin/orders/show', {
      trueUp,
      batches,
      batchTotal,
      title: order.orderRef,
      order,
      licenses: rows,
      total,
      page,
      pages: pageCount(total),
      query,
      managers,
      issuable,
      products: productList,
      orderBranding: branding ?? null,
      issueValues,
      issueErrors,
    });
  };

  const editView = async (
    req: Request,
    res: Response,
    status: number,
    order: orders.Order,
    values: object,
    errors: object,
  ) =>
    res.status(status).render('admin/orders/edit', {
      title: req.t('admin.orders.edit'),
      order,
      values,
      errors,
      brandingOptions: await brandingChoices(ctx.db),
    });

  return {
    async index(req: Request, res: Response) {
      res.render('admin/orders/index', {
        title: req.t('admin.orders.title'),
        ...(await orderListPage(req, ctx.db('orders'))),
      });
    },

    async show(req: Request, res: Response) {
      await showPage(req, res, req.order!);
    },

    async edit(req: Request, res: Response) {
      const order = req.order!;
      await editView(
        req,
        res,
        200,
        order,
        {
          order_ref: order.orderRef,
          reference: order.reference,
          is_test: order.isTest,
          is_trial: order.isTrial,
          branding_id: order.brandingId,
        },
        {},
      );
    },

    async update(req: Request, res: Response) {
      const order = req.order!;
      onFailure(res, {
        back: res.locals.paths.adminOrder(order.id),
        rerender: (err) => editView(req, res, 422, order, req.body, err.fieldErrors),
      });
      const parsed = formData(orderForm, req.body);
      await service.updateOrder(ctx, req.actor, order.id, parsed);
      done(req, res, res.locals.paths.adminOrder(order.id), 'admin.orders.updated');
    },

    async destroy(req: Request, res: Response) {
      onPage(req, res, res.locals.paths.adminOrder(req.order!.id));
      await service.deleteOrder(ctx, req.actor, req.order!.id);
      done(req, res, res.locals.paths.adminOrders(), 'admin.orders.deleted');
    },

    /** Issues licenses in bulk: a quantity for key-based products, one per e-mail for user-based ones. */
    async issue(req: Request, res: Response) {
      const order = req.order!;
      onFailure(res, {
        back: res.locals.paths.adminOrder(order.id),
        rerender: (err) => showPage(req, res, order, 422, req.body, err.fieldErrors),
      });
      const form = formData(issueForm, req.body);
      const issued = await issueAndInvite(ctx, req.actor, req.user!, order.id, {
        policyId: form.policy_id,
        quantity: form.quantity ?? undefined,
        emails: form.emails,
        startDate: form.start_date,
      });
      done(req, res, res.locals.paths.adminOrder(order.id), 'counts.licensesIssued', {
        count: issued.licenseIds.length,
      });
    },
  };
}
