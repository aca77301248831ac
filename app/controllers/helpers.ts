import type { Knex } from 'knex';
import type { Request, RequestHandler, Response } from 'express';
import { notFound } from '../lib/errors.ts';
import type { Delivery } from '../lib/mailer.ts';
import { flash } from '../lib/flash.ts';
import { onFailure } from '../middleware/errors.ts';
import { pageCount, pageFrom } from '../lib/pagination.ts';
import * as orders from '../models/orders.ts';

/** A positive whole-number URL parameter; anything else is 404 (an id that cannot exist). */
export function idParam(req: Request, name = 'id'): number {
  const raw = req.params[name];
  const n = typeof raw === 'string' && /^\d{1,10}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > 2_147_483_647) throw notFound();
  return n;
}

export function orNotFound<T>(value: T | undefined | null): T {
  if (value === undefined || value === null) throw notFound();
  return value;
}

/** Success: flash the message and redirect with 303 (post/redirect/get). */
export function done(req: Request, res: Response, url: string, messageKey: string, vars: Record<string, unknown> = {}) {
  flash(req, 'success', req.t(messageKey, vars));
  res.redirect(303, url);
}

/**
 * An action on an object's page: a validation error shows the page again (`show`, with the errors),
 * a refused change flashes why and goes back to `url`; the returned function answers success there.
 */
export function onPage(req: Request, res: Response, url: string, show?: (errors: Record<string, string>) => unknown) {
  onFailure(res, { back: url, rerender: show && ((err) => show(err.fieldErrors)) });
  return (messageKey: string, vars: Record<string, unknown> = {}) => done(req, res, url, messageKey, vars);
}

/** A change that is not allowed in this state: say why and go back (the service enforces the same rule). */
export function refuse(req: Request, res: Response, url: string, messageKey: string) {
  flash(req, 'error', req.t(messageKey));
  res.redirect(303, url);
}

/** The query string of a list page, kept for search, filter and paging links. */
export function listQuery(req: Request, keys: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keys) {
    const v = req.query[k];
    if (typeof v === 'string' && v.trim() !== '' && v.length <= 200) out[k] = v.trim();
  }
  return out;
}

/** After a change of credentials the session that made it gets a new id (the account's other sessions have ended). */
export const renewSession = (req: Request) =>
  new Promise<void>((resolve, reject) =>
    req.login(req.user!, { session: true, keepSessionInfo: true }, (err) => (err ? reject(err) : resolve())),
  );

/** The orders list of the console and the User Portal (one page of `scope`, filtered by `?q=`): the view's locals. */
export async function orderListPage(req: Request, scope: Knex.QueryBuilder) {
  const query = listQuery(req, ['q']);
  const { page, limit, offset } = pageFrom(req.query);
  const [rows, total] = await Promise.all([
    orders.listSummaries(scope, limit, offset, { q: query.q }),
    orders.countInScope(scope, { q: query.q }),
  ]);
  return { orders: rows, query, page, pages: pageCount(total), total };
}

/**
 * The message for a mail's fate, from a `delivery.<what>` pair: `.sending` when it is on its way to
 * the SMTP server (the job queue sends it), `.queued` when it waits in the outbox (no SMTP set up).
 * A request never knows whether SMTP accepted the mail: the "Sent mail" page shows that later.
 */
export const deliveryKey = (what: string, delivery: Delivery | null) =>
  `delivery.${what}.${delivery === 'sending' ? 'sending' : 'queued'}`;

/** A dispatch's messages: how many licenses are being sent and how many wait in the outbox (plural forms by count). */
export function flashDispatch(req: Request, result: { sending: number; queued: number }) {
  if (result.sending) flash(req, 'success', req.t('delivery.dispatch.sending', { count: result.sending }));
  if (result.queued) flash(req, 'info', req.t('delivery.dispatch.queued', { count: result.queued }));
}

/** A route-line loader: `run` sets what the URL names on `req` (or throws: 404 outside the scope), then the route goes on. */
export const loader =
  (run: (req: Request) => Promise<void>): RequestHandler =>
  async (req, _res, next) => {
    await run(req);
    next();
  };

/** The context for a service that mails: the request's host brands the mail (app/services/mail.ts). */
export const mailingFrom = <T extends object>(ctx: T, req: Request): T & { origin: string } => ({
  ...ctx,
  origin: req.hostname,
});
