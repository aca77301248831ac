import path from 'node:path';
import ejs from 'ejs';

/**
 * An Express view engine: renders the page, then wraps it in views/layouts/main.ejs as `body`
 * (unless the page sets `layout: false`). EJS escapes every `<%= %>` output.
 */
export function layoutEngine(viewsDir: string, cache: boolean) {
  const layoutFile = path.join(viewsDir, 'layouts', 'main.ejs');
  return (filePath: string, options: object, callback: (err: Error | null, html?: string) => void) => {
    const opts = options as Record<string, unknown>;
    const ejsOptions = { cache, root: viewsDir, views: [viewsDir] };
    ejs
      .renderFile(filePath, opts, ejsOptions)
      .then((rendered) => {
        const body = labelTableCells(rendered);
        if (opts.layout === false) return callback(null, body);
        return ejs.renderFile(layoutFile, { ...opts, body }, ejsOptions).then((html) => callback(null, html));
      })
      .catch((err: Error) => callback(err));
  };
}

const TABLE = /<table\b[^>]*>[\s\S]*?<\/table>/g;
const HEAD = /<thead\b[^>]*>([\s\S]*?)<\/thead>/;
const HEAD_CELL = /<th\b[^>]*>([\s\S]*?)<\/th>/g;
const ROW = /<tr\b[^>]*>[\s\S]*?<\/tr>/g;
const CELL = /<t[dh]\b([^>]*)>/g;

/**
 * Gives every body cell of every table a `data-label` with its column's header text, so that on a
 * phone the stylesheet can show each row as a card of labelled values (public/css/app.css) while the
 * markup stays a real table. Done once here for every page, so no template (and no new page) has to
 * repeat its headers. The header text is already escaped by EJS; tags are dropped and quotes escaped.
 * A cell that sets its own data-label keeps it; `colspan` is followed.
 */
export function labelTableCells(html: string): string {
  if (!html.includes('<thead')) return html;
  return html.replace(TABLE, (table) => {
    const head = HEAD.exec(table);
    if (!head) return table;
    const labels: string[] = [];
    for (const m of head[1]!.matchAll(HEAD_CELL)) {
      const text = m[1]!
        .replace(/<[^>]*>/g, '')
        .replace(/\s+/g, ' ')
        .trim()
        .replace(/"/g, '&quot;');
      const span = Number(/\bcolspan="?(\d+)/.exec(m[0])?.[1] ?? 1);
      for (let k = 0; k < span; k++) labels.push(text);
    }
    const bodyStart = head.index + head[0].length;
    const rows = table.slice(bodyStart).replace(ROW, (row) => {
      let column = 0;
      return row.replace(CELL, (cell, attributes: string) => {
        const label = labels[column];
        column += Number(/\bcolspan="?(\d+)/.exec(attributes)?.[1] ?? 1);
        if (label === undefined || /\bdata-label=/.test(attributes)) return cell;
        return `${cell.slice(0, -1)} data-label="${label}">`;
      });
    });
    return table.slice(0, bodyStart) + rows;
  });
}
