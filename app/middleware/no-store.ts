import type { RequestHandler } from 'express';
import { CREDENTIAL_LINK_PATHS } from '../lib/tokens.ts';

/**
 * `Cache-Control: no-store` on every response to a signed-in user and on the pages behind one-time
 * links: they show license keys, codes, tokens and personal data that must stay out of shared caches
 * and the browser's back-button history. A handler whose answer may be cached (the branding CSS, the
 * public keys) sets its own header, which replaces this one; static files are served before this
 * runs, and public pages keep their caching.
 */
export const noStoreForPrivatePages: RequestHandler = (req, res, next) => {
  if (req.user || CREDENTIAL_LINK_PATHS.some((prefix) => req.path.startsWith(prefix)))
    res.set('Cache-Control', 'no-store');
  next();
};
