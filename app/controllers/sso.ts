import type { Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import type { Account } from '../models/accounts.ts';
import * as accounts from '../models/accounts.ts';
import * as idp from '../models/identity-providers.ts';
import { dataDirSecretBox } from '../crypto/secret-box.ts';
import { RateLimiter, clientOf, type RateRule } from '../lib/rate-limiter.ts';
import { safeReturnPath } from '../paths.ts';
import { recordAudit } from '../services/audit.ts';
import { rateLimited } from '../services/throttles.ts';
import {
  REFUSAL_REASONS,
  type RefusalReason,
  SsoRefused,
  completeLogin,
  domainOf,
  refuse,
  refusalError,
  routeEmail,
} from '../services/sso.ts';
import { finishOidc, startOidc, type OidcPending } from '../services/sso-oidc.ts';
import { consumeSaml, spMetadata, startSaml, takeSamlResult } from '../services/sso-saml.ts';
import { afterLoginPath } from './sessions.ts';
import { idParam } from './helpers.ts';

declare module 'express-session' {
  interface SessionData {
    /** A single sign-on in progress (between the redirect to the provider and its answer). */
    sso?: { kind: 'oidc'; pending: OidcPending } | { kind: 'saml'; providerId: number; requestId: string };
    /** The OpenID provider's end-session URL of this login, offered at logout. */
    ssoEndSessionUrl?: string;
  }
}

/**
 * Redirects to providers, their answers and the assertion consumer's work, per client address: a
 * limit before the work (an outbound fetch, XML signatures). Generous, since a whole office signs in
 * from one address at nine; a flood is still cut at 120 a minute.
 */
export const SSO_PER_CLIENT: RateRule = { limit: 120, windowMs: 60_000 };

/**
 * The login side of single sign-on (docs/sso.md): routing an address to its provider, the redirect
 * there, the provider's answer (OpenID Connect callback; SAML assertion consumer, then the browser's
 * return with the session cookie), and the SP metadata of a SAML provider.
 */
export function ssoController(ctx: AppContext) {
  const secretBox = dataDirSecretBox(ctx.config.dataDir);
  const oidcDeps = async () => ({ ...ctx, secretBox, allowPrivate: (await ctx.settings()).webhookPrivateTargets });
  const limit = async (req: Request) => {
    const state = await ctx.limiter.hit(RateLimiter.key('sso-client', clientOf(req.ip)), SSO_PER_CLIENT);
    if (state.hits > SSO_PER_CLIENT.limit) throw rateLimited(state.retryAfterSeconds);
  };
  const loadProvider = async (req: Request) => {
    const provider = await idp.find(ctx.db, idParam(req));
    if (!provider) throw refusalError('disabled');
    return provider;
  };
  /** A refusal: audited by the service already; the person sees why, in their language. */
  const shown = (err: unknown) => {
    if (err instanceof SsoRefused) return refusalError(err.reason);
    return err;
  };

  const logIn = (req: Request, res: Response, account: Account, endSessionUrl: string | null) =>
    new Promise<void>((resolve, reject) => {
      const returnTo = safeReturnPath(req.session.returnTo);
      // passport regenerates the session here: the session id changes at login (no fixation).
      req.logIn(account, (err) => {
        if (err) return reject(err);
        if (endSessionUrl) req.session.ssoEndSessionUrl = endSessionUrl;
        res.redirect(303, afterLoginPath(account, returnTo, res.locals.paths));
        resolve();
      });
    });

  return {
    /** The e-mail step: an address of a confirmed domain goes to its provider, any other to the password form. */
    showEmailStep(req: Request, res: Response) {
      res.render('auth/sso', { title: req.t('sso.login.title'), values: {}, errors: {} });
    },

    async emailStep(req: Request, res: Response) {
      const email = typeof req.body?.email === 'string' ? req.body.email.trim().slice(0, 254) : '';
      if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email))
        return res.status(422).render('auth/sso', {
          title: req.t('sso.login.title'),
          values: { email },
          errors: { email: 'validation.email' },
        });
      const route = await routeEmail(ctx.db, email);
      if (route.provider) return res.redirect(303, res.locals.paths.ssoContinue(route.provider.id, { email }));
      res.redirect(303, withEmail(res.locals.paths.login(), email));
    },

    /**
     * The step between the login form and the provider: a page whose link (followed at once by
     * public/js/sso.js) leaves for the provider. A form's redirect chain may not end at another
     * origin (CSP form-action 'self'); a link's may.
     */
    async continuePage(req: Request, res: Response) {
      const provider = await loadProvider(req);
      if (!provider.enabled) throw refusalError('disabled');
      const email = typeof req.query.email === 'string' ? req.query.email.slice(0, 254) : '';
      res.render('auth/sso-continue', {
        title: req.t('sso.login.continueTo', { provider: provider.name }),
        provider,
        startUrl: res.locals.paths.ssoStart(provider.id, email ? { email } : {}),
      });
    },

    async start(req: Request, res: Response) {
      await limit(req);
      const provider = await loadProvider(req);
      if (!provider.enabled)
        return refuse(ctx, req.actor, provider, 'disabled').catch((err) => Promise.reject(shown(err)));
      const hint = typeof req.query.email === 'string' ? req.query.email.slice(0, 254) : null;
      try {
        if (provider.kind === 'oidc') {
          const { url, pending } = await startOidc(
            await oidcDeps(),
            provider,
            ctx.baseUrl + res.locals.paths.ssoOidcCallback(provider.id),
            hint,
          );
          req.session.sso = { kind: 'oidc', pending };
          return res.redirect(303, url);
        }
        const { url, requestId } = await startSaml(ctx, provider, ctx.baseUrl);
        req.session.sso = { kind: 'saml', providerId: provider.id, requestId };
        res.redirect(303, url);
      } catch (err) {
        if (err instanceof SsoRefused && !err.audited)
          await refuse(ctx, req.actor, provider, err.reason, err.detail).catch(() => {});
        throw shown(err);
      }
    },

    async oidcCallback(req: Request, res: Response) {
      await limit(req);
      const provider = await loadProvider(req);
      const flow = req.session.sso;
      // One answer per redirect: the pending state is gone before the code is exchanged.
      delete req.session.sso;
      try {
        if (flow?.kind !== 'oidc' || flow.pending.providerId !== provider.id)
          throw new SsoRefused('state_mismatch', 'no sign-in in progress');
        if (!provider.enabled) throw new SsoRefused('disabled');
        const url = new URL(req.originalUrl, ctx.baseUrl);
        const { identity, endSessionUrl } = await finishOidc(await oidcDeps(), provider, flow.pending, url);
        const account = await completeLogin(ctx, req.actor, provider, identity);
        await logIn(req, res, account, endSessionUrl);
      } catch (err) {
        if (err instanceof SsoRefused && !err.audited)
          await refuse(ctx, req.actor, provider, err.reason, err.detail).catch(() => {});
        throw shown(err);
      }
    },

    /** The SAML assertion consumer (no session here: the IdP's POST is cross-site). */
    async samlAcs(req: Request, res: Response) {
      // The thin path has no page locals: the return URL is written here (paths.ssoSamlComplete's shape).
      const complete = (query: Record<string, string>) =>
        `/sso/${Number(req.params.id)}/saml/complete?${new URLSearchParams(query).toString()}`;
      await limit(req);
      const provider = await idp.find(ctx.db, idParam(req));
      const actor = { accountId: null, label: null, ip: req.ip ?? null, requestId: String(req.id), sessionId: null };
      try {
        if (!provider?.enabled || provider.kind !== 'saml') throw new SsoRefused('disabled');
        const body = typeof req.body?.SAMLResponse === 'string' ? req.body.SAMLResponse : '';
        if (!body) throw new SsoRefused('invalid_response', 'no SAMLResponse');
        const token = await consumeSaml(ctx, provider, ctx.baseUrl, body);
        res.redirect(303, complete({ token }));
      } catch (err) {
        if (!(err instanceof SsoRefused)) throw err;
        if (!err.audited) await refuse(ctx, actor, provider ?? null, err.reason, err.detail).catch(() => {});
        res.redirect(303, complete({ refused: err.reason }));
      }
    },

    /** The browser's return from the assertion consumer, with its session: the request it answered must be this session's. */
    async samlComplete(req: Request, res: Response) {
      const provider = await loadProvider(req);
      const refused = typeof req.query.refused === 'string' ? req.query.refused : null;
      const flow = req.session.sso;
      delete req.session.sso;
      if (refused)
        throw refusalError(
          (REFUSAL_REASONS as readonly string[]).includes(refused) ? (refused as RefusalReason) : 'invalid_response',
        );
      try {
        const result = await takeSamlResult(ctx, typeof req.query.token === 'string' ? req.query.token : '');
        if (
          !result ||
          result.providerId !== provider.id ||
          !flow ||
          flow.kind !== 'saml' ||
          flow.providerId !== provider.id ||
          flow.requestId !== result.inResponseTo
        )
          throw new SsoRefused('state_mismatch');
        const account = await completeLogin(ctx, req.actor, provider, result.identity);
        await logIn(req, res, account, null);
      } catch (err) {
        if (err instanceof SsoRefused && !err.audited)
          await refuse(ctx, req.actor, provider, err.reason, err.detail).catch(() => {});
        throw shown(err);
      }
    },

    async samlMetadata(req: Request, res: Response) {
      const provider = await idp.find(ctx.db, idParam(req));
      if (provider?.kind !== 'saml') return res.status(404).type('text/plain').send('Not found');
      res.type('application/samlmetadata+xml').send(spMetadata(ctx, provider, ctx.baseUrl));
    },
  };
}

