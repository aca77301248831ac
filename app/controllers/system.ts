import cluster from 'node:cluster';
import type { Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import { publicKeyDocument } from '../crypto/signing-keys.ts';
import { listTrusted as listTrustedKeys } from '../models/signing-keys.ts';
import { findLogo } from '../models/brandings.ts';
import { HttpError, forbidden, notFound } from '../lib/errors.ts';
import { addressAllowed, tokenMatches } from '../lib/metrics-access.ts';

const HEX = /^#[0-9a-fA-F]{6}$/;

/** Which cluster worker answers (server.ts with WORKERS > 1): its id, 1, 2, … and a new one for each replacement. */
const workerId = (): number | undefined => (cluster.isWorker ? cluster.worker?.id : undefined);

/** Health, readiness, public keys and the per-host branding stylesheet. */
export function systemController(ctx: AppContext) {
  return {
    healthz(_req: Request, res: Response) {
      res.set('Cache-Control', 'no-store').json({ status: 'ok' });
    },

    async readyz(_req: Request, res: Response) {
      res.set('Cache-Control', 'no-store');
      if (ctx.state.shuttingDown) return res.status(503).json({ status: 'shutting_down' });
      try {
        await ctx.db.raw('select 1 as ok');
        // Per worker: this process's own pool answered. `worker` only when clustered (absent with WORKERS=1).
        res.json({ status: 'ready', worker: workerId() });
      } catch {
        res.status(503).json({ status: 'database_unavailable' });
      }
    },

    /**
     * Prometheus metrics (app/lib/metrics.ts): 404 while off; from an address off METRICS_ALLOW 403;
     * without the METRICS_TOKEN bearer token 401. With WORKERS > 1 the counters of all workers, summed.
     */
    async metrics(req: Request, res: Response) {
      const access = ctx.config.metrics;
      if (!access || !ctx.metrics.enabled) throw notFound();
      if (access.allow.length && !addressAllowed(req.ip, access.allow)) throw forbidden();
      if (access.token && !tokenMatches(req.headers.authorization, access.token))
        throw new HttpError(401, 'errors.forbidden', { 'WWW-Authenticate': 'Bearer realm="metrics"' });
      const text = await ctx.metrics.scrape(ctx.aggregateMetrics);
      res.set('Cache-Control', 'no-store').type(ctx.metrics.contentType).send(text);
    },

    async publicKeys(_req: Request, res: Response) {
      const keys = await ctx.cache.get(ctx.db, 'signing.published', (h) => listTrustedKeys(h));
      res.set('Cache-Control', 'public, max-age=300').json(publicKeyDocument(keys));
    },

    brandingCss(req: Request, res: Response) {
      const primary = HEX.test(req.branding.primaryColor) ? req.branding.primaryColor : '#1f4e79';
      const accent = HEX.test(req.branding.accentColor) ? req.branding.accentColor : '#d9822b';
      res
        .type('text/css')
        .set('Cache-Control', 'public, max-age=60')
        .send(`:root{--brand-primary:${primary};--brand-accent:${accent};}\n`);
    },

    async brandingLogo(req: Request, res: Response) {
      const logo = req.branding.id && req.branding.hasLogo ? await findLogo(ctx.db, req.branding.id) : undefined;
      if (!logo) throw notFound();
      // Served as an image with its own strict policy: an SVG opened directly can run nothing.
      res
        .set({
          'Content-Type': logo.mime,
          'Cache-Control': 'public, max-age=300',
          'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        })
        .send(logo.data);
    },
  };
}
