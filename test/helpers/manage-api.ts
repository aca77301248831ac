import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import type { TestApp } from './app.ts';
import { portalWorld } from './portal.ts';
import { createApiClient, createPersonalToken } from '../../app/services/api-tokens.ts';
import { revokeToken } from '../../app/services/api-tokens.ts';
import * as accounts from '../../app/models/accounts.ts';
import { API_SCOPES, PERSONAL_SCOPES, type ApiScope } from '../../app/policies/api-scopes.ts';
import { systemActor } from '../../app/services/context.ts';
import { MANAGE_API_PREFIX, fullPath, routeTable } from '../../app/routes.ts';
import { projectRoot } from './process.ts';

/**
 * The Management API's test harness (docs/api.md): real tokens made through the token service, a
 * request helper, and the access matrix every endpoint is driven through — no token, a revoked and an
 * expired token, a vendor token with and without the endpoint's scope, a manager's token inside its
 * orders (managerAll, Manager on order A) and outside them (managerB, Manager on order B only).
 */

export type World = Awaited<ReturnType<typeof portalWorld>>;
export type Method = 'get' | 'post' | 'patch' | 'delete';

export interface Tokens {
  /** A vendor API client with every scope. */
  vendor: string;
  /** A vendor API client with every scope but `scope`. */
  vendorWithout(scope: ApiScope): Promise<string>;
  revoked: string;
  expired: string;
  /** managerAll's personal token (every personal scope): Manager on order A. */
  managerInside: string;
  /** managerB's personal token (every personal scope): Manager on order B, nothing on order A. */
  managerOutside: string;
  /** A personal token of `accountId` with these scopes (every personal one by default). */
  personal(accountId: number, scopes?: readonly ApiScope[]): Promise<string>;
}

export interface ManageApiWorld {
  t: TestApp;
  w: World;
  tokens: Tokens;
}

/** A vendor API client's token, made as the console makes it. */
export async function clientToken(t: TestApp, scopes: readonly ApiScope[] = API_SCOPES, name = 'Shop') {
  return (await createApiClient(t, systemActor('test'), { name, scopes: [...scopes], days: 30 })).token;
}

/** A manager's personal token, made as the portal makes it. */
export async function personalToken(t: TestApp, accountId: number, scopes: readonly ApiScope[] = PERSONAL_SCOPES) {
  const manager = (await accounts.findById(t.db, accountId))!;
  return (await createPersonalToken(t, systemActor('test'), manager, { name: 'CI', scopes: [...scopes], days: 30 }))
    .token;
}

/** The portal world (test/helpers/portal.ts) plus the tokens of the matrix. */
export async function manageApiWorld(t: TestApp): Promise<ManageApiWorld> {
  const w = await portalWorld(t.db);
  const revokedToken = await createApiClient(t, systemActor('test'), {
    name: 'Old',
    scopes: [...API_SCOPES],
    days: 30,
  });
  await revokeToken(t, systemActor('test'), revokedToken.id, { kind: 'client' });
  const expiredToken = await createApiClient(t, systemActor('test'), {
    name: 'Late',
    scopes: [...API_SCOPES],
    days: 1,
  });
  await t
    .db('api_tokens')
    .where({ id: expiredToken.id })
    .update({ expires_at: new Date(Date.now() - 60_000) });
  const without = new Map<ApiScope, string>();
  const tokens: Tokens = {
    vendor: await clientToken(t),
    async vendorWithout(scope) {
      if (!without.has(scope))
        without.set(
          scope,
          await clientToken(
            t,
            API_SCOPES.filter((s) => s !== scope),
            'Narrow',
          ),
        );
      return without.get(scope)!;
    },
    revoked: revokedToken.token,
    expired: expiredToken.token,
    managerInside: await personalToken(t, w.managerAll.id),
    managerOutside: await personalToken(t, w.managerB.id),
    personal: (accountId, scopes) => personalToken(t, accountId, scopes),
  };
  return { t, w, tokens };
}

