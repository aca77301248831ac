import type { NextFunction, Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import { RateLimiter } from '../lib/rate-limiter.ts';
import { decodeEnvelope } from '../../sdk/src/envelope.ts';
import { HttpError } from '../lib/errors.ts';
import { ActivationError } from '../services/activation.ts';
import { ApiError, activateOnline, checkOnline, deactivateOnline } from '../services/online.ts';

const API_MESSAGES: Record<string, string> = {
  request_missing: 'The body must be JSON with "request": the armoured request made by the SDK.',
  request_malformed: 'The request is damaged or is not a Portico request of the expected kind.',
  signature_invalid: "The request's signature is not valid: it was changed after the device signed it.",
  wrong_type: 'This endpoint takes another kind of request.',
  activation_inactive: 'This activation has been deactivated or reset: activate again.',
  rate_limited: 'Too many requests from this client: wait for Retry-After seconds.',
  user_credentials: 'This license is assigned to a user: send "user": { "email", "password" } with the request.',
};

/** Requests per client address, and per license (from the request's license key, id or user) per minute. */
export const API_PER_CLIENT = { limit: 600, windowMs: 60_000 };
export const API_PER_LICENSE = { limit: 120, windowMs: 60_000 };

/** Which license a request names, read without trusting it (only to count it). */
function licenseOf(text: unknown): string | null {
  if (typeof text !== 'string') return null;
  try {
    const p = JSON.parse(decodeEnvelope(text).payloadBytes.toString('utf8')) as Record<string, unknown>;
    const id = p.licenseKey ?? p.licenseId ?? p.user;
    return typeof id === 'string' || typeof id === 'number' ? `${p.product}:${id}` : null;
  } catch {
    return null;
  }
}

/** The License API (`/api/v1`, JSON): online activation, check, deactivation and release for the SDK. */
export function apiController(ctx: AppContext) {
  const deps = { ...ctx, defaultLanguage: ctx.config.defaultLanguage };
  const t = ctx.i18n.getFixedT('en');

  /** API messages are for the vendor's developers: English; refusal texts are the portals' own. */
  const fail = (res: Response, status: number, code: string, headers: Record<string, string> = {}) =>
    res.status(status).set(headers).set('Cache-Control', 'no-store').json({ error: { code, message: API_MESSAGES[code] ?? t(`offline.refusals.${code}.why`, { defaultValue: code }) } });

  /** Every endpoint: rate limit, run, map refusals to stable JSON error codes. */
  const endpoint = (run: (req: Request) => Promise<object>) => async (req: Request, res: Response, next: NextFunction) => {
    try {
      const license = licenseOf(req.body?.request);
      for (const [key, rule] of [[RateLimiter.key('api', req.ip ?? 'unknown'), API_PER_CLIENT], ...(license ? [[RateLimiter.key('api-license', license), API_PER_LICENSE] as const] : [])] as const) {
        const state = await ctx.limiter.hit(key, rule);
        if (state.hits > rule.limit) return fail(res, 429, 'rate_limited', { 'Retry-After': String(state.retryAfterSeconds) });
      }
      res.set('Cache-Control', 'no-store').json(await run(req));
    } catch (err) {
      if (err instanceof ApiError) return fail(res, err.status, err.code);
      if (err instanceof ActivationError) return fail(res, err.status, err.code);
      if (err instanceof HttpError && err.status === 429) return fail(res, 429, 'rate_limited', err.headers);
      if (err instanceof HttpError && err.status < 500) return fail(res, err.status, err.messageKey.replace(/^errors\./, ''), err.headers);
      next(err);
    }
  };

  const credentials = (body: Record<string, unknown>) =>
    body && typeof body.user === 'object' && body.user !== null && typeof (body.user as Record<string, unknown>).email === 'string' && typeof (body.user as Record<string, unknown>).password === 'string'
      ? { email: String((body.user as Record<string, unknown>).email), password: String((body.user as Record<string, unknown>).password) }
      : null;

  return {
    activate: endpoint((req) => activateOnline(deps, req.actor, req.body?.request, credentials(req.body))),
    check: endpoint((req) => checkOnline(deps, req.actor, req.body?.request)),
    deactivate: endpoint((req) => deactivateOnline(deps, req.actor, req.body?.request)),
    release: endpoint((req) => deactivateOnline(deps, req.actor, req.body?.request)),
  };
}
