/**
 * THE error vocabulary. Services throw an AppError of one kind, with a stable code, an HTTP status
 * and a translated message key; the two mappers in middleware/errors.ts turn it into a response (an
 * HTML page, a re-rendered form or a flash for people; `{ error: { code, message } }` for the API).
 * Nothing else catches errors to build a response.
 */

export type ErrorKind =
  | 'validation'
  | 'bad_request'
  | 'unauthorized'
  | 'not_found'
  | 'forbidden'
  | 'conflict'
  | 'refusal'
  | 'rate_limited'
  | 'gone'
  | 'too_large'
  | 'busy'
  | 'server';

export interface AppErrorOptions {
  /** Field → message key, for a form to show next to its fields. */
  fieldErrors?: Record<string, string>;
  headers?: Record<string, string>;
  /** Values for the message (`t(messageKey, vars)`). */
  vars?: Record<string, unknown>;
}

const KIND_BY_STATUS: Record<number, ErrorKind> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  410: 'gone',
  413: 'too_large',
  422: 'validation',
  429: 'rate_limited',
  503: 'busy',
};

export class AppError extends Error {
  readonly fieldErrors: Record<string, string>;
  readonly headers: Record<string, string>;
  readonly vars: Record<string, unknown>;

  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    readonly status: number,
    readonly messageKey: string,
    options: AppErrorOptions = {},
  ) {
    super(code);
    this.name = 'AppError';
    this.fieldErrors = options.fieldErrors ?? {};
    this.headers = options.headers ?? {};
    this.vars = options.vars ?? {};
  }

  static validation(fieldErrors: Record<string, string>, vars: Record<string, unknown> = {}): AppError {
    return new AppError('validation', 'validation', 422, 'validation.summary', { fieldErrors, vars });
  }

  static notFound(): AppError {
    return new AppError('not_found', 'not_found', 404, 'errors.notFound');
  }

  static forbidden(): AppError {
    return new AppError('forbidden', 'forbidden', 403, 'errors.forbidden');
  }

  /** The change is not allowed in this state: the form's page says why. */
  static conflict(messageKey: string, vars: Record<string, unknown> = {}): AppError {
    return new AppError('conflict', 'conflict', 409, messageKey, { vars });
  }

  static rateLimited(retryAfterSeconds: number): AppError {
    return new AppError('rate_limited', 'rate_limited', 429, 'errors.tooManyRequests', {
      headers: { 'Retry-After': String(retryAfterSeconds) },
    });
  }

  /** Any status with a message key (the kind follows from the status). */
  static http(status: number, messageKey: string, headers: Record<string, string> = {}): AppError {
    return new AppError(
      KIND_BY_STATUS[status] ?? (status >= 500 ? 'server' : 'bad_request'),
      messageKey.replace(/^errors\./, '').replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`),
      status,
      messageKey,
      { headers },
    );
  }
}

/** An error that maps to an HTTP status and a translated message key (an AppError whose kind follows from the status). */
export class HttpError extends AppError {
  constructor(status: number, messageKey: string, headers: Record<string, string> = {}) {
    const e = AppError.http(status, messageKey, headers);
    super(e.kind, e.code, status, messageKey, { headers });
  }
}

/** A field-level validation failure: the form is shown again with its values and these messages (422). */
export class ValidationError extends AppError {
  constructor(fieldErrors: Record<string, string>) {
    super('validation', 'validation', 422, 'validation.summary', { fieldErrors });
  }
}

export const notFound = () => AppError.notFound();
export const forbidden = () => AppError.forbidden();
