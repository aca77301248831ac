import type { Writable } from 'node:stream';

/**
 * CSV as RFC 4180 writes it (comma, CRLF, quotes doubled), made safe to open in a spreadsheet: a text
 * cell that starts like a formula (=, +, -, @, tab, CR) gets a leading apostrophe, so Excel or
 * LibreOffice show it as text instead of running it. Numbers stay numbers (-5 is not a formula).
 */

const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

/** One cell: null and undefined are empty, dates are ISO 8601 (UTC), other values their text. */
export function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  let text = value instanceof Date ? value.toISOString() : String(value);
  if (FORMULA_START.test(text)) text = `'${text}`;
  return NEEDS_QUOTES.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One record, ending with CRLF. */
export function csvLine(values: readonly unknown[]): string {
  return `${values.map(csvField).join(',')}\r\n`;
}

/** Resolves when `out` can take more data, or when it has been closed (the client went away). */
function writable(out: Writable): Promise<void> {
  return new Promise((resolve) => {
    const go = () => {
      out.off('drain', go);
      out.off('close', go);
      resolve();
    };
    out.on('drain', go);
    out.on('close', go);
  });
}

/**
 * Writes the header and then each batch of rows to `out` as one chunk, waiting whenever the receiver
 * is slower than the database so memory stays at about one batch. Stops early when `out` is closed.
 * Does not end `out`. Returns the number of data rows written.
 */
export async function writeCsv(
  out: Writable,
  header: readonly string[],
  batches: AsyncIterable<readonly (readonly unknown[])[]>,
): Promise<number> {
  const closed = () => out.destroyed || out.writableEnded;
  const send = async (chunk: string) => {
    if (!out.write(chunk) && !closed()) await writable(out);
  };
  let rows = 0;
  await send(csvLine(header));
  for await (const batch of batches) {
    if (closed()) break;
    await send(batch.map(csvLine).join(''));
    rows += batch.length;
  }
  return rows;
}
