import type { RequestHandler } from 'express';
import type { Knex } from 'knex';
import { resolveHost } from '../models/brandings.ts';

/** Resolves the request's Host to its branding and to the portal that host serves at `/` (SPEC §8). */
export function brandingByHost(db: Knex): RequestHandler {
  return async (req, _res, next) => {
    try {
      const { branding, portal } = await resolveHost(db, req.hostname ?? '');
      req.branding = branding;
      req.boundPortal = portal;
      next();
    } catch (err) {
      next(err);
    }
  };
}
