import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../helpers/process.ts';

const SwaggerParser = createRequire(import.meta.url)('@apidevtools/swagger-parser') as {
  validate(api: unknown): Promise<unknown>;
};

describe('docs/openapi.json', () => {
  it('is a valid OpenAPI document describing every License API route', async () => {
    const doc = JSON.parse(fs.readFileSync(path.join(projectRoot, 'docs', 'openapi.json'), 'utf8'));
    await SwaggerParser.validate(structuredClone(doc));
    const routes = fs.readFileSync(path.join(projectRoot, 'app', 'routes.ts'), 'utf8');
    const apiPaths = [...routes.matchAll(/v1\.post\('([^']+)'/g)].map((m) => m[1]).sort();
    assert.deepEqual(Object.keys(doc.paths).sort(), apiPaths);
  });
});
