import type { NextFunction, Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import { RateLimiter, clientOf } from '../lib/rate-limiter.ts';
import { decodeEnvelope } from '../../sdk/src/envelope.ts';
import { AppError } from '../lib/errors.ts';
import { consumeOnline } from '../services/consumption.ts';
import { activateOnline, checkOnline, deactivateOnline, redeemOnline } from '../services/online.ts';

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
  /** Rate limits per client address and per license named in the request, before any work (route line: `api.limit`). */
  const limit = async (req: Request, _res: Response, next: NextFunction) => {
    const license = licenseOf(req.body?.request);
    for (const [key, rule] of [
      [RateLimiter.key('api', clientOf(req.ip)), API_PER_CLIENT],
      ...(license ? [[RateLimiter.key('api-license', license), API_PER_LICENSE] as const] : []),
    ] as const) {
      const state = await ctx.limiter.hit(key, rule);
      if (state.hits > rule.limit) throw AppError.rateLimited(state.retryAfterSeconds);
    }
    next();
  };

  /** An endpoint's answer as JSON; every refusal goes to the one JSON mapper (middleware/errors.ts). */
  const endpoint = (run: (req: Request) => Promise<object>) => async (req: Request, res: Response) => {
    res.set('Cache-Control', 'no-store').json(await run(req));
  };

  const credentials = (body: Record<string, unknown>) =>
    body &&
    typeof body.user === 'object' &&
    body.user !== null &&
    typeof (body.user as Record<string, unknown>).email === 'string' &&
    typeof (body.user as Record<string, unknown>).password === 'string'
      ? {
          email: String((body.user as Record<string, unknown>).email),
          password: String((body.user as Record<string, unknown>).password),
        }
      : null;

  return {
    limit,
    activate: endpoint((req) => activateOnline(ctx, req.actor, req.body?.request, credentials(req.body))),
    redeem: endpoint((req) => redeemOnline(ctx, req.actor, req.body?.request, credentials(req.body))),
    check: endpoint((req) => checkOnline(ctx, req.actor, req.body?.request)),
    deactivate: endpoint((req) => deactivateOnline(ctx, req.actor, req.body?.request)),
    release: endpoint((req) => deactivateOnline(ctx, req.actor, req.body?.request)),
    consume: endpoint((req) => consumeOnline(ctx, req.actor, req.body?.request)),
  };
}
