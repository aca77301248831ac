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
      .then((body) => {
        if (opts.layout === false) return callback(null, body);
        return ejs.renderFile(layoutFile, { ...opts, body }, ejsOptions).then((html) => callback(null, html));
      })
      .catch((err: Error) => callback(err));
  };
}
