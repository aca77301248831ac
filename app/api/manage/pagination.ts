import type { Knex } from 'knex';
import { z } from 'zod';

/**
 * Cursor pagination of the Management API (docs/api.md, "Pagination"): lists run in ascending id
 * order; `next_cursor` is opaque (the last id, encoded) and null on the last page. A cursor stays
 * valid while rows are added or removed, unlike an offset.
 */
export const DEFAULT_LIMIT = 25;
export const MAX_LIMIT = 100;

const encode = (id: number) => Buffer.from(`id:${id}`, 'utf8').toString('base64url');

function decode(cursor: string): number | null {
  const m = /^id:(\d{1,10})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  return m ? Number(m[1]) : null;
}

/** The `limit` and `cursor` query parameters; merge into a list's filter schema. */
export const pageParams = {
  limit: z.preprocess(
    (v) => (v === undefined || v === '' ? DEFAULT_LIMIT : typeof v === 'string' ? Number(v) : v),
    z
      .number({ message: 'validation.number' })
      .int({ message: 'validation.number' })
      .min(1, { message: 'api.errors.limit_range' })
      .max(MAX_LIMIT, { message: 'api.errors.limit_range' }),
  ),
  cursor: z
    .string()
    .max(64)
    .optional()
    .refine((c) => c === undefined || decode(c) !== null, { message: 'api.errors.cursor_invalid' }),
};

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

/**
 * One page of `query` (already scoped and filtered) after the cursor; `idColumn` is the column the
 * cursor runs over (qualified when the query joins). `rows` turns raw rows into the resource's JSON.
 */
export async function cursorPage<T>(
  query: Knex.QueryBuilder,
  params: { limit: number; cursor?: string },
  toJson: (rows: Record<string, unknown>[]) => T[] | Promise<T[]>,
  idColumn = 'id',
): Promise<Page<T>> {
  const after = params.cursor ? decode(params.cursor) : null;
  if (after !== null) query.where(idColumn, '>', after);
  const rows = (await query.orderBy(idColumn, 'asc').limit(params.limit + 1)) as Record<string, unknown>[];
  const more = rows.length > params.limit;
  const page = more ? rows.slice(0, params.limit) : rows;
  const last = page.at(-1);
  return { data: await toJson(page), next_cursor: more && last ? encode(Number(last.id)) : null };
}
