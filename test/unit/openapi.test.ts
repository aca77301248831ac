import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../helpers/process.ts';
import { buildTestApp, type TestApp } from '../helpers/app.ts';
import { fullPath, routeTable } from '../../app/routes.ts';

const SwaggerParser = createRequire(import.meta.url)('@apidevtools/swagger-parser') as {
  validate(api: unknown): Promise<unknown>;
};

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

describe('docs/openapi.json', () => {
  let t: TestApp;
  before(async () => {
    t = await buildTestApp();
  });
  after(() => t.close());

  it('is a valid OpenAPI document describing exactly the routes of the route table under /api', async () => {
    const doc = JSON.parse(fs.readFileSync(path.join(projectRoot, 'docs', 'openapi.json'), 'utf8'));
    await SwaggerParser.validate(structuredClone(doc));
    // `:id` in the route table is `{id}` in OpenAPI.
    const routed = routeTable(t.app.locals.ctx)
      .filter((r) => fullPath(r).startsWith('/api/'))
      .map((r) => `${r.method.toUpperCase()} ${fullPath(r).replace(/:(\w+)/g, '{$1}')}`)
      .sort();
    const described = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
      .flatMap(([p, ops]) => METHODS.filter((m) => ops[m]).map((m) => `${m.toUpperCase()} ${p}`))
      .sort();
    assert.ok(routed.length >= 5, 'the route table has API routes');
    assert.deepEqual(described, routed);
  });

  it('gives every operation an id, a tag and a summary, and every error answer the one error shape', () => {
    const doc = JSON.parse(fs.readFileSync(path.join(projectRoot, 'docs', 'openapi.json'), 'utf8'));
    const ids = new Set<string>();
    for (const [p, ops] of Object.entries(doc.paths as Record<string, Record<string, Record<string, unknown>>>))
      for (const m of METHODS) {
        const op = ops[m];
        if (!op) continue;
        const where = `${m.toUpperCase()} ${p}`;
        assert.ok(typeof op.operationId === 'string' && !ids.has(op.operationId), `${where}: unique operationId`);
        ids.add(op.operationId as string);
        assert.ok(Array.isArray(op.tags) && (op.tags as string[]).length === 1, `${where}: one tag`);
        assert.ok(typeof op.summary === 'string' && op.summary.length > 0, `${where}: summary`);
        for (const [status, answer] of Object.entries(op.responses as Record<string, Record<string, any>>)) {
          if (Number(status) < 400) continue;
          const ref = answer.$ref ?? answer.content?.['application/json']?.schema?.$ref;
          assert.ok(
            ref === '#/components/schemas/Error' || ref?.startsWith('#/components/responses/'),
            `${where} ${status}: the one error shape`,
          );
        }
      }
  });
});
