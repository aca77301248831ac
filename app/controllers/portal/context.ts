import type { Request, RequestHandler } from 'express';
import type { AppContext } from '../../app.ts';
import * as orders from '../../models/orders.ts';
import * as licenses from '../../models/licenses.ts';
import { scopeOrders } from '../../policies/orders.ts';
import { authorize, isManageableUserOf, permissionsFor, permissionsOnOrder } from '../../policies/portal.ts';
import type { Permission } from '../../policies/permissions.ts';
import * as devices from '../../models/devices.ts';
import { notFound } from '../../lib/errors.ts';
import { isInviteeOf } from '../../services/delegation.ts';
import { idParam, loader, orNotFound } from '../helpers.ts';

/** Loads the signed-in account's own portal permissions (those outside any order) once per request. */
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
export const managersOnly: RequestHandler = (req, _res, next) =>
  req.user && req.user.role !== 'end_user' ? next() : next(notFound());

/** End-user pages: everyone else gets 404. */
export const endUsersOnly: RequestHandler = (req, _res, next) =>
  req.user?.role === 'end_user' ? next() : next(notFound());

/** Everything a portal action loads goes through the account's order scope: outside it is 404. */
export function scoped(ctx: AppContext) {
  const scope = (req: Request) => scopeOrders(ctx.db, req.user!);
  return {
    scope,
    orderIds: (req: Request) => scope(req).select('orders.id'),
    order: async (req: Request, param = 'id') => orNotFound(await orders.findInScope(scope(req), idParam(req, param))),
    license: async (req: Request, param = 'id') =>
      orNotFound(
        await licenses.findInOrders(ctx.db, scope(req).select('orders.id'), idParam(req, param), ctx.clock.now()),
      ),
  };
}

/**
 * Loaders for the route table: each resolves an id of the URL through the account's order scope and
 * puts the object on the request (`req.order`, `req.license`, `req.device` of that license), or 404.
 * The order and license loaders also narrow `req.permissions` to the account's role on that order,
 * which is what `can()` then reads.
 */
export function portalLoaders(ctx: AppContext) {
  const load = scoped(ctx);
  return {
    order: loader(async (req) => {
      req.order = await load.order(req);
      req.permissions = await permissionsOnOrder(ctx.db, req.user!, req.order.id, req.permissions);
    }),
    license: loader(async (req) => {
      req.license = await load.license(req);
      req.permissions = await permissionsOnOrder(ctx.db, req.user!, req.license.orderId, req.permissions);
    }),
    device: loader(async (req) => {
      req.device = orNotFound(await devices.findForLicense(ctx.db, req.license!.id, idParam(req, 'deviceId')));
    }),
    /** `:accountId`, a manager the signed-in manager invited to one of their orders (delegation.ts), or 404. */
    invitee: loader(async (req) => {
      if (!(await isInviteeOf(ctx.db, req.user!, idParam(req, 'accountId')))) throw notFound();
    }),
    /** `:accountId`, a user of this license whom the account owns (docs/decisions.md, "Account ownership"), or 404. */
    licenseUser: loader(async (req) => {
      if (!(await isManageableUserOf(ctx.db, req.user!, req.license!.id, idParam(req, 'accountId')))) throw notFound();
    }),
  };
}

/**
 * The permission guard of a route line: 403 without the permission (the loaders' 404 come first). On a
 * line with an order or license loader it reads the role on that order; elsewhere the account's own.
 */
export const can =
  (permission: Permission): RequestHandler =>
  (req, _res, next) => {
    authorize(req.permissions, permission);
    next();
  };
