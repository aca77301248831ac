import type { Request, RequestHandler } from 'express';
import type { AppContext } from '../../app.ts';
import * as orders from '../../models/orders.ts';
import * as licenses from '../../models/licenses.ts';
import { scopeOrders } from '../../policies/orders.ts';
import { permissionsFor } from '../../policies/portal.ts';
import { notFound } from '../../lib/errors.ts';
import { idParam, orNotFound } from '../helpers.ts';

/** Loads the signed-in account's portal permissions once per request. */
export function loadPermissions(ctx: AppContext): RequestHandler {
  return async (req, _res, next) => {
    try {
      req.permissions = req.user ? await permissionsFor(ctx.db, req.user) : new Set();
      next();
    } catch (err) {
      next(err);
    }
  };
}

/** Manager pages: end users get 404 (the page does not exist for them). */
export const managersOnly: RequestHandler = (req, _res, next) => (req.user && req.user.role !== 'end_user' ? next() : next(notFound()));

/** End-user pages: everyone else gets 404. */
export const endUsersOnly: RequestHandler = (req, _res, next) => (req.user?.role === 'end_user' ? next() : next(notFound()));

/** Everything a portal action loads goes through the account's order scope: outside it is 404. */
export function scoped(ctx: AppContext) {
  const scope = (req: Request) => scopeOrders(ctx.db, req.user!);
  return {
    scope,
    orderIds: (req: Request) => scope(req).select('orders.id'),
    order: async (req: Request, param = 'id') => orNotFound(await orders.findInScope(scope(req), idParam(req, param))),
    license: async (req: Request, param = 'id') => orNotFound(await licenses.findInOrders(ctx.db, scope(req).select('orders.id'), idParam(req, param), ctx.clock.now())),
  };
}
