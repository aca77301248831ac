import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { i18n } from 'i18next';
import { HttpError, notFound } from '../lib/errors.ts';
import { fromAcceptLanguage } from '../lib/i18n.ts';
import { makePaths } from '../paths.ts';
import { BUILT_IN_BRANDING } from '../models/brandings.ts';
import { type Logger, redactUrl } from '../lib/logger.ts';

export const notFoundHandler: RequestHandler = (_req, _res, next) => next(notFound());

interface ErrorLike {
  status?: number;
  statusCode?: number;
  type?: string;
  code?: string;
}

function classify(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const e = (err ?? {}) as ErrorLike;
  if (e.code === 'EBADCSRFTOKEN' || (e.status === 403 && /csrf/i.test(String((err as Error).message)))) return new HttpError(403, 'errors.csrf');
  if (e.type === 'entity.too.large' || e.code === 'LIMIT_FILE_SIZE') return new HttpError(413, 'errors.tooLarge');
  if (e.type === 'entity.parse.failed') return new HttpError(400, 'errors.badRequest');
  if ((err as Error)?.name === 'MulterError') return new HttpError(400, 'errors.badRequest');
  const status = e.status ?? e.statusCode;
  if (status && status >= 400 && status < 500) return new HttpError(status, status === 404 ? 'errors.notFound' : 'errors.badRequest');
  return new HttpError(500, 'errors.server');
}

/**
 * Renders the error page in the user's language with the request id and never a stack trace.
 * Works even when the failure happened before the per-request locals were set.
 */
export function errorHandler(i18n: i18n, logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const httpError = classify(err);
    const requestId = String(req.id ?? '');
    // A busy answer (503, the upload slots) is expected under load: a warning, not an error.
    if (httpError.status === 503) logger.warn({ requestId, url: redactUrl(req.originalUrl) }, 'busy');
    else if (httpError.status >= 500) logger.error({ err, requestId, url: redactUrl(req.originalUrl) }, 'request failed');
    if (res.headersSent) return res.end();
    const lang = req.lang ?? fromAcceptLanguage(req.get('accept-language')) ?? 'en';
    const t = req.t ?? i18n.getFixedT(lang);
    res.status(httpError.status).set(httpError.headers).set('Cache-Control', 'no-store');
    if (req.path.startsWith('/api/') || (req.accepts(['html', 'json']) === 'json')) {
      return res.json({ error: { code: httpError.messageKey.replace(/^errors\./, '').replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), message: t(httpError.messageKey), requestId } });
    }
    const view = {
      t,
      lang,
      paths: res.locals.paths ?? makePaths(null),
      branding: req.branding ?? BUILT_IN_BRANDING,
      currentUser: req.user ?? null,
      currentPath: req.originalUrl,
      csrfToken: res.locals.csrfToken ?? (() => ''),
      flashMessages: () => [],
      status: httpError.status,
      message: t(httpError.messageKey),
      title: t(`errors.title${httpError.status}`, { defaultValue: t('errors.titleGeneric') }),
      requestId,
    };
    res.render('errors/error', view, (renderErr: Error | null, html?: string) => {
      if (renderErr) {
        logger.error({ err: renderErr, requestId }, 'error page failed to render');
        return res.type('text').send(`${view.title}\n${view.message}\nRequest id: ${requestId}`);
      }
      res.send(html);
    });
  };
}
