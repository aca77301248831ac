import type { RequestHandler } from 'express';
import type { AppContext } from '../../app.ts';
import { AppError } from '../../lib/errors.ts';
import { RateLimiter, type RateRule } from '../../lib/rate-limiter.ts';

/** Requests per token and minute (docs/api.md, "Rate limits"); counted across every server process. */
export const MANAGE_API_RATE: RateRule = { limit: 600, windowMs: 60_000 };

export const rateKeyOf = (tokenId: number) => RateLimiter.key('manage-api', String(tokenId));

/**
 * Counts the request against its token (hit, then compare) before any work, and says where the
 * token stands in the `RateLimit-*` headers; over the limit: 429 with Retry-After.
 */
export function perTokenRateLimit(ctx: AppContext, rule: RateRule = MANAGE_API_RATE): RequestHandler {
  return async (req, res, next) => {
    const state = await ctx.limiter.hit(rateKeyOf(req.api!.token.id), rule);
    res.set({
      'RateLimit-Limit': String(rule.limit),
      'RateLimit-Remaining': String(Math.max(0, rule.limit - state.hits)),
      'RateLimit-Reset': String(state.retryAfterSeconds),
    });
    if (state.hits > rule.limit) throw AppError.rateLimited(state.retryAfterSeconds);
    next();
  };
}

/**
 * A JSON API takes JSON: a body of another type is refused (415) rather than half-read. The size
 * limit is the app's JSON parser's (100 kB, 413).
 */
export const jsonBodiesOnly: RequestHandler = (req, _res, next) => {
  const hasBody = Number(req.get('content-length') ?? 0) > 0 || req.get('transfer-encoding') !== undefined;
  if (hasBody && !req.is('application/json'))
    throw new AppError('bad_request', 'unsupported_media_type', 415, 'api.errors.unsupported_media_type');
  next();
};
