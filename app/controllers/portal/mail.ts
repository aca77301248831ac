import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import * as outbox from '../../models/outbox.ts';
import { pageCount, pageFrom } from '../../lib/pagination.ts';
import { idParam, orNotFound } from '../helpers.ts';

/**
 * "Sent mail": the mails the signed-in account's dispatches and invitations caused and what became of
 * each (sent, queued in the outbox, not delivered). Only their own: anyone else's is a 404. The text
 * is never shown (an invitation's link is the recipient's alone).
 */
export function portalMailController(ctx: AppContext) {
  return {
    async index(req: Request, res: Response) {
      const { page, limit, offset } = pageFrom(req.query);
      const [mails, total] = await Promise.all([
        outbox.listCausedBy(ctx.db, req.user!.id, limit, offset),
        outbox.countCausedBy(ctx.db, req.user!.id),
      ]);
      res.render('portal/mail/index', { title: req.t('delivery.mail.title'), mails, page, pages: pageCount(total) });
    },

    async show(req: Request, res: Response) {
      const mail = orNotFound(await outbox.findCausedBy(ctx.db, req.user!.id, idParam(req, 'mailId')));
      res.render('portal/mail/show', { title: req.t('delivery.mail.mailTitle', { to: mail.to }), mail });
    },
  };
}
