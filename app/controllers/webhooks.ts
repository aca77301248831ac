import type { Request, RequestHandler, Response } from 'express';
import type { AppContext } from '../app.ts';
import { formData } from '../forms/parse.ts';
import { notFound } from '../lib/errors.ts';
import { endpointForm } from '../forms/webhooks.ts';
import { onFailure } from '../middleware/errors.ts';
import * as webhooks from '../models/webhooks.ts';
import { authorize } from '../policies/portal.ts';
import { WEBHOOK_EVENT_TYPES } from '../services/events.ts';
import * as service from '../services/webhooks.ts';
import { done, idParam, onPage, orNotFound } from './helpers.ts';

/**
 * The webhook pages, the same in the console (the vendor's endpoints, owner null) and the User
 * Portal (the signed-in manager's own endpoints, behind manage_api_clients). An endpoint of another
 * owner is not found (404).
 */
export function webhooksController(ctx: AppContext, area: 'admin' | 'portal') {
  const deps = service.webhookDepsOf(ctx);
  const ownerOf = (req: Request) => (area === 'admin' ? null : req.user!.id);
  const links = (res: Response) => res.locals.paths.webhooks(area);
  const endpointOf = (req: Request) => req.webhookEndpoint!;
  const view = (name: string) => `webhooks/${name}`;

  /** The endpoint form (new, or edit when `id`), with a failure's field errors and message variables. */
  const renderForm = (
    req: Request,
    res: Response,
    status: number,
    form: { values: object; errors?: object; id?: number; vars?: Record<string, unknown> },
  ) =>
    res.status(status).render(view('form'), {
      title: req.t(form.id ? 'webhooks.editTitle' : 'webhooks.newTitle'),
      area,
      endpointId: form.id ?? null,
      eventTypes: WEBHOOK_EVENT_TYPES,
      values: form.values,
      errors: form.errors ?? {},
      csvVars: form.vars ?? {},
    });
  const valuesOf = (e: webhooks.Endpoint) => ({ url: e.url, description: e.description, events: e.eventTypes });
  const submitted = (body: Record<string, unknown>) => ({
    ...body,
    events: body.events === undefined ? [] : Array.isArray(body.events) ? body.events : [body.events],
  });
  const showSecret = (req: Request, res: Response, id: number, secret: string, key: string) =>
    res.set('Cache-Control', 'no-store').render(view('secret'), { title: req.t(key), area, endpointId: id, secret });

  return {
    /**
     * The User Portal's guard: the pages are managers' (404 for anyone else: an admin's endpoints are the
     * console's); a manager without manage_api_clients is refused (403), as on every portal page a
     * permission guards.
     */
    allowed: ((req, _res, next) => {
      if (req.user?.role !== 'manager') return next(notFound());
      authorize(req.permissions, 'manage_api_clients');
      next();
    }) as RequestHandler,

    /** The route-line loader: `:id`, one of the owner's endpoints, or 404. */
    load: (async (req, _res, next) => {
      req.webhookEndpoint = orNotFound(await webhooks.findOf(ctx.db, ownerOf(req), idParam(req)));
      next();
    }) as RequestHandler,

    async index(req: Request, res: Response) {
      res.render(view('index'), {
        title: req.t('webhooks.title'),
        area,
        endpoints: await webhooks.listOf(ctx.db, ownerOf(req)),
        managersEndpoints: area === 'admin' ? await webhooks.listOfManagers(ctx.db) : [],
      });
    },

    async new(req: Request, res: Response) {
      renderForm(req, res, 200, { values: { url: '', description: '', events: [] } });
    },

    async create(req: Request, res: Response) {
      onFailure(res, {
        rerender: (err) =>
          renderForm(req, res, 422, { values: submitted(req.body ?? {}), errors: err.fieldErrors, vars: err.vars }),
      });
      const f = formData(endpointForm, req.body);
      const { id, secret } = await service.createEndpoint(deps, req.actor, ownerOf(req), f);
      showSecret(req, res, id, secret, 'webhooks.createdTitle');
    },

    async show(req: Request, res: Response) {
      const e = endpointOf(req);
      res.render(view('show'), {
        title: req.t('webhooks.showTitle', { url: e.url }),
        area,
        endpoint: e,
        overlap: e.previousUntil && e.previousUntil > ctx.clock.now() ? e.previousUntil : null,
        deliveries: await webhooks.deliveriesOf(ctx.db, e.id, 50),
        attempts: await webhooks.attemptsOf(ctx.db, e.id, 100),
      });
    },

    async edit(req: Request, res: Response) {
      const e = endpointOf(req);
      renderForm(req, res, 200, { values: valuesOf(e), id: e.id });
    },

    async update(req: Request, res: Response) {
      const e = endpointOf(req);
      onFailure(res, {
        rerender: (err) =>
          renderForm(req, res, 422, { values: submitted(req.body ?? {}), errors: err.fieldErrors, id: e.id }),
      });
      const f = formData(endpointForm, req.body);
      await service.updateEndpoint(deps, req.actor, ownerOf(req), e.id, f);
      done(req, res, links(res).show(e.id), 'webhooks.saved');
    },

    async rotate(req: Request, res: Response) {
      const e = endpointOf(req);
      const secret = await service.rotateSecret(deps, req.actor, ownerOf(req), e.id);
      showSecret(req, res, e.id, secret, 'webhooks.rotatedTitle');
    },

    async disable(req: Request, res: Response) {
      const e = endpointOf(req);
      const ok = onPage(req, res, links(res).show(e.id));
      await service.setEndpointEnabled(deps, req.actor, ownerOf(req), e.id, false);
      ok('webhooks.disabled');
    },

    async enable(req: Request, res: Response) {
      const e = endpointOf(req);
      const ok = onPage(req, res, links(res).show(e.id));
      await service.setEndpointEnabled(deps, req.actor, ownerOf(req), e.id, true);
      ok('webhooks.enabled');
    },

    async destroy(req: Request, res: Response) {
      await service.deleteEndpoint(deps, req.actor, ownerOf(req), endpointOf(req).id);
      done(req, res, links(res).index(), 'webhooks.deleted');
    },

    async test(req: Request, res: Response) {
      const e = endpointOf(req);
      const ok = onPage(req, res, links(res).show(e.id));
      await service.sendTestEvent(deps, req.actor, ownerOf(req), e.id);
      ok('webhooks.testSent');
    },

    async resend(req: Request, res: Response) {
      const e = endpointOf(req);
      const ok = onPage(req, res, links(res).show(e.id));
      await service.resendDelivery(deps, req.actor, ownerOf(req), e.id, idParam(req, 'deliveryId'));
      ok('webhooks.resent');
    },
  };
}
