import type { Request } from 'express';
import { z } from 'zod';
import { AppError } from '../../lib/errors.ts';
import { parseForm } from '../../forms/parse.ts';

/**
 * The Management API's input: a JSON object body or the query string, parsed with a zod schema (the
 * same schemas as the console's forms where there is one; only the schema's fields survive). A
 * failure is 422 `validation` with a message per field.
 */
export function parsed<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const result = parseForm(schema, value);
  if (!result.ok) throw AppError.validation(result.errors);
  return result.data;
}

/** The request's JSON body as an object (none is `{}`); an array or a scalar is 422. */
export function bodyObject(req: Request): Record<string, unknown> {
  const raw: unknown = req.body;
  if (raw === undefined) return {};
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw AppError.validation({ _body: 'api.errors.body_object' });
  return raw as Record<string, unknown>;
}

export const body = <S extends z.ZodType>(schema: S, req: Request): z.infer<S> => parsed(schema, bodyObject(req));

export const query = <S extends z.ZodType>(schema: S, req: Request): z.infer<S> => parsed(schema, req.query);

/** Like parsed, for a nested object of the body: its field errors are named `prefix.field`. */
export function parsedAt<S extends z.ZodType>(prefix: string, schema: S, value: unknown): z.infer<S> {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw AppError.validation({ [prefix]: 'api.errors.body_object' });
  const result = parseForm(schema, value);
  if (!result.ok)
    throw AppError.validation(Object.fromEntries(Object.entries(result.errors).map(([k, v]) => [`${prefix}.${k}`, v])));
  return result.data;
}

/** An ISO 8601 time (a date alone is midnight UTC). */
export const isoTime = z.preprocess(
  (v) => (v === undefined || v === '' ? undefined : v),
  z
    .string()
    .max(40)
    .regex(/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/, { message: 'validation.date' })
    .transform((s, ctx) => {
      const d = new Date(s.length === 10 ? `${s}T00:00:00.000Z` : s);
      if (Number.isNaN(d.getTime())) {
        ctx.addIssue({ code: 'custom', message: 'validation.date' });
        return z.NEVER;
      }
      return d;
    })
    .optional(),
);
