import type { Request, RequestHandler } from 'express';
import type { AppContext } from '../../app.ts';
import * as accounts from '../../models/accounts.ts';
import * as brandings from '../../models/brandings.ts';
import * as customers from '../../models/customers.ts';
import * as licenses from '../../models/licenses.ts';
import * as orders from '../../models/orders.ts';
import * as policies from '../../models/policies.ts';
import * as products from '../../models/products.ts';
import * as roles from '../../models/roles.ts';
import * as vouchers from '../../models/vouchers.ts';
import { idParam, orNotFound } from '../helpers.ts';

/**
 * The console's loaders for the route table: each resolves the URL's `:id` (admins see everything)
 * and puts the object on the request, or answers 404.
 */
export function adminLoaders(ctx: AppContext) {
  const loader =
    <T>(find: (id: number) => Promise<T | undefined>, put: (req: Request, value: T) => void): RequestHandler =>
    async (req, _res, next) => {
      put(req, orNotFound(await find(idParam(req))));
      next();
    };
  const withRole = (role: accounts.Account['role']) => async (id: number) => {
    const account = await accounts.findById(ctx.db, id);
    return account?.role === role ? account : undefined;
  };
  return {
    product: loader(
      (id) => products.findById(ctx.db, id),
      (req, v) => (req.product = v),
    ),
    policy: loader(
      (id) => policies.findById(ctx.db, id),
      (req, v) => (req.policy = v),
    ),
    customer: loader(
      (id) => customers.findById(ctx.db, id),
      (req, v) => (req.customer = v),
    ),
    order: loader(
      (id) => orders.findById(ctx.db, id),
      (req, v) => (req.order = v),
    ),
    license: loader(
      (id) => licenses.findById(ctx.db, id, ctx.clock.now()),
      (req, v) => (req.license = v),
    ),
    branding: loader(
      (id) => brandings.findById(ctx.db, id),
      (req, v) => (req.editedBranding = v),
    ),
    role: loader(
      (id) => roles.find(ctx.db, id),
      (req, v) => (req.role = v),
    ),
    voucherBatch: loader(
      (id) => vouchers.findBatchSummary(ctx.db, id, ctx.clock.now()),
      (req, v) => (req.voucherBatch = v),
    ),
    manager: loader(withRole('manager'), (req, v) => (req.account = v)),
    endUser: loader(withRole('end_user'), (req, v) => (req.account = v)),
  };
}
