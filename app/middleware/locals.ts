import type { RequestHandler } from 'express';
import { fromAcceptLanguage, isLanguage, type TFunction } from '../lib/i18n.ts';
import { takeFlash } from '../lib/flash.ts';
import { makePaths } from '../paths.ts';
import type { Language } from '../../config/index.ts';
import { labelsFor } from '../services/vocabulary.ts';

/**
 * Picks the language (account, then the visitor's own choice, then Accept-Language, then the host's
 * branding, then the installation default) and puts what every view needs into res.locals.
 */
export function locals(
  translatorFor: (lng: string) => TFunction,
  defaultLanguage: Language,
  generateCsrfToken: (req: Parameters<RequestHandler>[0]) => string,
): RequestHandler {
  return (req, res, next) => {
    const candidates = [
      req.user?.language,
      req.session?.lang,
      fromAcceptLanguage(req.get('accept-language')),
      req.branding?.defaultLanguage,
      defaultLanguage,
    ];
    const lang = candidates.find(isLanguage) ?? 'en';
    req.lang = lang;
    req.actor = {
      accountId: req.user?.id ?? null,
      label: req.user?.email ?? null,
      ip: req.ip ?? null,
      requestId: String(req.id),
      sessionId: req.sessionID ?? null,
    };
    req.t = translatorFor(lang);
    res.set('Content-Language', lang);
    const paths = makePaths(req.boundPortal);
    Object.assign(res.locals, {
      t: req.t,
      labels: labelsFor(req.t),
      lang,
      paths,
      branding: req.branding,
      currentUser: req.user ?? null,
      currentPath: req.originalUrl,
      requestId: String(req.id),
      csrfToken: () => generateCsrfToken(req),
      flashMessages: () => takeFlash(req),
      errors: {},
      values: {},
    });
    next();
  };
}