const withEmail = (url: string, email: string) => `${url}?${new URLSearchParams({ email }).toString()}`;

/**
 * The password form's part of routing (POST /login): an address of a confirmed domain with an enabled
 * provider and no password goes to the provider; a password for a domain whose password login is off
 * is refused (admins excepted: the vendor's break-glass). True when it answered the request.
 */
export async function routePasswordLogin(ctx: AppContext, req: Request, res: Response): Promise<boolean> {
  const email = typeof req.body?.email === 'string' ? req.body.email.trim().slice(0, 254) : '';
  const password = typeof req.body?.password === 'string' ? req.body.password : '';
  if (!email.includes('@')) return false;
  const route = await routeEmail(ctx.db, email);
  if (!password && route.provider) {
    res.redirect(303, res.locals.paths.ssoContinue(route.provider.id, { email }));
    return true;
  }
  if (route.passwordLogin || !password) return false;
  const account = await accounts.findByEmail(ctx.db, email);
  if (account?.role === 'admin') return false;
  await recordAudit(ctx.db, { ...req.actor, label: accounts.normaliseEmail(email) }, ctx.clock.now(), {
    action: 'sso.password_login_refused',
    objectType: account ? 'account' : undefined,
    objectId: account?.id ?? null,
    after: { email: accounts.normaliseEmail(email), domain: domainOf(email) },
  });
  res.status(401).render('auth/login', {
    title: res.locals.t('auth.login.title'),
    values: { email },
    errors: {},
    formError: res.locals.t('sso.login.passwordOff'),
    ssoProvider: route.provider,
  });
  return true;
}
