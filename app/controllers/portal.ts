import type { Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import { scopeOrders } from '../policies/orders.ts';
import * as orders from '../models/orders.ts';
import * as licenses from '../models/licenses.ts';

/** The User Portal's landing page: a manager's orders and license counts; an end user's licenses. */
export function portalController(ctx: AppContext) {
  return {
    async dashboard(req: Request, res: Response) {
      const account = req.user!;
      const now = ctx.clock.now();
      if (account.role === 'end_user') {
        const mine = await licenses.listForLicenseUser(ctx.db, account.id, now);
        return res.render('portal/dashboard', { title: req.t('portal.dashboard.title'), orders: [], counts: null, myLicenses: mine });
      }
      const scope = scopeOrders(ctx.db, account);
      const [recentOrders, counts] = await Promise.all([
        orders.listSummaries(ctx.db, scope, 20),
        licenses.countByStatus(ctx.db, scope.clone().select('orders.id'), now),
      ]);
      res.render('portal/dashboard', { title: req.t('portal.dashboard.title'), orders: recentOrders, counts, myLicenses: null });
    },
  };
}
