import assert from 'node:assert/strict';
import type request from 'supertest';
import { auditOf, buildTestApp, countRows } from '../helpers/app.ts';
import { accessMatrix, api, manageApiWorld, type ManageApiWorld, type Method } from '../helpers/manage-api.ts';
import { verifyEnvelope } from '../../sdk/src/envelope.ts';
import {
  MANAGER_LABEL,
  VENDOR_LABEL,
  auditedAs as audited,
  offlineDevice,
  pool,
} from '../helpers/manage-api-licenses.ts';
import { trustedKeyMap } from '../../app/services/signer.ts';
import { blacklistDevice } from '../../app/services/licenses.ts';
import { systemActor } from '../../app/services/context.ts';

const CALLS_PER_CASE = 8;

describe('Management API: licenses and devices', () => {
  let world: ManageApiWorld;
  let resettable: () => number;
  let blacklistable: () => number;
  let unblacklistable: () => number;
  let refreshable: number;
  before(async () => {
    world = await manageApiWorld(await buildTestApp());
    const { t, w } = world;
    // A refresh file needs a license that allows offline use and has started.
    await t.db('licenses').where({ id: w.licenseA }).update({ allow_offline: true, start_date: null });
    const many = async (n: number) => {
      const ids: number[] = [];
      for (let i = 0; i < n; i++) ids.push(await offlineDevice(t, w.licenseA));
      return ids;
    };
    resettable = pool(await many(CALLS_PER_CASE));
    blacklistable = pool(await many(CALLS_PER_CASE));
    const listed = await many(CALLS_PER_CASE);
    for (const id of listed) await blacklistDevice(t, systemActor('test'), w.licenseA, id);
    unblacklistable = pool(listed);
    refreshable = await offlineDevice(t, w.licenseA);
  });
  after(() => world.t.close());

  describe('access matrix', () => {
    let n = 0;
    accessMatrix(
      () => world,
      [
        {
          route: 'POST /orders/:id/licenses',
          scope: 'licenses:write',
          path: (w) => `/orders/${w.orderA}/licenses`,
          body: (w) => ({ policy_id: w.policy, quantity: 1 }),
          managerInside: 201,
          vendor: 201,
        },
        { route: 'GET /licenses', scope: 'licenses:read', path: () => '/licenses', managerOutside: 200 },
        { route: 'GET /licenses/:id', scope: 'licenses:read', path: (w) => `/licenses/${w.licenseA}` },
        {
          route: 'PATCH /licenses/:id',
          scope: 'licenses:write',
          path: (w) => `/licenses/${w.licenseA}`,
          body: (_w, who) => (who === 'vendor' ? { note: 'by the shop', max_transfers: 3 } : { note: `note ${++n}` }),
        },
        {
          route: 'POST /licenses/:id/disable',
          scope: 'licenses:write',
          path: (w) => `/licenses/${w.licenseA}/disable`,
        },
        { route: 'POST /licenses/:id/enable', scope: 'licenses:write', path: (w) => `/licenses/${w.licenseA}/enable` },
        {
          route: 'POST /licenses/:id/dispatch',
          scope: 'licenses:write',
          path: (w) => `/licenses/${w.licenseA}/dispatch`,
          body: () => ({ email: `buyer${++n}@example.com` }),
        },
        { route: 'GET /licenses/:id/devices', scope: 'licenses:read', path: (w) => `/licenses/${w.licenseA}/devices` },
        {
          route: 'POST /licenses/:id/devices/:deviceId/reset',
          scope: 'licenses:write',
          path: (w) => `/licenses/${w.licenseA}/devices/${resettable()}/reset`,
        },
        {
          route: 'POST /licenses/:id/devices/:deviceId/blacklist',
          scope: 'licenses:write',
          path: (w) => `/licenses/${w.licenseA}/devices/${blacklistable()}/blacklist`,
        },
        {
          route: 'POST /licenses/:id/devices/:deviceId/unblacklist',
          scope: 'licenses:write',
          path: (w) => `/licenses/${w.licenseA}/devices/${unblacklistable()}/unblacklist`,
        },
        {
          route: 'POST /licenses/:id/devices/:deviceId/refresh',
          scope: 'licenses:write',
          path: (w) => `/licenses/${w.licenseA}/devices/${refreshable}/refresh`,
          managerInside: 201,
          vendor: 201,
        },
        // Last: it deactivates every device of license A, the pools' included.
        { route: 'POST /licenses/:id/reset', scope: 'licenses:write', path: (w) => `/licenses/${w.licenseA}/reset` },
      ],
    );
  });

  const auditedAs = (action: string, objectType: string, objectId: number, label: RegExp) =>
    audited(world.t.db, action, objectType, objectId, label);

  describe('a manager without the role permission', () => {
    it('reads its order’s licenses but changes nothing: 403 forbidden on every write', async () => {
      const { t, w, tokens } = world;
      // managerNone is Viewer on order A: no order permission at all.
      await t.db('manager_permissions').insert({ account_id: w.managerNone.id, permission: 'manage_api_clients' });
      const viewer = await tokens.personal(w.managerNone.id);
      await api(t, 'get', `/licenses/${w.licenseA}`, viewer).expect(200);
      await api(t, 'get', `/licenses/${w.licenseA}/devices`, viewer).expect(200);
      const device = await offlineDevice(t, w.licenseA);
      const writes: [Method, string, object?][] = [
        ['post', `/orders/${w.orderA}/licenses`, { policy_id: w.policy, quantity: 1 }],
        ['patch', `/licenses/${w.licenseA}`, { note: 'x' }],
        ['post', `/licenses/${w.licenseA}/disable`],
        ['post', `/licenses/${w.licenseA}/enable`],
        ['post', `/licenses/${w.licenseA}/reset`],
        ['post', `/licenses/${w.licenseA}/dispatch`, { email: 'x@example.com' }],
        ['post', `/licenses/${w.licenseA}/devices/${device}/reset`],
        ['post', `/licenses/${w.licenseA}/devices/${device}/blacklist`],
        ['post', `/licenses/${w.licenseA}/devices/${device}/unblacklist`],
      ];
      const before = await countRows(t.db, 'audit_events');
      for (const [method, path, body] of writes) {
        const res = await api(t, method, path, viewer, body);
        assert.equal(res.status, 403, `${method} ${path}: ${res.text}`);
        assert.equal(res.body.error.code, 'forbidden');
      }
      assert.equal(await countRows(t.db, 'audit_events'), before, 'nothing changed');
      assert.equal((await t.db('devices').where({ id: device }).first()).deactivated_at, null);
      // Like the portal, any manager of the order may fetch a refresh file.
      await api(t, 'post', `/licenses/${w.licenseA}/devices/${device}/refresh`, viewer).expect(201);
    });

    it('a token without licenses:write cannot write even when the manager could', async () => {
      const { t, w, tokens } = world;
      const readOnly = await tokens.personal(w.managerAll.id, ['licenses:read']);
      await api(t, 'get', `/licenses/${w.licenseA}`, readOnly).expect(200);
      const res = await api(t, 'post', `/licenses/${w.licenseA}/disable`, readOnly).expect(403);
      assert.equal(res.body.error.code, 'insufficient_scope');
    });
  });

  describe('licenses', () => {
    it('issues into an order as the token, audited under its name; the licenses are in the database', async () => {
      const { t, w, tokens } = world;
      const before = await countRows(t.db, 'licenses', { order_id: w.orderB });
      const res = await api(t, 'post', `/orders/${w.orderB}/licenses`, tokens.vendor, {
        policy_id: w.policy,
        quantity: 3,
        start_date: '2030-01-01',
      }).expect(201);
      assert.equal(res.body.count, 3);
      assert.equal(res.body.licenses.length, 3);
      assert.ok(
        res.body.licenses.every((l: { license_key: string }) => /^[0-9A-Z]{4}(-[0-9A-Z]{4})+$/.test(l.license_key)),
      );
      assert.equal(await countRows(t.db, 'licenses', { order_id: w.orderB }), before + 3);
      const one = await t.db('licenses').where({ id: res.body.licenses[0].id }).first();
      assert.equal(new Date(one.start_date).toISOString().slice(0, 10), '2030-01-01');
      await auditedAs('licenses.issued', 'order', w.orderB, VENDOR_LABEL);
    });

    it('issues user-based licenses to addresses, as the portal does', async () => {
      const { t, w, tokens } = world;
      const res = await api(t, 'post', `/orders/${w.orderA}/licenses`, tokens.managerInside, {
        policy_id: w.userPolicy,
        emails: ['new.user@example.com'],
      }).expect(201);
      assert.equal(res.body.count, 1);
      const account = await t.db('accounts').where({ email: 'new.user@example.com' }).first();
      assert.equal(account.role, 'end_user');
      assert.equal(
        await countRows(t.db, 'license_user_assignments', {
          license_id: res.body.licenses[0].id,
          account_id: account.id,
        }),
        1,
      );
      await auditedAs('licenses.issued', 'order', w.orderA, MANAGER_LABEL);
    });

    it('holds a manager to its quota and its allowed policies, like the portal; start_date is the vendor’s', async () => {
      const { t, w, tokens } = world;
      const before = await countRows(t.db, 'licenses');
      const quota = await t.db('manager_quotas').where({ account_id: w.managerAll.id, product_id: w.product }).first();
      const left = Number(quota.quota) - Number(quota.issued);
      const over = await api(t, 'post', `/orders/${w.orderA}/licenses`, tokens.managerInside, {
        policy_id: w.policy,
        quantity: left + 1,
      }).expect(422);
      assert.equal(over.body.error.code, 'validation');
      assert.ok(over.body.error.fields.quantity, JSON.stringify(over.body));
      assert.equal(await countRows(t.db, 'licenses'), before);
      await t.db('manager_policies').insert({ account_id: w.managerAll.id, policy_id: w.userPolicy });
      try {
        const policy = await api(t, 'post', `/orders/${w.orderA}/licenses`, tokens.managerInside, {
          policy_id: w.policy,
          quantity: 1,
        }).expect(422);
        assert.ok(policy.body.error.fields.policy_id);
      } finally {
        await t.db('manager_policies').where({ account_id: w.managerAll.id }).delete();
      }
      const dated = await api(t, 'post', `/orders/${w.orderA}/licenses`, tokens.managerInside, {
        policy_id: w.policy,
        quantity: 1,
        start_date: '2030-01-01',
      }).expect(422);
      assert.ok(dated.body.error.fields.start_date);
      assert.equal(await countRows(t.db, 'licenses'), before);
    });

    it('refuses bad input with field errors (422) and unknown orders and policies', async () => {
      const { t, w, tokens } = world;
      const bad = await api(t, 'post', `/orders/${w.orderA}/licenses`, tokens.vendor, {
        policy_id: 'x',
        quantity: 0,
      }).expect(422);
      assert.ok(bad.body.error.fields.policy_id);
      const zero = await api(t, 'post', `/orders/${w.orderA}/licenses`, tokens.vendor, {
        policy_id: w.policy,
        quantity: 0,
      }).expect(422);
      assert.ok(zero.body.error.fields.quantity);
      const none = await api(t, 'post', `/orders/${w.orderA}/licenses`, tokens.vendor, {
        policy_id: 999999,
        quantity: 1,
      }).expect(422);
      assert.ok(none.body.error.fields.policy_id);
      await api(t, 'post', '/orders/999999/licenses', tokens.vendor, { policy_id: w.policy, quantity: 1 }).expect(404);
      const emails = await api(t, 'post', `/orders/${w.orderA}/licenses`, tokens.vendor, {
        policy_id: w.userPolicy,
        emails: ['not an address'],
      }).expect(422);
      assert.ok(emails.body.error.fields.emails);
    });

    it('a shop retrying one issue concurrently with one Idempotency-Key issues once', async () => {
      const { t, w, tokens } = world;
      const before = await countRows(t.db, 'licenses', { order_id: w.orderB });
      const body = { policy_id: w.policy, quantity: 2 };
      const key = { 'Idempotency-Key': 'issue-race-1' };
      const results = await Promise.all(
        Array.from({ length: 10 }, () => api(t, 'post', `/orders/${w.orderB}/licenses`, tokens.vendor, body, key)),
      );
      const statuses = results.map((r) => r.status);
      assert.ok(
        statuses.every((s) => s === 201 || s === 409),
        String(statuses),
      );
      assert.equal(await countRows(t.db, 'licenses', { order_id: w.orderB }), before + 2, String(statuses));
      const replay = await api(t, 'post', `/orders/${w.orderB}/licenses`, tokens.vendor, body, key).expect(201);
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      assert.equal(await countRows(t.db, 'licenses', { order_id: w.orderB }), before + 2);
      const first = results.find((r) => r.status === 201);
      if (first) assert.deepEqual(replay.body, first.body);
    });

    it('lists with filters and cursor pages; a manager sees its orders only', async () => {
      const { t, w, tokens } = world;
      const mine = await api(t, 'get', '/licenses?limit=100', tokens.managerInside).expect(200);
      assert.ok(mine.body.data.length > 0);
      assert.ok(mine.body.data.every((l: { order_id: number }) => l.order_id === w.orderA));
      const byKey = await api(t, 'get', '/licenses?key=aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa', tokens.vendor).expect(200);
      assert.deepEqual(
        byKey.body.data.map((l: { id: number }) => l.id),
        [w.licenseA],
      );
      const prefix = await api(t, 'get', '/licenses?key=BBBB-BB', tokens.vendor).expect(200);
      assert.deepEqual(
        prefix.body.data.map((l: { id: number }) => l.id),
        [w.licenseB],
      );
      // managerAll cannot find order B's license by its key.
      const hidden = await api(t, 'get', '/licenses?key=BBBB-BB', tokens.managerInside).expect(200);
      assert.deepEqual(hidden.body.data, []);
      const byProduct = await api(t, 'get', `/licenses?product_id=${w.userProduct}&limit=100`, tokens.vendor);
      assert.ok(byProduct.body.data.every((l: { product_id: number }) => l.product_id === w.userProduct));
      assert.ok(byProduct.body.data.some((l: { id: number }) => l.id === w.userLicense));
      const byPolicy = await api(t, 'get', `/licenses?policy_id=${w.userPolicy}&limit=100`, tokens.vendor);
      assert.ok(byPolicy.body.data.every((l: { policy_id: number }) => l.policy_id === w.userPolicy));
      const byOrder = await api(t, 'get', `/licenses?order_id=${w.orderB}&limit=100`, tokens.vendor);
      assert.ok(byOrder.body.data.every((l: { order_id: number }) => l.order_id === w.orderB));
      assert.ok(byOrder.body.data.length >= 1);

      await api(t, 'post', `/licenses/${w.licenseB}/disable`, tokens.vendor).expect(200);
      const disabled = await api(t, 'get', '/licenses?status=disabled&limit=100', tokens.vendor).expect(200);
      assert.ok(disabled.body.data.some((l: { id: number }) => l.id === w.licenseB));
      assert.ok(disabled.body.data.every((l: { enabled: boolean }) => !l.enabled));
      const enabled = await api(t, 'get', '/licenses?enabled=true&limit=100', tokens.vendor).expect(200);
      assert.ok(!enabled.body.data.some((l: { id: number }) => l.id === w.licenseB));
      await api(t, 'post', `/licenses/${w.licenseB}/enable`, tokens.vendor).expect(200);
      await t
        .db('licenses')
        .where({ id: w.licenseB })
        .update({ expires_at: new Date(t.clock.now().getTime() - 1000) });
      const expired = await api(t, 'get', '/licenses?status=expired', tokens.vendor).expect(200);
      assert.deepEqual(
        expired.body.data.map((l: { id: number }) => l.id),
        [w.licenseB],
      );
      await t.db('licenses').where({ id: w.licenseB }).update({ expires_at: null });

      const future = await api(t, 'get', '/licenses?updated_since=2099-01-01', tokens.vendor).expect(200);
      assert.deepEqual(future.body.data, []);
      const since = await api(t, 'get', '/licenses?updated_since=2000-01-01T00:00:00Z&limit=100', tokens.vendor);
      assert.ok(since.body.data.length > 2);

      // Cursor pages: every license once, in id order.
      const all: number[] = [];
      let cursor: string | null = '';
      while (cursor !== null) {
        const page: request.Response = await api(
          t,
          'get',
          `/licenses?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
          tokens.vendor,
        ).expect(200);
        assert.ok(page.body.data.length <= 2);
        all.push(...page.body.data.map((l: { id: number }) => l.id));
        cursor = page.body.next_cursor;
      }
      assert.deepEqual(
        all,
        [...all].sort((a, b) => a - b),
      );
      assert.equal(all.length, await countRows(t.db, 'licenses'));

      for (const q of ['status=gone', 'enabled=maybe', 'updated_since=yesterday', 'order_id=x', 'limit=500']) {
        const res = await api(t, 'get', `/licenses?${q}`, tokens.vendor).expect(422);
        assert.equal(res.body.error.code, 'validation', q);
        assert.ok(Object.keys(res.body.error.fields).length, q);
      }
    });

    it('shows a license with its entitlements; outside the scope it does not exist', async () => {
      const { t, w, tokens } = world;
      const res = await api(t, 'get', `/licenses/${w.licenseA}`, tokens.managerInside).expect(200);
      assert.equal(res.body.license_key, 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA');
      assert.equal(res.body.order_id, w.orderA);
      assert.equal(res.body.entitlements.floating, true);
      assert.equal(res.body.entitlements.max_activations, 3);
      await api(t, 'get', `/licenses/${w.licenseB}`, tokens.managerInside).expect(404);
      await api(t, 'get', '/licenses/999999', tokens.vendor).expect(404);
      await api(t, 'get', '/licenses/abc', tokens.vendor).expect(404);
    });

    it('disables and enables, audited as the token', async () => {
      const { t, w, tokens } = world;
      const off = await api(t, 'post', `/licenses/${w.licenseA}/disable`, tokens.managerInside).expect(200);
      assert.equal(off.body.enabled, false);
      assert.equal(off.body.status, 'disabled');
      assert.equal(!!Number((await t.db('licenses').where({ id: w.licenseA }).first()).enabled), false);
      await auditedAs('license.disabled', 'license', w.licenseA, MANAGER_LABEL);
      const on = await api(t, 'post', `/licenses/${w.licenseA}/enable`, tokens.vendor).expect(200);
      assert.equal(on.body.enabled, true);
      await auditedAs('license.enabled', 'license', w.licenseA, VENDOR_LABEL);
    });

    it('edits within the rules: a manager the note only, the vendor as the console does', async () => {
      const { t, w, tokens } = world;
      const note = await api(t, 'patch', `/licenses/${w.licenseA}`, tokens.managerInside, { note: 'Seat for Bob' });
      assert.equal(note.status, 200, note.text);
      assert.equal(note.body.note, 'Seat for Bob');
      assert.equal((await t.db('licenses').where({ id: w.licenseA }).first()).note, 'Seat for Bob');
      await auditedAs('license.note_changed', 'license', w.licenseA, MANAGER_LABEL);

      const more = await api(t, 'patch', `/licenses/${w.licenseA}`, tokens.managerInside, {
        note: 'x',
        max_activations: 100,
      }).expect(422);
      assert.ok(more.body.error.fields.max_activations);
      assert.ok(!more.body.error.fields.note);
      assert.equal((await t.db('licenses').where({ id: w.licenseA }).first()).max_activations, 3);

      const before = await t.db('licenses').where({ id: w.licenseA }).first();
      const edit = await api(t, 'patch', `/licenses/${w.licenseA}`, tokens.vendor, {
        max_activations: 10,
        expires_at: '2031-06-30',
      });
      assert.equal(edit.status, 200, edit.text);
      assert.equal(edit.body.entitlements.max_activations, 10);
      assert.equal(edit.body.expires_at, '2031-06-30T00:00:00.000Z');
      assert.equal(edit.body.note, 'Seat for Bob', 'fields not sent keep their values');
      const after = await t.db('licenses').where({ id: w.licenseA }).first();
      assert.equal(after.max_activations, 10);
      assert.equal(!!Number(after.floating), !!Number(before.floating));
      await auditedAs('license.updated', 'license', w.licenseA, VENDOR_LABEL);

      for (const [bodyOf, field] of [
        [{ floating: 'yes' }, 'floating'],
        [{ max_activations: -1 }, 'max_activations'],
        [{ license_type: 'subscription' }, 'license_type'],
        [{ expires_at: '30.06.2031' }, 'expires_at'],
        [{ can_borrow: true, floating: false }, 'can_borrow'],
        [{ enabled: false }, 'enabled'],
        [{ license_key: 'X' }, 'license_key'],
      ] as const) {
        const res = await api(t, 'patch', `/licenses/${w.licenseA}`, tokens.vendor, bodyOf).expect(422);
        assert.ok(res.body.error.fields[field], `${field}: ${res.text}`);
      }
      assert.equal((await t.db('licenses').where({ id: w.licenseA }).first()).max_activations, 10);
    });

    it('keeps an air-gapped license’s entitlements frozen (409), its note editable', async () => {
      const { t, w, tokens } = world;
      await t.db('licenses').where({ id: w.licenseB }).update({ airgapped: true });
      try {
        const res = await api(t, 'patch', `/licenses/${w.licenseB}`, tokens.vendor, { max_activations: 9 }).expect(409);
        assert.equal(res.body.error.code, 'conflict');
        await api(t, 'patch', `/licenses/${w.licenseB}`, tokens.vendor, { note: 'frozen' }).expect(200);
      } finally {
        await t.db('licenses').where({ id: w.licenseB }).update({ airgapped: false });
      }
    });

    it('dispatches the key to an address and records it', async () => {
      const { t, w, tokens } = world;
      const res = await api(t, 'post', `/licenses/${w.licenseA}/dispatch`, tokens.managerInside, {
        email: 'buyer@globex.example',
      }).expect(200);
      assert.equal(res.body.dispatched_to, 'buyer@globex.example');
      assert.equal(await countRows(t.db, 'mail_outbox', { to_address: 'buyer@globex.example' }), 1);
      await auditedAs('licenses.dispatched', 'order', w.orderA, MANAGER_LABEL);
      const bad = await api(t, 'post', `/licenses/${w.licenseA}/dispatch`, tokens.vendor, { email: 'nope' }).expect(
        422,
      );
      assert.ok(bad.body.error.fields.email);
      await api(t, 'post', `/licenses/${w.userLicense}/dispatch`, tokens.vendor, { email: 'a@example.com' }).expect(
        422,
      );
    });
  });

  describe('devices', () => {
    it('lists a license’s devices with what the token may do to each', async () => {
      const { t, w, tokens } = world;
      const device = await offlineDevice(t, w.licenseA);
      const res = await api(t, 'get', `/licenses/${w.licenseA}/devices?limit=100`, tokens.managerInside).expect(200);
      const row = res.body.data.find((d: { id: number }) => d.id === device);
      assert.ok(row);
      assert.equal(row.active, true);
      assert.equal(row.channel, 'offline');
      assert.deepEqual(row.actions, { reset: true, blacklist: true, unblacklist: false, refresh: true });
      assert.ok(res.body.data.every((d: { license_id: number }) => d.license_id === w.licenseA));
      const page = await api(t, 'get', `/licenses/${w.licenseA}/devices?limit=1`, tokens.vendor).expect(200);
      assert.equal(page.body.data.length, 1);
      assert.ok(page.body.next_cursor);
      // A device of another license is not found under this one.
      await api(t, 'post', `/licenses/${w.licenseA}/devices/${w.deviceB}/reset`, tokens.vendor).expect(404);
    });

    it('resets a device (its seat freed), then refuses a second reset with 409', async () => {
      const { t, w, tokens } = world;
      const device = await offlineDevice(t, w.licenseA);
      const before = Number((await t.db('licenses').where({ id: w.licenseA }).first()).times_activated);
      const res = await api(t, 'post', `/licenses/${w.licenseA}/devices/${device}/reset`, tokens.managerInside);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.active, false);
      assert.ok((await t.db('devices').where({ id: device }).first()).deactivated_at);
      assert.equal(Number((await t.db('licenses').where({ id: w.licenseA }).first()).times_activated), before - 1);
      await auditedAs('device.reset', 'device', device, MANAGER_LABEL);
      const again = await api(t, 'post', `/licenses/${w.licenseA}/devices/${device}/reset`, tokens.vendor).expect(409);
      assert.equal(again.body.error.code, 'licenses.device_already_inactive');
    });

    it('blacklists a device and takes it off the blacklist again', async () => {
      const { t, w, tokens } = world;
      const device = await offlineDevice(t, w.licenseA);
      const res = await api(t, 'post', `/licenses/${w.licenseA}/devices/${device}/blacklist`, tokens.vendor);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.blacklisted, true);
      assert.equal(res.body.active, false);
      const hardwareId = (await t.db('devices').where({ id: device }).first()).hardware_id;
      assert.equal(await countRows(t.db, 'license_blacklist', { license_id: w.licenseA, hardware_id: hardwareId }), 1);
      await auditedAs('device.blacklisted', 'device', device, VENDOR_LABEL);
      await api(t, 'post', `/licenses/${w.licenseA}/devices/${device}/blacklist`, tokens.vendor).expect(409);
      const off = await api(t, 'post', `/licenses/${w.licenseA}/devices/${device}/unblacklist`, tokens.managerInside);
      assert.equal(off.status, 200, off.text);
      assert.equal(await countRows(t.db, 'license_blacklist', { license_id: w.licenseA, hardware_id: hardwareId }), 0);
      await auditedAs('device.unblacklisted', 'device', device, MANAGER_LABEL);
      await api(t, 'post', `/licenses/${w.licenseA}/devices/${device}/unblacklist`, tokens.vendor).expect(409);
    });

    it('gives a signed refresh file of an active offline device, with a growing counter', async () => {
      const { t, w, tokens } = world;
      const device = await offlineDevice(t, w.licenseA);
      const first = await api(t, 'post', `/licenses/${w.licenseA}/devices/${device}/refresh`, tokens.managerInside);
      assert.equal(first.status, 201, first.text);
      assert.equal(first.headers['cache-control'], 'no-store');
      assert.match(first.body.filename, /^cad-HW-API-\d+-refresh-1\.lic$/);
      const trustedKeys = await trustedKeyMap(t.db);
      const payload = verifyEnvelope(first.body.license_file, { expectedType: 'refresh', trustedKeys }).payload as {
        counter: number;
        licenseKey: string;
      };
      assert.equal(payload.counter, 1);
      assert.equal(payload.licenseKey, 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA');
      const second = await api(t, 'post', `/licenses/${w.licenseA}/devices/${device}/refresh`, tokens.vendor).expect(
        201,
      );
      assert.equal(
        (
          verifyEnvelope(second.body.license_file, { expectedType: 'refresh', trustedKeys }).payload as {
            counter: number;
          }
        ).counter,
        2,
      );
      await auditedAs('device.refresh_file_issued', 'device', device, VENDOR_LABEL);
      // Not for an online device (no device key) or an inactive one.
      const online = await api(t, 'post', `/licenses/${w.licenseA}/devices/${w.deviceA}/refresh`, tokens.vendor);
      assert.equal(online.status, 409, online.text);
    });

    it('resets the whole license: every device deactivated, times activated back to 0', async () => {
      const { t, w, tokens } = world;
      await offlineDevice(t, w.licenseA);
      const res = await api(t, 'post', `/licenses/${w.licenseA}/reset`, tokens.managerInside).expect(200);
      assert.ok(res.body.devices_deactivated >= 1);
      assert.equal(res.body.times_activated, 0);
      assert.equal(
        await t
          .db('devices')
          .where({ license_id: w.licenseA })
          .whereNull('deactivated_at')
          .count({ n: '*' })
          .first()
          .then((r) => Number(r?.n)),
        0,
      );
      const audit = await auditedAs('license.reset', 'license', w.licenseA, MANAGER_LABEL);
      assert.ok(audit);
      assert.ok((await auditOf(t.db, 'license', w.licenseA)).some((e) => e.action === 'license.reset'));
    });
  });
});
