#!/usr/bin/env node
/**
 * `npm run build`: compiles the server (server.ts, app/, config/, db/ and sdk/src, which the server
 * imports) to dist/ with tsc (tsconfig.build.json: `.ts` imports are rewritten to `.js`), then copies
 * what the compiled code reads at run time next to it — views/, public/ and config/locales/ — so
 * that dist/ mirrors the source tree (app/app.ts finds `<dir of app.js>/../views`, app/lib/i18n.ts
 * `../../config/locales`). Only node_modules/ is shared with the source tree.
 *
 * `npm install` / `npm ci` run it through the `prepare` script (`--prepare`). An install without dev
 * dependencies (`npm ci --omit=dev`) cannot compile: then an existing dist/ (built before, e.g. by
 * CI, or by an install with them) is kept, and without one the install stops with what to do.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const ASSETS = ['views', 'public', 'config/locales'];
const prepare = process.argv.includes('--prepare');

// Installed without the dev dependencies? TypeScript itself may still be there (a peer of i18next),
// and so may @types/node (a dependency of dependencies); the compile needs all of them.
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const needed = Object.keys(pkg.devDependencies ?? {}).filter(
  (name) => name === 'typescript' || name.startsWith('@types/'),
);
const missing = needed.filter((name) => !fs.existsSync(path.join(root, 'node_modules', name, 'package.json')));
if (missing.length) {
  if (prepare && fs.existsSync(path.join(dist, 'server.js'))) {
    console.log(
      `portico build: no dev dependencies (${missing[0]}${missing.length > 1 ? ', …' : ''} missing); keeping the existing dist/.`,
    );
    process.exit(0);
  }
  console.error(
    `portico build: the dev dependencies are not installed (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''}) and there is no dist/ to keep.\n` +
      'Build with them (`npm ci` builds dist/), then `npm prune --omit=dev` if the installation must not keep them.',
  );
  process.exit(1);
}

// Built next to dist/ and swapped in at the end: a failed build leaves the previous dist/ as it was.
const next = path.join(root, '.dist-next');
fs.rmSync(next, { recursive: true, force: true });
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json'), '--outDir', next], {
  cwd: root,
  stdio: 'inherit',
});
if (compiled.status !== 0) {
  fs.rmSync(next, { recursive: true, force: true });
  console.error(
    `portico build: tsc reported errors (exit ${compiled.status ?? compiled.signal}); dist/ is unchanged. \`npm run typecheck\` lists them all.`,
  );
  process.exit(1);
}
for (const dir of ASSETS) fs.cpSync(path.join(root, dir), path.join(next, dir), { recursive: true });
fs.rmSync(dist, { recursive: true, force: true });
fs.renameSync(next, dist);
console.log(`portico build: dist/ ready (${ASSETS.join(', ')} copied).`);
