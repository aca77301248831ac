import type { Request, Response } from 'express';
import { z } from 'zod';
import type { AppContext } from '../../app.ts';
import * as orders from '../../models/orders.ts';
import * as customers from '../../models/customers.ts';
import type { Order } from '../../models/orders.ts';
import { customerForm, emailList, orderForm } from '../../forms/console.ts';
import { id, optionalText, optionalWholeNumber } from '../../forms/fields.ts';
import { ValidationError } from '../../lib/errors.ts';
import { authorize } from '../../policies/portal.ts';
import { createOrderAsManager } from '../../services/portal.ts';
import { updateOrder } from '../../services/customers.ts';
import { mailPlacements, type Placement } from '../../services/license-users.ts';
import { bodyObject, parsed, parsedAt, query } from '../../api/manage/input.ts';
import { cursorPage, pageParams } from '../../api/manage/pagination.ts';
import { manageScope } from '../../api/manage/loaders.ts';

/** An order as the Management API shows it. */
export function orderJson(o: Order) {
  return {
    id: o.id,
    order_ref: o.orderRef,
    reference: o.reference,
    customer_id: o.customerId,
    customer_name: o.customerName,
    is_test: o.isTest,
    is_trial: o.isTrial,
    license_count: o.licenseCount,
    created_at: o.createdAt.toISOString(),
    updated_at: o.updatedAt.toISOString(),
  };
}

const listFilter = z.object({
  q: optionalText(200),
  customer_id: optionalWholeNumber(1, 2_147_483_647),
  order_ref: optionalText(100),
  ...pageParams,
});

const jsonFlag = z.boolean({ message: 'validation.invalid' }).default(false);

/** A line of a new order: a policy and a quantity (key-based) or e-mail addresses (user-based). */
const licenseLine = z.object({
  policy_id: id,
  quantity: optionalWholeNumber(1, 10_000),
  emails: z.preprocess((v) => (Array.isArray(v) ? v.join('\n') : v), emailList),
});

export const MAX_ORDER_LINES = 20;

/** POST /orders: the order's fields, a customer (existing or new) and up to 20 license lines. */
const newOrder = z.object({
  order_ref: orderForm.shape.order_ref,
  reference: orderForm.shape.reference,
  is_test: jsonFlag,
  is_trial: jsonFlag,
  customer_id: optionalWholeNumber(1, 2_147_483_647),
  customer: z.unknown().optional(),
  licenses: z.array(z.unknown()).max(MAX_ORDER_LINES, { message: 'api.orders.tooManyLines' }).default([]),
});

/** /api/manage/v1/orders: the portal's order creation (quotas, allowed policies) and the console's edit. */
export function manageOrdersController(ctx: AppContext) {
  const { orderScope } = manageScope(ctx);
  const show = async (res: Response, orderId: number, status = 200) => {
    const order = (await orders.findById(ctx.db, orderId))!;
    res.status(status).json({ ...orderJson(order), licenses: await orders.licenseSummaries(ctx.db, orderId) });
  };
  return {
    async index(req: Request, res: Response) {
      const f = query(listFilter, req);
      const q = orders.apiQuery(orderScope(req), {
        q: f.q ?? undefined,
        customerId: f.customer_id ?? undefined,
        orderRef: f.order_ref ?? undefined,
      });
      res.json(await cursorPage(q, f, (rows) => rows.map((r) => orderJson(orders.fromApiRow(r))), 'orders.id'));
    },

    show: (req: Request, res: Response) => show(res, req.order!.id),

    /**
     * One call makes the customer (when new), the order and its licenses, in one transaction
     * (services/portal.ts createOrderAsManager: the same path as the portal's bundle order): a
     * refused line leaves nothing behind. A manager's token needs `create_order`, and with licenses
     * `create_bundle_order`, as in the portal; it issues within its quotas and allowed policies.
     */
    async create(req: Request, res: Response) {
      const raw = bodyObject(req);
      const f = parsed(newOrder, raw);
      if (f.licenses.length) authorize(req.permissions, 'create_bundle_order');
      if ((f.customer_id === null) === (f.customer === undefined))
        throw new ValidationError({ customer_id: 'api.orders.customerOneOf' });
      const customer = f.customer === undefined ? null : parsedAt('customer', customerForm, f.customer);
      const lines = f.licenses.map((line, i) => parsedAt(`licenses[${i}]`, licenseLine, line));
      if (f.customer_id !== null && !(await customers.findById(ctx.db, f.customer_id)))
        throw new ValidationError({ customer_id: 'validation.choice' });
      const placements: Placement[] = [];
      const orderId = await createOrderAsManager(
        ctx,
        req.actor,
        req.api!.account,
        {
          customerId: f.customer_id,
          customer,
          order: { order_ref: f.order_ref, reference: f.reference, is_test: f.is_test, is_trial: f.is_trial },
          lines: lines.map((l) => ({ policyId: l.policy_id, quantity: l.quantity ?? undefined, emails: l.emails })),
        },
        placements,
      );
      await mailPlacements(ctx, placements);
      await show(res, orderId, 201);
    },

    /** PATCH: the console's order edit (API clients; the portal lets managers edit no order). */
    async update(req: Request, res: Response) {
      const o = req.order!;
      const current = { order_ref: o.orderRef, reference: o.reference, is_test: o.isTest, is_trial: o.isTrial };
      const merged = { ...current, ...bodyObject(req) };
      const f = parsed(
        z.object({
          order_ref: orderForm.shape.order_ref,
          reference: orderForm.shape.reference,
          is_test: jsonFlag,
          is_trial: jsonFlag,
        }),
        merged,
      );
      await updateOrder(ctx, req.actor, o.id, f);
      await show(res, o.id);
    },
  };
}