/** One Management API request: `path` relative to /api/manage/v1, JSON body, bearer token when given. */
export function api(
  t: TestApp,
  method: Method,
  urlPath: string,
  token?: string | null,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const r = request(t.app)
    [method](MANAGE_API_PREFIX + urlPath)
    .set(headers);
  if (token) r.set('Authorization', `Bearer ${token}`);
  return body === undefined ? r : r.send(body as object);
}

export type Who = 'vendor' | 'managerInside' | 'managerOutside';

/**
 * One endpoint of the matrix. `route` is its route-table line (`'GET /customers/:id'`: the coverage
 * test finds every route in some matrix by it); `path` and `body` address objects of order A.
 */
export interface EndpointCase {
  route: string;
  scope: ApiScope;
  path: (w: World) => string;
  body?: (w: World, who: Who) => unknown;
  /** The vendor token's answer with the scope (default: any 2xx). */
  vendor?: number;
  /** managerAll's answer (Manager on order A; default: any 2xx). */
  managerInside?: number;
  /** managerB's answer (default 404: order A is outside its scope). */
  managerOutside?: number;
}

const is2xx = (status: number) => status >= 200 && status < 300;

function expectStatus(res: request.Response, expected: number | undefined, who: string) {
  const ok = expected === undefined ? is2xx(res.status) : res.status === expected;
  assert.ok(ok, `${who}: expected ${expected ?? '2xx'}, got ${res.status} ${res.text.slice(0, 300)}`);
  assert.match(String(res.headers['content-type']), /application\/json/, `${who}: a JSON answer`);
}

/**
 * Drives every case through the matrix; `world` is the suite's world (made in its before hook). The
 * refusals come first, then the manager outside, the manager inside and the vendor (the successes).
 */
export function accessMatrix(world: () => ManageApiWorld, cases: EndpointCase[]): void {
  for (const c of cases) {
    it(`${c.route}: every kind of caller gets its answer`, async () => {
      const { t, w, tokens } = world();
      const [method, ...rest] = c.route.split(' ') as [string, ...string[]];
      const m = method.toLowerCase() as Method;
      assert.ok(rest.length, 'route is "METHOD /path"');
      const send = (token: string | null, who: Who) => api(t, m, c.path(w), token, c.body?.(w, who));

      for (const [token, code, label] of [
        [null, 'token_missing', 'no token'],
        [tokens.revoked, 'token_revoked', 'revoked token'],
        [tokens.expired, 'token_expired', 'expired token'],
        ['portico_ak_thisIsNotAValidTokenAtAll0000000', 'token_invalid', 'malformed token'],
      ] as const) {
        const res = await send(token, 'vendor');
        assert.equal(res.status, 401, `${label}: ${res.text}`);
        assert.equal(res.body.error.code, code, label);
        assert.match(String(res.headers['www-authenticate']), /^Bearer/, label);
      }
      const narrow = await send(await tokens.vendorWithout(c.scope), 'vendor');
      assert.equal(narrow.status, 403, `vendor without ${c.scope}: ${narrow.text}`);
      assert.equal(narrow.body.error.code, 'insufficient_scope');

      expectStatus(await send(tokens.managerOutside, 'managerOutside'), c.managerOutside ?? 404, 'manager outside');
      expectStatus(await send(tokens.managerInside, 'managerInside'), c.managerInside, 'manager inside');
      expectStatus(await send(tokens.vendor, 'vendor'), c.vendor, 'vendor');
    });
  }
}

/** `METHOD /path` of every Management API route in the route table (the coverage test's list). */
export function manageRoutes(t: TestApp): string[] {
  return routeTable(t.app.locals.ctx)
    .filter((r) => r.area === 'manage')
    .map((r) => `${r.method.toUpperCase()} ${fullPath(r).slice(MANAGE_API_PREFIX.length)}`);
}

/** The `route: '…'` lines of every matrix file (test/requests/manage-api-*.test.ts). */
export function routesInMatrices(): Set<string> {
  const dir = path.join(projectRoot, 'test', 'requests');
  const found = new Set<string>();
  for (const f of fs.readdirSync(dir).filter((n) => /^manage-api-.*\.test\.ts$/.test(n)))
    for (const m of fs.readFileSync(path.join(dir, f), 'utf8').matchAll(/route: '([A-Z]+ \/[^']*)'/g)) found.add(m[1]!);
  return found;
}
