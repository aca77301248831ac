import type { Request, RequestHandler, Response } from 'express';
import type { AppContext } from '../app.ts';
import * as apiTokens from '../models/api-tokens.ts';
import { apiTokenForm, DEFAULT_TOKEN_DAYS } from '../forms/api-tokens.ts';
import { formData } from '../forms/parse.ts';
import { dataDirSecretBox } from '../crypto/secret-box.ts';
import { API_SCOPES, PERSONAL_SCOPES } from '../policies/api-scopes.ts';
import { createApiClient, createPersonalToken, revokeToken } from '../services/api-tokens.ts';
import { confirmFirst } from './confirm.ts';
import { onFailure } from '../middleware/errors.ts';
import { done, idParam, orNotFound } from './helpers.ts';
import { notFound } from '../lib/errors.ts';

declare module 'express-session' {
  interface SessionData {
    /**
     * The token just made, sealed: shown once on the list page (then removed), or gone after
     * FRESH_TOKEN_MINUTES. Never stored anywhere else readable.
     */
    freshApiToken?: { id: number; sealed: string; until: number };
  }
}

export const FRESH_TOKEN_MINUTES = 10;

/**
 * Management API credentials in the console (`admin`: the vendor's API clients) and in the User
 * Portal (`portal`: a manager's own personal access tokens, with `manage_api_clients`). A new token
 * is shown once, on the list page right after it was made.
 */
export function apiTokensController(ctx: AppContext, area: 'admin' | 'portal') {
  const secretBox = dataDirSecretBox(ctx.config.dataDir);
  const kind = area === 'admin' ? 'client' : 'personal';
  const scopes = area === 'admin' ? API_SCOPES : PERSONAL_SCOPES;
  const sealContext = (req: Request) => `api-token:${area}:${req.user!.id}`;
  const owner = (req: Request) => (area === 'admin' ? {} : { ownerAccountId: req.user!.id });
  const listUrl = (res: Response) =>
    area === 'admin' ? res.locals.paths.adminApiClients() : res.locals.paths.portalTokens();

  /** The token just made, once: read and forgotten. */
  const takeFresh = (req: Request) => {
    const fresh = req.session.freshApiToken;
    if (!fresh) return null;
    delete req.session.freshApiToken;
    if (fresh.until <= ctx.clock.now().getTime()) return null;
    return secretBox.open(fresh.sealed, sealContext(req));
  };

  const form = (req: Request, res: Response, status: number, values: object, errors = {}) =>
    res.status(status).render('api-tokens/new', {
      title: req.t(`api.tokens.${area}.new`),
      area,
      scopes,
      values,
      errors,
    });

  /** `:id`, a token of this page's kind (and, in the portal, the manager's own), or 404. */
  const load: RequestHandler = async (req, res, next) => {
    const token = orNotFound(await apiTokens.findById(ctx.db, idParam(req)));
    const ownerId = area === 'portal' ? req.user!.id : null;
    if (token.kind !== kind || (ownerId !== null && token.ownerAccountId !== ownerId)) throw notFound();
    res.locals.apiToken = token;
    next();
  };

  return {
    load,
    async index(req: Request, res: Response) {
      const fresh = takeFresh(req);
      res.render('api-tokens/index', {
        title: req.t(`api.tokens.${area}.title`),
        area,
        fresh,
        tokens: await apiTokens.list(ctx.db, { kind, ...owner(req) }),
        now: ctx.clock.now(),
      });
    },

    new(req: Request, res: Response) {
      form(req, res, 200, { days: DEFAULT_TOKEN_DAYS, scopes: [] });
    },

    async create(req: Request, res: Response) {
      onFailure(res, {
        rerender: (err) =>
          form(req, res, 422, { ...req.body, scopes: [req.body?.scopes ?? []].flat() }, err.fieldErrors),
      });
      const input = formData(apiTokenForm, req.body);
      const created =
        area === 'admin'
          ? await createApiClient(ctx, req.actor, input)
          : await createPersonalToken(ctx, req.actor, req.user!, input);
      req.session.freshApiToken = {
        id: created.id,
        sealed: secretBox.seal(created.token, sealContext(req)),
        until: ctx.clock.now().getTime() + FRESH_TOKEN_MINUTES * 60_000,
      };
      done(req, res, listUrl(res), 'api.tokens.created');
    },

    askRevoke: confirmFirst((req, res) => {
      const token = res.locals.apiToken as apiTokens.ApiToken;
      const vars = { name: token.name, prefix: `${token.displayPrefix}…` };
      return {
        title: req.t('api.tokens.confirmRevoke.title', vars),
        text: req.t('api.tokens.confirmRevoke.text', vars),
        button: req.t('api.tokens.revoke'),
        back: listUrl(res),
      };
    }),

    async revoke(req: Request, res: Response) {
      onFailure(res, { back: listUrl(res) });
      await revokeToken(ctx, req.actor, (res.locals.apiToken as apiTokens.ApiToken).id, { kind, ...owner(req) });
      done(req, res, listUrl(res), 'api.tokens.revoked');
    },
  };
}
