import type { RequestHandler } from 'express';
import type { Knex } from 'knex';
import { BUILT_IN_BRANDING, resolveHost } from '../models/brandings.ts';
import type { GenerationCache } from '../lib/generation-cache.ts';

/**
 * Resolves the request's Host to its branding and to the portal that host serves at `/` (docs/console.md).
 * The License API answers JSON to applications, the same on every host: it shows no branding and
 * skips the lookup.
 */
export function brandingByHost(db: Knex, cache?: GenerationCache): RequestHandler {
  return async (req, _res, next) => {
    if (req.path.startsWith('/api/')) {
      req.branding = BUILT_IN_BRANDING;
      req.boundPortal = null;
      return next();
    }
    try {
      const host = (req.hostname ?? '').toLowerCase();
      const { branding, portal } = cache
        ? await cache.get(db, `branding:${host}`, (h) => resolveHost(h, host))
        : await resolveHost(db, host);
      req.branding = branding;
      req.boundPortal = portal;
      next();
    } catch (err) {
      next(err);
    }
  };
}
