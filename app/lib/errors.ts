/** An error that maps to an HTTP status and a translated message key shown to the user. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly messageKey: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(messageKey);
  }
}

export const notFound = () => new HttpError(404, 'errors.notFound');
export const forbidden = () => new HttpError(403, 'errors.forbidden');

/** A field-level validation failure: the controller re-renders the form with 422. */
export class ValidationError extends Error {
  constructor(readonly fieldErrors: Record<string, string>) {
    super('validation failed');
  }
}
