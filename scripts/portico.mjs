#!/usr/bin/env node
/**
 * `npm run portico -- <command>`: the operator CLI (app/cli/portico.ts). In a development checkout
 * (tsx installed) it runs the TypeScript source, so it never lags behind an edit; in an installation
 * without the dev dependencies (`npm ci --omit=dev`) it runs the compiled build, dist/portico.js.
 * PORTICO_CLI=dist forces the build. `node dist/portico.js <command>` is the same program.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const built = path.join(root, 'dist', 'portico.js');

let tsx = null;
if (process.env.PORTICO_CLI !== 'dist' && fs.existsSync(path.join(root, 'portico.ts'))) {
  try {
    tsx = await import('tsx/esm/api');
  } catch {
    tsx = null; // installed without the dev dependencies
  }
}
if (tsx) {
  tsx.register();
  await import(pathToFileURL(path.join(root, 'portico.ts')).href);
} else if (fs.existsSync(built)) {
  await import(pathToFileURL(built).href);
} else {
  console.error('portico: no dist/portico.js (and no tsx to run the source): run `npm run build` first.');
  process.exitCode = 1;
}
