import type { Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import * as usageReports from '../models/usage-reports.ts';

/** The usage reports of one device (console and User Portal: the route's loaders hold the scope, 404 outside). */
export function usageReportsController(ctx: AppContext, area: 'admin' | 'portal') {
  return {
    async index(req: Request, res: Response) {
      const license = req.license!;
      const device = req.device!;
      res.render('usage-reports/index', {
        title: req.t('trueup.reports.title', { device: device.hardwareId }),
        area,
        license,
        device,
        reports: await usageReports.listForDevice(ctx.db, device.id),
      });
    },
  };
}
