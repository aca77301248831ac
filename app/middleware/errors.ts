import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import type { i18n, TFunction } from 'i18next';
import { AppError, notFound, type ErrorKind } from '../lib/errors.ts';
import { flash } from '../lib/flash.ts';
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

/** Anything thrown, in the vocabulary: an AppError as it is, the libraries' own errors by their marks, the rest a 500. */
function classify(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const e = (err ?? {}) as ErrorLike;
  if (e.code === 'EBADCSRFTOKEN' || (e.status === 403 && /csrf/i.test(String((err as Error).message))))
    return AppError.http(403, 'errors.csrf');
  if (e.type === 'entity.too.large' || e.code === 'LIMIT_FILE_SIZE') return AppError.http(413, 'errors.tooLarge');
  if (e.type === 'entity.parse.failed') return AppError.http(400, 'errors.badRequest');
  if ((err as Error)?.name === 'MulterError') return AppError.http(400, 'errors.badRequest');
  const status = e.status ?? e.statusCode;
  if (status && status >= 400 && status < 500)
    return AppError.http(status, status === 404 ? 'errors.notFound' : 'errors.badRequest');
  return AppError.http(500, 'errors.server');
}

/**
 * What a form action declares before it calls its service (`onFailure(res, …)`), so the HTML mapper
 * can answer a failure the way the page needs: `rerender` shows the form again (with the submitted
 * values and the error's field messages) for the kinds in `rerenderKinds` (validation by default);
 * `back` is where a refused change (conflict) flashes its reason.
 */
export interface FailurePage {
  rerender?: (err: AppError) => unknown;
  rerenderKinds?: readonly ErrorKind[];
  back?: string;
}

export function onFailure(res: Response, page: FailurePage): void {
  res.locals.failure = page;
}

/** The License API's own texts (for the vendor's developers, in English); refusals use the portals' texts. */
const API_MESSAGES: Record<string, string> = {
  request_missing: 'The body must be JSON with "request": the armoured request made by the SDK.',
  request_malformed: 'The request is damaged or is not a Portico request of the expected kind.',
  signature_invalid: "The request's signature is not valid: it was changed after the device signed it.",
  wrong_type: 'This endpoint takes another kind of request.',
  activation_inactive: 'This activation has been deactivated or reset: activate again.',
  rate_limited: 'Too many requests from this client: wait for Retry-After seconds.',
  voucher_missing: 'redeem takes an activation request that carries a "voucher" (a redeemable code).',
  user_credentials: 'This license is assigned to a user: send "user": { "email", "password" } with the request.',
};

/**
 * THE JSON mapper: `{ error: { code, message, fields?, requestId } }` with the error's status; `fields`
 * (field → message) when the error names fields (a validation failure).
 */
function jsonError(res: Response, err: AppError, t: TFunction, requestId: string, api: boolean) {
  const message =
    (api && API_MESSAGES[err.code]) ||
    t(err.messageKey, { ...err.vars, defaultValue: t(`offline.refusals.${err.code}.why`, { defaultValue: err.code }) });
  const entries = Object.entries(err.fieldErrors);
  const fields = entries.length ? Object.fromEntries(entries.map(([f, key]) => [f, t(key, err.vars)])) : undefined;
  return res.json({ error: { code: err.code, message, ...(fields ? { fields } : {}), requestId } });
}

/**
 * THE HTML and JSON mappers: every error of every request ends here. A form's failure re-renders
 * the form or flashes back (as the action declared with onFailure); anything else is the error page
 * in the user's language with the request id and never a stack trace. Works even when the failure
 * happened before the per-request locals were set.
 */
export function errorHandler(i18n: i18n, logger: Logger): ErrorRequestHandler {
  return async (err, req, res, _next) => {
    const appError = classify(err);
    const requestId = String(req.id ?? '');
    // A busy answer (503, the upload slots) is expected under load: a warning, not an error.
    if (appError.status === 503) logger.warn({ requestId, url: redactUrl(req.originalUrl) }, 'busy');
    else if (appError.status >= 500)
      logger.error({ err, requestId, url: redactUrl(req.originalUrl) }, 'request failed');
    if (res.headersSent) return res.end();
    const lang = req.lang ?? fromAcceptLanguage(req.get('accept-language')) ?? 'en';
    const t = req.t ?? i18n.getFixedT(lang);
    res.set(appError.headers).set('Cache-Control', 'no-store');
    const api = req.path.startsWith('/api/');
    // The API's messages are for the vendor's developers: English.
    if (api || req.accepts(['html', 'json']) === 'json')
      return jsonError(res.status(appError.status), appError, api ? i18n.getFixedT('en') : t, requestId, api);

    const failure = res.locals.failure as FailurePage | undefined;
    try {
      if (failure?.rerender && (failure.rerenderKinds ?? ['validation']).includes(appError.kind)) {
        res.status(appError.status);
        return await failure.rerender(appError);
      }
      if (failure?.back && appError.kind === 'conflict') {
        flash(req, 'error', t(appError.messageKey, appError.vars));
        return res.redirect(303, failure.back);
      }
    } catch (pageErr) {
      logger.error({ err: pageErr, requestId }, 'failure page failed');
      if (res.headersSent) return res.end();
    }
    res.status(appError.status);
    const view = {
      t,
      lang,
      paths: res.locals.paths ?? makePaths(null),
      branding: req.branding ?? BUILT_IN_BRANDING,
      currentUser: req.user ?? null,
      currentPath: req.originalUrl,
      csrfToken: res.locals.csrfToken ?? (() => ''),
      flashMessages: () => [],
      status: appError.status,
      message: t(appError.messageKey, appError.vars),
      title: t(`errors.title${appError.status}`, { defaultValue: t('errors.titleGeneric') }),
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
