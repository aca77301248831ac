import assert from 'node:assert/strict';
import request from 'supertest';
import { buildTestApp, countRows, loginAgent, createAccount } from '../helpers/app.ts';
import {
  api,
  clientToken,
  manageApiWorld,
  manageRoutes,
  routesInMatrices,
  type ManageApiWorld,
} from '../helpers/manage-api.ts';
import { MANAGE_API_RATE, rateKeyOf } from '../../app/api/manage/limits.ts';
import { hashApiToken } from '../../app/crypto/api-tokens.ts';
import * as idempotencyKeys from '../../app/models/idempotency-keys.ts';

/** The Management API's framework: authentication, JSON errors, rate limits, idempotency, pagination. */
describe('Management API: framework', () => {
  let world: ManageApiWorld;
  before(async () => {
    world = await manageApiWorld(await buildTestApp());
  });
  after(() => world.t.close());

  const tokenId = async (token: string) =>
    Number(
      (
        await world.t
          .db('api_tokens')
          .where({ token_hash: hashApiToken(token) })
          .first()
      ).id,
    );

  describe('authentication', () => {
    it('takes no session cookie as a credential: a signed-in admin without a token gets 401', async () => {
      const { t } = world;
      const admin = await createAccount(t.db, { role: 'admin' });
      const agent = await loginAgent(t.app, admin.email, admin.password);
      const res = await agent.get('/api/manage/v1/customers').expect(401);
      assert.equal(res.body.error.code, 'token_missing');
      assert.equal(res.headers['www-authenticate'], 'Bearer realm="portico"');
    });

    it('answers an unknown, a mistyped and a non-bearer credential alike: 401 token_invalid', async () => {
      const { t, tokens } = world;
      const typo = `${tokens.vendor.slice(0, -1)}${tokens.vendor.endsWith('a') ? 'b' : 'a'}`;
      for (const header of [`Bearer ${typo}`, `Basic ${tokens.vendor}`, 'Bearer', `Bearer ${tokens.vendor}x`]) {
        const res = await request(t.app).get('/api/manage/v1/customers').set('Authorization', header).expect(401);
        assert.equal(res.body.error.code, 'token_invalid', header);
        assert.match(String(res.headers['www-authenticate']), /error="invalid_token"/);
      }
    });

    it('stops a personal token while its manager is disabled or lacks manage_api_clients', async () => {
      const { t, w } = world;
      const manager = await createAccount(t.db, { role: 'manager', name: 'Temp' });
      await t.db('manager_orders').insert({
        account_id: manager.id,
        order_id: w.orderA,
        role_id: (await t.db('roles').where({ builtin: 'manager' }).first()).id,
        created_at: new Date(),
      });
      await t.db('manager_permissions').insert({ account_id: manager.id, permission: 'manage_api_clients' });
      const token = await world.tokens.personal(manager.id);
      await api(t, 'get', `/customers/${w.customer}`, token).expect(200);
      await t.db('accounts').where({ id: manager.id }).update({ disabled: true });
      assert.equal((await api(t, 'get', '/customers', token).expect(401)).body.error.code, 'token_revoked');
      await t.db('accounts').where({ id: manager.id }).update({ disabled: false });
      await api(t, 'get', '/customers', token).expect(200);
      await t.db('manager_permissions').where({ account_id: manager.id }).delete();
      assert.equal((await api(t, 'get', '/customers', token).expect(401)).body.error.code, 'token_revoked');
    });

    it('notes the last use at most once a minute', async () => {
      const { t } = world;
      const token = await clientToken(t);
      const id = await tokenId(token);
      await api(t, 'get', '/customers', token).expect(200);
      const first = (await t.db('api_tokens').where({ id }).first()).last_used_at;
      assert.ok(first, 'last use noted');
      t.clock.advance(30_000);
      await api(t, 'get', '/customers', token).expect(200);
      assert.equal(String((await t.db('api_tokens').where({ id }).first()).last_used_at), String(first));
      t.clock.advance(31_000);
      await api(t, 'get', '/customers', token).expect(200);
      assert.notEqual(String((await t.db('api_tokens').where({ id }).first()).last_used_at), String(first));
    });

    it('names the token of every request, reads included, in the request log — never the token itself', async () => {
      const { t, tokens } = world;
      const res = await api(t, 'get', '/customers', tokens.vendor).expect(200);
      assert.ok(!JSON.stringify(t.logs).includes(tokens.vendor));
      const line = t.logs.find((l) => (l.req as { id?: string } | undefined)?.id === res.get('x-request-id'));
      const id = (
        await t
          .db('api_tokens')
          .where({ display_prefix: tokens.vendor.slice(0, 15) })
          .first()
      )?.id;
      assert.equal(line?.apiToken, `#${id} ${tokens.vendor.slice(0, 15)}…`);
    });
  });

  describe('JSON errors and bodies', () => {
    it('answers an unknown path with a JSON 404', async () => {
      const res = await api(world.t, 'get', '/nothing-here', world.tokens.vendor).expect(404);
      assert.equal(res.body.error.code, 'not_found');
      assert.ok(res.body.error.requestId);
    });

    it('refuses a body that is not JSON (415) and one over 100 kB (413)', async () => {
      const { t, tokens } = world;
      const form = await request(t.app)
        .post('/api/manage/v1/customers')
        .set('Authorization', `Bearer ${tokens.vendor}`)
        .type('form')
        .send({ kind: 'company', name: 'Form' })
        .expect(415);
      assert.equal(form.body.error.code, 'unsupported_media_type');
      const big = await api(t, 'post', '/customers', tokens.vendor, { kind: 'company', name: 'x'.repeat(200_000) });
      assert.equal(big.status, 413);
      assert.equal(big.body.error.code, 'too_large');
    });
  });

  describe('rate limits', () => {
    it('says where the token stands, then refuses with 429 and Retry-After before any work', async () => {
      const { t } = world;
      const token = await clientToken(t);
      const ok = await api(t, 'get', '/customers', token).expect(200);
      assert.equal(ok.headers['ratelimit-limit'], String(MANAGE_API_RATE.limit));
      assert.equal(ok.headers['ratelimit-remaining'], String(MANAGE_API_RATE.limit - 1));
      assert.ok(Number(ok.headers['ratelimit-reset']) >= 1);
      await t
        .db('rate_limits')
        .where({ key: rateKeyOf(await tokenId(token)) })
        .update({ hits: MANAGE_API_RATE.limit });
      const before = await countRows(t.db, 'customers');
      const res = await api(t, 'post', '/customers', token, { kind: 'company', name: 'Too many' }).expect(429);
      assert.equal(res.body.error.code, 'rate_limited');
      assert.ok(Number(res.headers['retry-after']) >= 1);
      assert.equal(res.headers['ratelimit-remaining'], '0');
      assert.equal(await countRows(t.db, 'customers'), before);
      // Another token has its own budget.
      await api(t, 'get', '/customers', world.tokens.vendor).expect(200);
    });
  });

  describe('Idempotency-Key', () => {
    it('replays the stored answer to the same key and body; refuses the key for another body', async () => {
      const { t, tokens } = world;
      const key = { 'Idempotency-Key': 'order-4711-attempt' };
      const first = await api(t, 'post', '/customers', tokens.vendor, { kind: 'company', name: 'Once' }, key).expect(
        201,
      );
      assert.equal(first.headers['idempotent-replayed'], undefined);
      const again = await api(t, 'post', '/customers', tokens.vendor, { name: 'Once', kind: 'company' }, key).expect(
        201,
      );
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.deepEqual(again.body, first.body);
      assert.equal(await countRows(t.db, 'customers', { name: 'Once' }), 1);
      const other = await api(t, 'post', '/customers', tokens.vendor, { kind: 'company', name: 'Twice' }, key).expect(
        422,
      );
      assert.equal(other.body.error.code, 'idempotency_key_reused');
      // Keys are per token: another token's same key is another request.
      const narrow = await clientToken(t);
      await api(t, 'post', '/customers', narrow, { kind: 'company', name: 'Once' }, key).expect(201);
      assert.equal(await countRows(t.db, 'customers', { name: 'Once' }), 2);
    });

    it('lets a failed request be retried with its key (nothing was stored)', async () => {
      const { t, tokens } = world;
      const key = { 'Idempotency-Key': 'retry-after-422' };
      await api(t, 'post', '/customers', tokens.vendor, { kind: 'company' }, key).expect(422);
      assert.equal(await countRows(t.db, 'api_idempotency_keys', { idempotency_key: 'retry-after-422' }), 0);
    });

    it('keeps a key for 24 hours: then it runs again, and housekeeping removes old records', async () => {
      const { t, tokens } = world;
      const key = { 'Idempotency-Key': 'daily-1' };
      await api(t, 'post', '/customers', tokens.vendor, { kind: 'company', name: 'Daily' }, key).expect(201);
      t.clock.advance(24 * 60 * 60_000 + 1000);
      const again = await api(t, 'post', '/customers', tokens.vendor, { kind: 'company', name: 'Daily' }, key);
      assert.equal(again.status, 201);
      assert.equal(again.headers['idempotent-replayed'], undefined);
      assert.equal(await countRows(t.db, 'customers', { name: 'Daily' }), 2);
      t.clock.advance(24 * 60 * 60_000 + 1000);
      assert.ok((await idempotencyKeys.purgeExpired(t.db, t.clock.now())) >= 1);
      assert.equal(await countRows(t.db, 'api_idempotency_keys', { idempotency_key: 'daily-1' }), 0);
    });

    it('refuses a malformed key', async () => {
      const { t, tokens } = world;
      const res = await api(
        t,
        'post',
        '/customers',
        tokens.vendor,
        { kind: 'company', name: 'K' },
        {
          'Idempotency-Key': 'x'.repeat(256),
        },
      ).expect(422);
      assert.equal(res.body.error.code, 'idempotency_key_invalid');
    });

    it('creates exactly once when the same key arrives concurrently', async () => {
      const { t, tokens } = world;
      const key = { 'Idempotency-Key': 'concurrent-1' };
      const results = await Promise.all(
        Array.from({ length: 12 }, () =>
          api(t, 'post', '/customers', tokens.vendor, { kind: 'company', name: 'Concurrent' }, key),
        ),
      );
      const statuses = results.map((r) => r.status);
      assert.equal(await countRows(t.db, 'customers', { name: 'Concurrent' }), 1, String(statuses));
      const created = results.filter((r) => r.status === 201);
      assert.equal(created.filter((r) => r.headers['idempotent-replayed'] !== 'true').length, 1, String(statuses));
      for (const r of results)
        if (r.status !== 201) assert.equal(r.body.error.code, 'idempotency_in_progress', String(statuses));
      for (const r of created) assert.equal(r.body.id, created[0]!.body.id);
    });
  });

  describe('cursor pagination', () => {
    it('walks a list in pages with an opaque cursor, every row once', async () => {
      const { t, tokens } = world;
      const seen: number[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const url: string = `/customers?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const res = await api(t, 'get', url, tokens.vendor).expect(200);
        assert.ok(res.body.data.length <= 2);
        seen.push(...res.body.data.map((c: { id: number }) => c.id));
        cursor = res.body.next_cursor;
        pages++;
      } while (cursor && pages < 100);
      const all = (await t.db('customers').orderBy('id').select('id')).map((r: { id: number }) => Number(r.id));
      assert.deepEqual(seen, all);
      assert.ok(pages > 1);
    });

    it('refuses a limit over 100 and a forged cursor (422)', async () => {
      const { t, tokens } = world;
      const big = await api(t, 'get', '/customers?limit=101', tokens.vendor).expect(422);
      assert.ok(big.body.error.fields.limit);
      const forged = await api(t, 'get', '/customers?cursor=bm9wZQ', tokens.vendor).expect(422);
      assert.ok(forged.body.error.fields.cursor);
    });
  });

  it('every Management API route is driven through an access matrix', () => {
    const covered = routesInMatrices();
    const missing = manageRoutes(world.t).filter((r) => !covered.has(r));
    assert.deepEqual(missing, []);
  });
});
