import assert from 'node:assert/strict';
import request from 'supertest';
import { buildTestApp, countRows, csrfFrom, loginAgent } from '../helpers/app.ts';
import { accessMatrix, api, manageApiWorld, type ManageApiWorld } from '../helpers/manage-api.ts';
import { MANAGER_LABEL, VENDOR_LABEL, auditedAs as audited, pool } from '../helpers/manage-api-licenses.ts';
import { makeDevice } from '../helpers/device.ts';
import { generateVouchers } from '../../app/services/vouchers.ts';
import * as accounts from '../../app/models/accounts.ts';
import { createEndpoint, webhookDepsOf } from '../../app/services/webhooks.ts';
import { systemActor } from '../../app/services/context.ts';
import { FRESH_CODES_MINUTES } from '../../app/controllers/fresh-codes.ts';

const CODE = /^[0-9A-Z]{5}(?:-[0-9A-Z]{5}){3}$/;
const ANY_CODE = /[0-9A-Z]{5}(?:-[0-9A-Z]{5}){3}/;

/**
 * Redeemable codes in the Management API (docs/api.md, "Redeemable codes"): the portal's voucher
 * services behind scopes, the order scope and the portal's `issue_license`; the plain codes told once
 * (and to an Idempotency-Key replay for a while, sealed in between). Real HTTP, real database.
 */
