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
