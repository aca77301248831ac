import type { Request, RequestHandler } from 'express';
import type { AppContext } from '../../app.ts';
import * as orders from '../../models/orders.ts';
import * as customers from '../../models/customers.ts';
import * as roles from '../../models/roles.ts';
import { scopeOrders } from '../../policies/orders.ts';
import { permissionsOnOrder } from '../../policies/portal.ts';
import type { Permission } from '../../policies/permissions.ts';
import { idParam, orNotFound } from '../../controllers/helpers.ts';
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
  const loader =
    (run: (req: Request) => Promise<void>): RequestHandler =>
    async (req, _res, next) => {
      await run(req);
      next();
    };
  return {
    order: loader(async (req) => {
      req.order = orNotFound(await orders.findInScope(orderScope(req), idParam(req)));
      req.permissions = await permissionsOnOrder(ctx.db, req.api!.account, req.order.id, req.permissions);
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