describe('Management API: redeemable codes', function () {
  this.timeout(60_000);
  let world: ManageApiWorld;
  let batchA: number;
  let voidable: () => number;
  let ip = 0;
  before(async () => {
    world = await manageApiWorld(await buildTestApp({ trustProxy: true }));
    const { t, w } = world;
    await t.db('settings').insert({ key: 'end_user_self_service', value: 'true', updated_at: new Date() });
    // A batch of order A made by the vendor (no quota), its codes for the matrix's void calls.
    const admin = (await accounts.findById(t.db, w.admin.id))!;
    const made = await generateVouchers(t, systemActor('test'), admin, w.orderA, {
      policyId: w.policy,
      count: 20,
      days: 30,
    });
    batchA = made.batchId;
    const ids = await t.db('vouchers').where({ batch_id: batchA }).orderBy('id').pluck('id');
    voidable = pool(ids.map(Number));
  });
  after(() => world.t.close());
  beforeEach(() => world.t.db('manager_quotas').update({ issued: 0 }));

  const issued = async (accountId = world.w.managerAll.id) =>
    Number(
      (await world.t.db('manager_quotas').where({ account_id: accountId, product_id: world.w.product }).first()).issued,
    );
  const generate = (token: string, body: object, headers: Record<string, string> = {}) =>
    api(world.t, 'post', `/orders/${world.w.orderA}/voucher-batches`, token, body, headers);
  const auditedAs = (action: string, objectType: string, objectId: number, label: RegExp) =>
    audited(world.t.db, action, objectType, objectId, label);
  const nextIp = () => `10.88.0.${++ip}`;

  describe('access matrix', () => {
    accessMatrix(
      () => world,
      [
        {
          route: 'GET /orders/:id/voucher-batches',
          scope: 'vouchers:read',
          path: (w) => `/orders/${w.orderA}/voucher-batches`,
        },
        {
          route: 'POST /orders/:id/voucher-batches',
          scope: 'vouchers:write',
          path: (w) => `/orders/${w.orderA}/voucher-batches`,
          body: (w) => ({ policy_id: w.policy, count: 1, expires_in_days: 30 }),
          managerInside: 201,
          vendor: 201,
        },
        { route: 'GET /voucher-batches/:id', scope: 'vouchers:read', path: () => `/voucher-batches/${batchA}` },
        { route: 'POST /vouchers/:id/void', scope: 'vouchers:write', path: () => `/vouchers/${voidable()}/void` },
      ],
    );
  });

  describe('generating', () => {
    it('answers 201 with the batch and its plain codes once; afterwards only hints; nothing readable is stored', async () => {
      const { t, w, tokens } = world;
      const res = await generate(tokens.vendor, { policy_id: w.policy, count: 3, expires_in_days: 30 }).expect(201);
      assert.equal(res.headers['cache-control'], 'no-store');
      assert.equal(res.headers.location, `/api/manage/v1/voucher-batches/${res.body.id}`);
      assert.equal(res.body.order_id, w.orderA);
      assert.equal(res.body.policy_id, w.policy);
      assert.equal(res.body.product_id, w.product);
      assert.equal(res.body.count, 3);
      assert.equal(res.body.quota_counted, false, 'the vendor has no quota');
      assert.equal(res.body.created_by, null, 'an API client is no account');
      assert.deepEqual(res.body.counts, { open: 3, redeemed: 0, voided: 0, expired: 0 });
      const expires = new Date(res.body.expires_at).getTime() - t.clock.now().getTime();
      assert.ok(Math.abs(expires - 30 * 86_400_000) < 5000, 'expires in 30 days');
      const codes: string[] = res.body.vouchers.map((v: { code: string }) => v.code);
      assert.equal(new Set(codes).size, 3);
      for (const v of res.body.vouchers) {
        assert.match(v.code, CODE);
        assert.equal(v.hint, v.code.replace(/-/g, '').slice(-4), 'each code beside its own voucher id and hint');
        assert.equal(v.status, 'open');
      }

      const shown = await api(t, 'get', `/voucher-batches/${res.body.id}`, tokens.vendor).expect(200);
      assert.deepEqual(
        shown.body.vouchers.map((v: { hint: string }) => v.hint),
        res.body.vouchers.map((v: { hint: string }) => v.hint),
      );
      assert.ok(
        shown.body.vouchers.every((v: object) => !('code' in v)),
        'a GET tells hints only',
      );
      assert.doesNotMatch(shown.text, ANY_CODE);
      const list = await api(t, 'get', `/orders/${w.orderA}/voucher-batches`, tokens.vendor).expect(200);
      assert.doesNotMatch(list.text, ANY_CODE);
      const listed = list.body.data.find((b: { id: number }) => b.id === res.body.id);
      assert.deepEqual(listed.counts, { open: 3, redeemed: 0, voided: 0, expired: 0 });

      const dump = JSON.stringify([
        await t.db('vouchers').select(),
        await t.db('voucher_batches').select(),
        await t.db('audit_events').select(),
        await t.db('api_idempotency_keys').select(),
      ]);
      for (const c of codes) {
        assert.ok(!dump.includes(c), 'no plain code in the database');
        assert.ok(!dump.includes(c.replace(/-/g, '')), 'not even without dashes');
      }
      const audit = await auditedAs('vouchers.generated', 'order', w.orderA, VENDOR_LABEL);
      assert.equal(JSON.parse(audit.after_state).batchId, res.body.id);
    });

    it('a manager’s token generates within its quota, from its allowed policies, as in the portal', async () => {
      const { t, w, tokens } = world;
      const res = await generate(tokens.managerInside, { policy_id: w.policy, count: 2, expires_in_days: 7 }).expect(
        201,
      );
      assert.equal(res.body.quota_counted, true);
      assert.equal(res.body.created_by, w.managerAll.id);
      assert.equal(await issued(), 2, 'two units of the quota reserved');
      await auditedAs('vouchers.generated', 'order', w.orderA, MANAGER_LABEL);

      const batches = await countRows(t.db, 'voucher_batches');
      const over = await generate(tokens.managerInside, { policy_id: w.policy, count: 4, expires_in_days: 7 });
      assert.equal(over.status, 422, over.text);
      assert.ok(over.body.error.fields.count, 'the quota (5) is exceeded: named on count');
      await t.db('manager_policies').insert({ account_id: w.managerAll.id, policy_id: w.userPolicy });
      const notAllowed = await generate(tokens.managerInside, { policy_id: w.policy, count: 1, expires_in_days: 7 });
      await t.db('manager_policies').where({ account_id: w.managerAll.id }).delete();
      assert.equal(notAllowed.status, 422, notAllowed.text);
      assert.ok(notAllowed.body.error.fields.policy_id, 'only from the policies the vendor allows');
      assert.equal(await countRows(t.db, 'voucher_batches'), batches, 'nothing generated');
      assert.equal(await issued(), 2);
    });

    it('validates as the portal’s form: count 1–500, an expiry of 1–730 days, given one way', async () => {
      const { t, w, tokens } = world;
      const batches = await countRows(t.db, 'voucher_batches');
      const cases: [object, string][] = [
        [{ policy_id: w.policy, count: 501, expires_in_days: 30 }, 'count'],
        [{ policy_id: w.policy, count: 0, expires_in_days: 30 }, 'count'],
        [{ policy_id: w.policy, count: 1, expires_in_days: 731 }, 'expires_in_days'],
        [{ policy_id: w.policy, count: 1 }, 'expires_at'],
        [{ policy_id: w.policy, count: 1, expires_in_days: 3, expires_at: '2099-01-01' }, 'expires_at'],
        [{ policy_id: w.policy, count: 1, expires_at: 'tomorrow' }, 'expires_at'],
        [
          { policy_id: w.policy, count: 1, expires_at: new Date(t.clock.now().getTime() + 3600_000).toISOString() },
          'expires_at',
        ],
        [
          {
            policy_id: w.policy,
            count: 1,
            expires_at: new Date(t.clock.now().getTime() + 731 * 86_400_000).toISOString(),
          },
          'expires_at',
        ],
        [{ count: 1, expires_in_days: 3 }, 'policy_id'],
      ];
      for (const [body, field] of cases) {
        const res = await generate(tokens.vendor, body);
        assert.equal(res.status, 422, `${JSON.stringify(body)}: ${res.text}`);
        assert.equal(res.body.error.code, 'validation');
        assert.ok(res.body.error.fields[field], `${JSON.stringify(body)}: names ${field} (${res.text})`);
      }
      assert.equal(await countRows(t.db, 'voucher_batches'), batches, 'nothing generated');

      const at = new Date(t.clock.now().getTime() + 10 * 86_400_000);
      const ok = await generate(tokens.vendor, { policy_id: w.policy, count: 1, expires_at: at.toISOString() });
      assert.equal(ok.status, 201, ok.text);
      assert.equal(ok.body.expires_at, at.toISOString(), 'expires exactly when asked');
      assert.equal(ok.body.vouchers[0].expires_at, at.toISOString());
    });
  });

  describe('redeemed, listed and voided', () => {
    it('a code redeemed through the License API and one in the User Portal show as redeemed; the webhook names batch and order', async () => {
      const { t, w, tokens } = world;
      const endpoint = await createEndpoint(webhookDepsOf(t.app.locals.ctx), systemActor('test'), null, {
        url: 'https://93.184.216.34/hook',
        description: null,
        events: ['voucher.redeemed'],
      });
      const made = await generate(tokens.managerInside, { policy_id: w.policy, count: 3, expires_in_days: 30 }).expect(
        201,
      );
      const [first, second] = made.body.vouchers as { id: number; code: string }[];

      const device = makeDevice();
      const redeemed = await request(t.app)
        .post('/api/v1/redeem')
        .set('X-Forwarded-For', nextIp())
        .send({ request: device.activationRequest({ product: 'cad', voucher: first!.code }).text });
      assert.equal(redeemed.status, 200, redeemed.text);

      const agent = await loginAgent(t.app, w.endUser.email, w.endUser.password);
      const page = await agent.get('/redeem').expect(200);
      const portal = await agent
        .post('/redeem')
        .set('X-Forwarded-For', nextIp())
        .type('form')
        .send({ _csrf: csrfFrom(page.text), code: second!.code });
      assert.equal(portal.status, 303, portal.text.slice(0, 500));

      const shown = await api(t, 'get', `/voucher-batches/${made.body.id}`, tokens.managerInside).expect(200);
      assert.deepEqual(shown.body.counts, { open: 1, redeemed: 2, voided: 0, expired: 0 });
      const byId = new Map(shown.body.vouchers.map((v: { id: number }) => [v.id, v]));
      const online = byId.get(first!.id) as Record<string, unknown>;
      assert.equal(online.status, 'redeemed');
      assert.equal(online.channel, 'online');
      assert.equal(online.redeemed_by, null, 'an anonymous device');
      assert.ok(online.redeemed_at);
      const license = await t.db('licenses').where({ id: online.license_id }).first();
      assert.equal(Number(license.order_id), w.orderA);
      assert.equal(redeemed.body.licenseKey, license.license_key);
      const inPortal = byId.get(second!.id) as Record<string, unknown>;
      assert.equal(inPortal.status, 'redeemed');
      assert.equal(inPortal.channel, 'portal');
      assert.equal(inPortal.redeemed_by, w.endUser.id);
      assert.equal(inPortal.redeemed_by_email, w.endUser.email);
      assert.ok(inPortal.license_id);

      const events = await t.db('webhook_events').where({ type: 'voucher.redeemed' }).orderBy('id');
      assert.equal(events.length, 2);
      const data = JSON.parse(events[0].payload).data;
      assert.equal(data.voucher_id, first!.id);
      assert.equal(data.voucher_batch_id, made.body.id);
      assert.equal(data.order_id, w.orderA);
      assert.equal(data.license_id, online.license_id);
      assert.ok(!events[0].payload.includes(first!.code), 'the hint only, never the code');
      assert.equal(await countRows(t.db, 'webhook_deliveries', { endpoint_id: endpoint.id }), 2);

      // A redeemed code cannot be voided.
      const refused = await api(t, 'post', `/vouchers/${first!.id}/void`, tokens.managerInside).expect(409);
      assert.equal(refused.body.error.code, 'vouchers.already_redeemed');
    });

    it('voiding gives the unit back to the quota once — also when two voids race', async () => {
      const { t, w, tokens } = world;
      const made = await generate(tokens.managerInside, { policy_id: w.policy, count: 2, expires_in_days: 30 }).expect(
        201,
      );
      assert.equal(await issued(), 2);
      const [one, two] = made.body.vouchers as { id: number }[];

      const res = await api(t, 'post', `/vouchers/${one!.id}/void`, tokens.managerInside).expect(200);
      assert.equal(res.body.status, 'voided');
      assert.ok(res.body.voided_at);
      assert.equal(res.body.quota_returned, true);
      assert.equal(await issued(), 1, 'its unit is back');
      const again = await api(t, 'post', `/vouchers/${one!.id}/void`, tokens.managerInside).expect(409);
      assert.equal(again.body.error.code, 'vouchers.already_voided');
      assert.equal(await issued(), 1, 'not twice');
      const audit = await auditedAs('voucher.voided', 'voucher', one!.id, MANAGER_LABEL);
      assert.equal(JSON.parse(audit.before_state).hint, res.body.hint);

      const raced = await Promise.all([
        api(t, 'post', `/vouchers/${two!.id}/void`, tokens.managerInside),
        api(t, 'post', `/vouchers/${two!.id}/void`, tokens.vendor),
      ]);
      assert.deepEqual(raced.map((r) => r.status).sort(), [200, 409], raced.map((r) => r.text).join('\n'));
      assert.equal(await issued(), 0, 'the unit came back exactly once');
      assert.equal(await countRows(t.db, 'audit_events', { action: 'voucher.voided', object_id: String(two!.id) }), 1);

      const shown = await api(t, 'get', `/voucher-batches/${made.body.id}`, tokens.vendor).expect(200);
      assert.deepEqual(shown.body.counts, { open: 0, redeemed: 0, voided: 2, expired: 0 });
    });

    it('a vendor’s code returns no quota; an API client’s void is audited under its name', async () => {
      const { t, tokens } = world;
      const id = voidable();
      const res = await api(t, 'post', `/vouchers/${id}/void`, tokens.vendor).expect(200);
      assert.equal(res.body.quota_returned, false);
      await auditedAs('voucher.voided', 'voucher', id, VENDOR_LABEL);
    });

    it('lists an order’s batches by cursor, filtered by product and policy', async () => {
      const { t, w, tokens } = world;
      for (let i = 0; i < 3; i++)
        await generate(tokens.vendor, { policy_id: w.policy, count: 1, expires_in_days: 30 }).expect(201);
      const all = await api(t, 'get', `/orders/${w.orderA}/voucher-batches?limit=100`, tokens.vendor).expect(200);
      const ids = all.body.data.map((b: { id: number }) => b.id);
      assert.ok(ids.length >= 4);
      assert.deepEqual(
        ids,
        [...ids].sort((a: number, b: number) => a - b),
        'ascending ids',
      );
      assert.equal(all.body.next_cursor, null);
      const first = await api(t, 'get', `/orders/${w.orderA}/voucher-batches?limit=2`, tokens.vendor).expect(200);
      assert.equal(first.body.data.length, 2);
      assert.ok(first.body.next_cursor);
      const next = await api(
        t,
        'get',
        `/orders/${w.orderA}/voucher-batches?limit=2&cursor=${first.body.next_cursor}`,
        tokens.vendor,
      ).expect(200);
      assert.deepEqual(
        [...first.body.data, ...next.body.data].map((b: { id: number }) => b.id),
        ids.slice(0, 4),
      );
      const none = await api(
        t,
        'get',
        `/orders/${w.orderA}/voucher-batches?policy_id=${w.userPolicy}`,
        tokens.vendor,
      ).expect(200);
      assert.deepEqual(none.body.data, []);
      const byProduct = await api(
        t,
        'get',
        `/orders/${w.orderA}/voucher-batches?product_id=${w.product}&limit=100`,
        tokens.vendor,
      ).expect(200);
      assert.equal(byProduct.body.data.length, ids.length);
      const bad = await api(t, 'get', `/orders/${w.orderA}/voucher-batches?cursor=nope`, tokens.vendor).expect(422);
      assert.ok(bad.body.error.fields.cursor);
      const other = await api(t, 'get', `/orders/${w.orderB}/voucher-batches`, tokens.vendor).expect(200);
      assert.deepEqual(other.body.data, [], 'only that order’s batches');
    });
  });

  describe('refusals', () => {
    it('a token without vouchers:write reads but neither generates nor voids (403 insufficient_scope)', async () => {
      const { t, w, tokens } = world;
      const readOnly = await tokens.personal(w.managerAll.id, ['vouchers:read', 'licenses:write']);
      await api(t, 'get', `/orders/${w.orderA}/voucher-batches`, readOnly).expect(200);
      const batches = await countRows(t.db, 'voucher_batches');
      const res = await generate(readOnly, { policy_id: w.policy, count: 1, expires_in_days: 30 }).expect(403);
      assert.equal(res.body.error.code, 'insufficient_scope');
      assert.match(String(res.headers['www-authenticate']), /scope="vouchers:write"/);
      const v = await api(t, 'post', `/vouchers/${voidable()}/void`, readOnly).expect(403);
      assert.equal(v.body.error.code, 'insufficient_scope');
      const noRead = await tokens.personal(w.managerAll.id, ['licenses:read']);
      await api(t, 'get', `/voucher-batches/${batchA}`, noRead).expect(403);
      assert.equal(await countRows(t.db, 'voucher_batches'), batches);
    });

    it('a Viewer on the order reads its batches but generates and voids nothing (403 forbidden)', async () => {
      const { t, w, tokens } = world;
      await t.db('manager_permissions').insert({ account_id: w.managerNone.id, permission: 'manage_api_clients' });
      const viewer = await tokens.personal(w.managerNone.id);
      await api(t, 'get', `/orders/${w.orderA}/voucher-batches`, viewer).expect(200);
      await api(t, 'get', `/voucher-batches/${batchA}`, viewer).expect(200);
      const before = await countRows(t.db, 'audit_events');
      const res = await generate(viewer, { policy_id: w.policy, count: 1, expires_in_days: 30 }).expect(403);
      assert.equal(res.body.error.code, 'forbidden');
      const id = voidable();
      const v = await api(t, 'post', `/vouchers/${id}/void`, viewer).expect(403);
      assert.equal(v.body.error.code, 'forbidden');
      assert.equal(await countRows(t.db, 'audit_events'), before, 'nothing changed');
      assert.equal((await t.db('vouchers').where({ id }).first()).voided_at, null);
    });

    it('objects outside the token’s orders, or none at all, are 404 alike', async () => {
      const { t, w, tokens } = world;
      const outside = tokens.managerOutside;
      const id = voidable();
      for (const [method, path] of [
        ['get', `/orders/${w.orderA}/voucher-batches`],
        ['post', `/orders/${w.orderA}/voucher-batches`],
        ['get', `/voucher-batches/${batchA}`],
        ['post', `/vouchers/${id}/void`],
      ] as const) {
        const res = await api(t, method, path, outside, method === 'post' ? {} : undefined);
        assert.equal(res.status, 404, `${method} ${path}: ${res.text}`);
        assert.equal(res.body.error.code, 'not_found');
      }
      for (const path of ['/voucher-batches/999999', '/voucher-batches/x']) {
        const res = await api(t, 'get', path, tokens.vendor).expect(404);
        assert.equal(res.body.error.code, 'not_found');
      }
      await api(t, 'post', '/vouchers/999999/void', tokens.vendor).expect(404);
      assert.equal((await t.db('vouchers').where({ id }).first()).voided_at, null);
    });
  });

  describe('Idempotency-Key', () => {
    it('a retry gets the same codes (sealed in between) for a while, then 409 without them; never a second batch', async () => {
      const { t, w, tokens } = world;
      const key = { 'Idempotency-Key': 'shop-codes-7001' };
      const body = { policy_id: w.policy, count: 2, expires_in_days: 30 };
      const batches = await countRows(t.db, 'voucher_batches');
      const first = await generate(tokens.managerInside, body, key).expect(201);
      const codes = first.body.vouchers.map((v: { code: string }) => v.code);

      const stored = await t.db('api_idempotency_keys').where({ idempotency_key: key['Idempotency-Key'] }).first();
      assert.match(String(stored.body), /^sealed:/);
      for (const c of codes) assert.ok(!String(stored.body).includes(c), 'the stored answer is sealed');

      t.clock.advance((FRESH_CODES_MINUTES - 1) * 60_000);
      const replay = await generate(tokens.managerInside, body, key).expect(201);
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      assert.equal(replay.headers['cache-control'], 'no-store');
      assert.deepEqual(replay.body, first.body, 'the same batch and codes');
      assert.equal(await countRows(t.db, 'voucher_batches'), batches + 1);
      assert.equal(await issued(), 2, 'the quota counted once');

      const reused = await generate(tokens.managerInside, { ...body, count: 3 }, key).expect(422);
      assert.equal(reused.body.error.code, 'idempotency_key_reused');

      t.clock.advance(2 * 60_000);
      const late = await generate(tokens.managerInside, body, key).expect(409);
      assert.equal(late.body.error.code, 'idempotent_replay_without_codes');
      assert.equal(late.headers.location, `/api/manage/v1/voucher-batches/${first.body.id}`);
      assert.match(late.body.error.message, new RegExp(`Batch ${first.body.id}\\b`));
      assert.doesNotMatch(late.text, ANY_CODE);
      assert.equal(await countRows(t.db, 'voucher_batches'), batches + 1, 'never a second batch');
      assert.equal(await issued(), 2);

      // A refused generation keeps nothing: the same key may be sent again, corrected.
      const key2 = { 'Idempotency-Key': 'shop-codes-7002' };
      await generate(tokens.managerInside, { ...body, count: 501 }, key2).expect(422);
      await generate(tokens.managerInside, { ...body, count: 1 }, key2).expect(201);
    });
  });
});
