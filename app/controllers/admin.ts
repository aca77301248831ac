import type { Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import * as outbox from '../models/outbox.ts';
import { notFound } from '../lib/errors.ts';
import { pageCount, pageFrom } from '../lib/pagination.ts';
import { consoleDashboard } from '../services/dashboards.ts';

/** The vendor console's start page and the mail outbox. */
export function adminController(ctx: AppContext) {
  const count = async (table: string) => Number((await ctx.db(table).count({ n: '*' }).first())?.n ?? 0);
  return {
    async dashboard(req: Request, res: Response) {
      const [[products, orders, licenses, accounts, mails], overview] = await Promise.all([
        Promise.all([...['products', 'orders', 'licenses', 'accounts'].map(count), outbox.count(ctx.db)]),
        consoleDashboard(ctx.db, ctx.clock.now()),
      ]);
      res.render('admin/dashboard', {
        title: req.t('admin.dashboard.title'),
        stats: { products, orders, licenses, accounts, mails },
        overview,
      });
    },

    async outbox(req: Request, res: Response) {
      const { page, limit, offset } = pageFrom(req.query);
      const [mails, total] = await Promise.all([outbox.list(ctx.db, limit, offset), outbox.count(ctx.db)]);
      res.render('admin/outbox', { title: req.t('admin.outbox.title'), mails, page, pages: pageCount(total), total });
    },

    async outboxMail(req: Request, res: Response) {
      const id = Number(req.params.id);
      const mail = Number.isSafeInteger(id) && id > 0 ? await outbox.findById(ctx.db, id) : undefined;
      if (!mail) throw notFound();
      res.set('Cache-Control', 'no-store').render('admin/outbox-mail', { title: mail.subject, mail });
    },
  };
}
