import type { z } from 'zod';
import { AppError } from '../lib/errors.ts';

export type FieldErrors = Record<string, string>;

/**
 * Parses a submitted form with its schema. Error messages are i18n keys; the first one per field
 * goes back to the view. Only the schema's fields survive (strong params).
 */
export function parseForm<S extends z.ZodType>(
  schema: S,
  body: unknown,
): { ok: true; data: z.infer<S> } | { ok: false; errors: FieldErrors } {
  const result = schema.safeParse(body ?? {});
  if (result.success) return { ok: true, data: result.data };
  const errors: FieldErrors = {};
  for (const issue of result.error.issues) {
    const field = String(issue.path[0] ?? '_form');
    // Our schemas give i18n keys (area.key); anything else (a library's own text) becomes a generic message.
    errors[field] ??= /^[a-z]\w*(\.\w+)+$/i.test(issue.message) ? issue.message : 'validation.invalid';
  }
  return { ok: false, errors };
}

/** The form's data, or a validation AppError (the HTML mapper shows the form again with its field errors). */
export function formData<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const parsed = parseForm(schema, body);
  if (!parsed.ok) throw AppError.validation(parsed.errors);
  return parsed.data;
}
