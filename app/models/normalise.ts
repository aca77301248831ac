import type { Knex } from 'knex';
import { isSqlite } from '../../db/knexfile.ts';

/** MySQL and SQLite return dates, booleans and JSON in different shapes; models turn them into one. */

export function toDate(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value;
  if (typeof value === 'number' || typeof value === 'bigint') return new Date(Number(value));
  const asNumber = Number(value);
  if (typeof value === 'string' && /^\d+$/.test(value) && Number.isFinite(asNumber)) return new Date(asNumber);
  return new Date(String(value));
}

export function toBool(value: unknown): boolean {
  return value === true || value === 1 || value === '1' || value === 'true';
}

export function parseJson<T>(value: unknown): T | null {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value !== 'string') return value as T;
  return JSON.parse(value) as T;
}

/** The number of rows an update or delete touched, as both drivers report it. */
export function affected(result: unknown): number {
  return typeof result === 'number' ? result : Number(result ?? 0);
}

/** True when an insert or update broke a unique key (SQLite or MySQL/MariaDB). */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; errno?: number; message?: string };
  return (
    e?.code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ||
    e?.code === 'ER_DUP_ENTRY' ||
    e?.errno === 1062
  );
}

/**
 * A LIKE condition that matches `text` literally (the user's % and _ are not wildcards). The escape
 * character is "!" because a backslash literal is read differently by MySQL and SQLite.
 */
export function likeSql(column: string, text: string, mode: 'contains' | 'prefix' = 'contains'): [string, string[]] {
  const escaped = text.replace(/[!%_]/g, (c) => `!${c}`);
  return [`${column} LIKE ? ESCAPE '!'`, [mode === 'prefix' ? `${escaped}%` : `%${escaped}%`]];
}

export function countOf(row: unknown): number {
  return Number((row as { n?: unknown } | undefined)?.n ?? 0);
}

/** The first string after every string that starts with `prefix`, in code point (SQLite BINARY) order. */
function successor(prefix: string): string | undefined {
  const chars = Array.from(prefix);
  while (chars.length) {
    const last = chars.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) return chars.join('') + String.fromCodePoint(last === 0xd7ff ? 0xe000 : last + 1);
  }
  return undefined;
}

/**
 * `column` starts with `prefix`, in a form the database can answer from an index. MySQL reads a LIKE
 * with a constant prefix as an index range; SQLite's LIKE ignores case and so cannot use a BINARY
 * index, but a range on the raw text can.
 */
export function whereStartsWith(db: Knex, q: Knex.QueryBuilder, column: string, prefix: string) {
  if (!isSqlite(db)) return q.whereRaw(...likeSql(column, prefix, 'prefix'));
  q.where(column, '>=', prefix);
  const end = successor(prefix);
  return end === undefined ? q : q.where(column, '<', end);
}

/**
 * Runs `run` again, once, when it broke a unique key: two requests with one key through two
 * connections before either committed — the second's run finds the first's row and answers from it
 * (a stored answer, a replay refusal). Any other error, or a second violation, is thrown.
 */
export async function againAfterUniqueViolation<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (isUniqueViolation(err)) return run();
    throw err;
  }
}
