import type { Request } from 'express';
import type { AppContext } from '../../app.ts';
import * as orders from '../../models/orders.ts';
import * as customers from '../../models/customers.ts';
import * as roles from '../../models/roles.ts';
import * as licenses from '../../models/licenses.ts';
import * as devices from '../../models/devices.ts';
import * as vouchers from '../../models/vouchers.ts';
import { scopeOrders } from '../../policies/orders.ts';
import { isManageableUserOf, permissionsOnOrder } from '../../policies/portal.ts';
import type { Permission } from '../../policies/permissions.ts';
import { idParam, loader, orNotFound } from '../../controllers/helpers.ts';
import { notFound } from '../../lib/errors.ts';

/**
 * The Management API's loaders: each resolves an id of the URL through the principal's order scope
 * (policies/orders.ts — every order for an API client, the assigned ones for a manager's token),
 * puts the object on the request, or answers 404. Like the portal's loaders they narrow
 * `req.permissions` to the principal's role on the order at hand, which `can()` then reads.
 */
export function manageScope(ctx: AppContext) {
  const orderScope = (req: Request) => scopeOrders(ctx.db, req.api!.account);
  /** null for an API client (every order): saves a sub-query. */
  const orderIds = (req: Request) => (req.api!.token.kind === 'client' ? null : orderScope(req).select('orders.id'));
  return { orderScope, orderIds };
}

export function manageLoaders(ctx: AppContext) {
  const { orderScope, orderIds } = manageScope(ctx);
  /** The object of `orderId` if that order is in the principal's scope (else 404); its permissions are the role there. */
  const onOrderInScope = async <T>(req: Request, object: T | undefined, orderId: (o: T) => number): Promise<T> => {
    const found = orNotFound(object);
    if (!(await orders.findInScope(orderScope(req), orderId(found)))) throw notFound();
    req.permissions = await permissionsOnOrder(ctx.db, req.api!.account, orderId(found), req.permissions);
    return found;
  };
  return {
    order: loader(async (req) => {
      req.order = orNotFound(await orders.findInScope(orderScope(req), idParam(req)));
      req.permissions = await permissionsOnOrder(ctx.db, req.api!.account, req.order.id, req.permissions);
    }),
    /** A license of an order in the scope; its permissions are the principal's role on that order. */
    license: loader(async (req) => {
      const ids = orderIds(req);
      const id = idParam(req);
      const now = ctx.clock.now();
      req.license = orNotFound(
        ids ? await licenses.findInOrders(ctx.db, ids, id, now) : await licenses.findById(ctx.db, id, now),
      );
      req.permissions = await permissionsOnOrder(ctx.db, req.api!.account, req.license.orderId, req.permissions);
    }),
    /** `:deviceId`, a device (active or not) of the loaded license. */
    device: loader(async (req) => {
      req.device = orNotFound(await devices.findForLicense(ctx.db, req.license!.id, idParam(req, 'deviceId')));
    }),
    /**
     * `:accountId`, a user of the loaded license; for a personal token only one its manager owns
     * (docs/decisions.md, "Account ownership"), as the portal's licenseUser loader: 404 otherwise.
     */
    licenseUser: loader(async (req) => {
      if (!(await isManageableUserOf(ctx.db, req.api!.manager, req.license!.id, idParam(req, 'accountId'))))
        throw notFound();
    }),
    /** A batch of redeemable codes of an order in the scope. */
    voucherBatch: loader(async (req) => {
      req.voucherBatch = await onOrderInScope(
        req,
        await vouchers.findBatchSummary(ctx.db, idParam(req), ctx.clock.now()),
        (b) => b.orderId,
      );
    }),
    /** A redeemable code (by its id, never by the code) of an order in the scope. */
    voucher: loader(async (req) => {
      const found = await vouchers.findWithBatch(ctx.db, idParam(req), ctx.clock.now());
      req.voucher = await onOrderInScope(req, found, (v) => v.orderId);
    }),
    /**
     * A customer with an order in the scope. Its permissions: those the principal holds on any of
     * its orders of that customer (the portal edits a customer through any such order).
     */
    customer: loader(async (req) => {
      const id = idParam(req);
      const ids = orderIds(req);
      const customer = orNotFound(await customers.findById(ctx.db, id));
      if (ids) {
        if (!(await customers.hasOrderAmong(ctx.db, id, ids))) throw notFound();
        const onOrders = await roles.permissionsOnCustomer(ctx.db, req.api!.account.id, id);
        req.permissions = new Set<Permission>([...req.permissions, ...onOrders]);
      }
      req.customer = customer;
    }),
  };
}
