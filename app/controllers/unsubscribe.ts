import type { NextFunction, Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import { dataDirSecretBox } from '../crypto/secret-box.ts';
import { RateLimiter, clientOf } from '../lib/rate-limiter.ts';
import * as accounts from '../models/accounts.ts';
import { rateLimited } from '../services/auth.ts';
import { UNSUBSCRIBES_PER_CLIENT, unsubscribe, unsubscribeTarget } from '../services/unsubscribe.ts';

/**
 * The one-click unsubscribe link of a notification mail (services/unsubscribe.ts). No login: the
 * signed token is the credential. GET only shows what the button would do (mail scanners follow
 * links); POST turns the kind off — from the page's button, or from a mail client's RFC 8058
 * one-click POST (`List-Unsubscribe=One-Click`), which carries no cookie and no CSRF token, so this
 * one route is exempt from the CSRF check (middleware/csrf-exempt.ts says why that is safe).
 */
export function unsubscribeController(ctx: AppContext) {
  const box = dataDirSecretBox(ctx.config.dataDir);
  const token = (req: Request) => String(req.params.token ?? '');

  return {
    /** Per client address, before the token is even read (limits before work). */
    async limit(req: Request, _res: Response, next: NextFunction) {
      const state = await ctx.limiter.hit(RateLimiter.key('unsubscribe', clientOf(req.ip)), UNSUBSCRIBES_PER_CLIENT);
      if (state.hits > UNSUBSCRIBES_PER_CLIENT.limit) throw rateLimited(state.retryAfterSeconds);
      next();
    },

    show(req: Request, res: Response) {
      const { email, kind } = unsubscribeTarget(box, token(req));
      res.set('Referrer-Policy', 'no-referrer').render('account/unsubscribe', {
        title: req.t('unsubscribe.title'),
        token: token(req),
        email,
        kind,
        done: false,
      });
    },

    async unsubscribe(req: Request, res: Response) {
      const { email, kind, changed } = await unsubscribe({ ...ctx, box }, req.actor, token(req));
      const hasAccount = !!(await accounts.findByEmail(ctx.db, email));
      res.set('Referrer-Policy', 'no-referrer').render('account/unsubscribe', {
        title: req.t('unsubscribe.title'),
        token: token(req),
        email,
        kind,
        done: true,
        changed,
        hasAccount,
      });
    },
  };
}
