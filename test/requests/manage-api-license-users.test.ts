import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { buildTestApp, countRows, createAccount } from '../helpers/app.ts';
import { accessMatrix, api, manageApiWorld, type ManageApiWorld, type Method } from '../helpers/manage-api.ts';
import * as assignments from '../../app/models/license-users.ts';
import * as catalog from '../../app/models/catalog.ts';
import { MANAGER_LABEL, VENDOR_LABEL, auditedAs as audited, pool } from '../helpers/manage-api-licenses.ts';

const CALLS_PER_CASE = 8;

describe('Management API: license users', () => {
  let world: ManageApiWorld;
  let unassignable: () => number;
  let withdrawable: () => number;
  /** An end user of order B's license only: managerAll does not own them. */
  let foreignUser: Awaited<ReturnType<typeof createAccount>>;
  let userLicenseB: number;

  before(async () => {
    world = await manageApiWorld(await buildTestApp());
    const { t, w } = world;
    const now = new Date();
    const users: number[] = [];
    const invitations: number[] = [];
    for (let i = 0; i < CALLS_PER_CASE; i++) {
      const u = await createAccount(t.db, { role: 'end_user' });
      await catalog.assignLicenseUser(t.db, w.userLicense, u.id, 1, now);
      users.push(u.id);
      const invited = await createAccount(t.db, { role: 'end_user' });
      invitations.push(
        await assignments.insertInvitation(
          t.db,
          {
            licenseId: w.userLicense,
            accountId: invited.id,
            maxActivations: 1,
            tokenHash: crypto.randomBytes(32).toString('hex'),
            invitedBy: w.managerAll.id,
            expiresAt: new Date(now.getTime() + 86_400_000),
          },
          now,
        ),
      );
    }
    unassignable = pool(users);
    withdrawable = pool(invitations);
    userLicenseB = await catalog.insertLicense(
      t.db,
      {
        orderId: w.orderB,
        productId: w.userProduct,
        policyId: w.userPolicy,
        licenseKey: null,
        entitlements: catalog.DEFAULT_ENTITLEMENTS,
        startDate: now,
      },
      now,
    );
    foreignUser = await createAccount(t.db, { role: 'end_user', email: 'foreign@example.com' });
    await catalog.assignLicenseUser(t.db, userLicenseB, foreignUser.id, 1, now);
  });
  after(() => world.t.close());

  describe('access matrix', () => {
    let n = 0;
    accessMatrix(
      () => world,
      [
        {
          route: 'GET /licenses/:id/users',
          scope: 'license_users:read',
          path: (w) => `/licenses/${w.userLicense}/users`,
        },
        {
          route: 'POST /licenses/:id/users',
          scope: 'license_users:write',
          path: (w) => `/licenses/${w.userLicense}/users`,
          body: () => ({ email: `matrix${++n}@example.com`, max_activations: 1 }),
          managerInside: 201,
          vendor: 201,
        },
        {
          route: 'PATCH /licenses/:id/users/:accountId',
          scope: 'license_users:write',
          path: (w) => `/licenses/${w.userLicense}/users/${w.secondUser.id}`,
          body: () => ({ max_activations: 3 }),
        },
        {
          route: 'DELETE /licenses/:id/users/:accountId',
          scope: 'license_users:write',
          path: (w) => `/licenses/${w.userLicense}/users/${unassignable()}`,
        },
        {
          route: 'POST /licenses/:id/users/:accountId/password-link',
          scope: 'license_users:write',
          path: (w) => `/licenses/${w.userLicense}/users/${w.secondUser.id}/password-link`,
        },
        {
          route: 'GET /licenses/:id/invitations',
          scope: 'license_users:read',
          path: (w) => `/licenses/${w.userLicense}/invitations`,
        },
        {
          route: 'DELETE /licenses/:id/invitations/:invitationId',
          scope: 'license_users:write',
          path: (w) => `/licenses/${w.userLicense}/invitations/${withdrawable()}`,
        },
      ],
    );
  });

  describe('behaviour', () => {
    const auditedAs = (action: string, licenseId: number, label: RegExp) =>
      audited(world.t.db, action, 'license', licenseId, label);

    it('lists the users with what the token may do to each, in cursor pages', async () => {
      const { t, w, tokens } = world;
      const res = await api(t, 'get', `/licenses/${w.userLicense}/users?limit=100`, tokens.managerInside).expect(200);
      const end = res.body.data.find((u: { id: number }) => u.id === w.endUser.id);
      assert.equal(end.email, w.endUser.email);
      assert.equal(end.max_activations, 2);
      assert.equal(end.times_activated, 1);
      assert.equal(end.manageable, true);
      const page = await api(t, 'get', `/licenses/${w.userLicense}/users?limit=1`, tokens.vendor).expect(200);
      assert.equal(page.body.data.length, 1);
      const next = await api(
        t,
        'get',
        `/licenses/${w.userLicense}/users?limit=1&cursor=${page.body.next_cursor}`,
        tokens.vendor,
      ).expect(200);
      assert.ok(next.body.data[0].id > page.body.data[0].id);
      await api(t, 'get', `/licenses/${userLicenseB}/users`, tokens.managerInside).expect(404);
    });

    it('assigns a new address (an account made and mailed), audited under the token', async () => {
      const { t, w, tokens } = world;
      const res = await api(t, 'post', `/licenses/${w.userLicense}/users`, tokens.managerInside, {
        email: 'carol@globex.example',
        name: 'Carol',
        max_activations: 2,
      }).expect(201);
      assert.equal(res.body.result, 'assigned');
      assert.equal(res.body.user.email, 'carol@globex.example');
      assert.equal(res.body.user.max_activations, 2);
      const account = await t.db('accounts').where({ email: 'carol@globex.example' }).first();
      assert.equal(
        await countRows(t.db, 'license_user_assignments', { license_id: w.userLicense, account_id: account.id }),
        1,
      );
      assert.equal(await countRows(t.db, 'mail_outbox', { to_address: 'carol@globex.example' }), 1);
      await auditedAs('license_user.assigned', w.userLicense, MANAGER_LABEL);
    });

    it('invites an account the manager does not own instead of assigning it; the vendor assigns it', async () => {
      const { t, w, tokens } = world;
      const res = await api(t, 'post', `/licenses/${w.userLicense}/users`, tokens.managerInside, {
        email: foreignUser.email,
        max_activations: 1,
      }).expect(201);
      assert.equal(res.body.result, 'invited');
      assert.equal(res.body.invitation.email, foreignUser.email);
      assert.equal(
        await countRows(t.db, 'license_user_assignments', { license_id: w.userLicense, account_id: foreignUser.id }),
        0,
      );
      await auditedAs('license_user.invited', w.userLicense, MANAGER_LABEL);
      const list = await api(t, 'get', `/licenses/${w.userLicense}/invitations`, tokens.managerInside).expect(200);
      assert.ok(list.body.data.some((i: { id: number }) => i.id === res.body.invitation.id));
      // The invitation can be withdrawn; then it is gone.
      await api(
        t,
        'delete',
        `/licenses/${w.userLicense}/invitations/${res.body.invitation.id}`,
        tokens.managerInside,
      ).expect(200);
      await auditedAs('license_user.invitation_withdrawn', w.userLicense, MANAGER_LABEL);
      await api(t, 'delete', `/licenses/${w.userLicense}/invitations/${res.body.invitation.id}`, tokens.vendor).expect(
        404,
      );

      const vendor = await api(t, 'post', `/licenses/${w.userLicense}/users`, tokens.vendor, {
        email: foreignUser.email,
        max_activations: 1,
      }).expect(201);
      assert.equal(vendor.body.result, 'assigned');
      await auditedAs('license_user.assigned', w.userLicense, VENDOR_LABEL);
    });

    it('answers a manager alike whatever an address belongs to: an admin’s or a manager’s is only invited, not mailed', async () => {
      const { t, w, tokens } = world;
      for (const account of [w.admin, w.managerB]) {
        const res = await api(t, 'post', `/licenses/${w.userLicense}/users`, tokens.managerInside, {
          email: account.email,
          max_activations: 1,
        }).expect(201);
        assert.equal(res.body.result, 'invited');
        assert.deepEqual(Object.keys(res.body.invitation).sort(), ['email', 'expires_at', 'id', 'max_activations']);
        assert.equal(await countRows(t.db, 'mail_outbox', { to_address: account.email }), 0);
        assert.equal(
          await countRows(t.db, 'license_user_assignments', { license_id: w.userLicense, account_id: account.id }),
          0,
        );
      }
      // The vendor gets the console's answer: such an address cannot hold a license.
      const vendor = await api(t, 'post', `/licenses/${w.userLicense}/users`, tokens.vendor, {
        email: w.admin.email,
        max_activations: 1,
      }).expect(422);
      assert.ok(vendor.body.error.fields.email);
    });

    it('a manager cannot change, unassign or mail a user it does not own: 404', async () => {
      const { t, w, tokens } = world;
      // foreignUser now holds licenses in orders A and B: managerAll owns them no more.
      for (const [method, path, body] of [
        ['patch', `/licenses/${w.userLicense}/users/${foreignUser.id}`, { max_activations: 5 }],
        ['delete', `/licenses/${w.userLicense}/users/${foreignUser.id}`],
        ['post', `/licenses/${w.userLicense}/users/${foreignUser.id}/password-link`],
      ] as [Method, string, object?][]) {
        const res = await api(t, method, path, tokens.managerInside, body);
        assert.equal(res.status, 404, `${method} ${path}: ${res.text}`);
      }
      const list = await api(t, 'get', `/licenses/${w.userLicense}/users?limit=100`, tokens.managerInside).expect(200);
      assert.equal(list.body.data.find((u: { id: number }) => u.id === foreignUser.id).manageable, false);
      await api(t, 'patch', `/licenses/${w.userLicense}/users/${foreignUser.id}`, tokens.vendor, {
        max_activations: 5,
      }).expect(200);
    });

    it('sets a user’s limit and unassigns; a user with an active device stays (409)', async () => {
      const { t, w, tokens } = world;
      const limit = await api(t, 'patch', `/licenses/${w.userLicense}/users/${w.secondUser.id}`, tokens.managerInside, {
        max_activations: 4,
      }).expect(200);
      assert.equal(limit.body.max_activations, 4);
      const row = await t
        .db('license_user_assignments')
        .where({ license_id: w.userLicense, account_id: w.secondUser.id })
        .first();
      assert.equal(Number(row.max_activations), 4);
      await auditedAs('license_user.limit_changed', w.userLicense, MANAGER_LABEL);

      const busy = await api(
        t,
        'delete',
        `/licenses/${w.userLicense}/users/${w.endUser.id}`,
        tokens.managerInside,
      ).expect(409);
      assert.equal(busy.body.error.code, 'license_users.has_active_devices');
      await api(t, 'delete', `/licenses/${w.userLicense}/users/${w.secondUser.id}`, tokens.vendor).expect(200);
      assert.equal(
        await countRows(t.db, 'license_user_assignments', { license_id: w.userLicense, account_id: w.secondUser.id }),
        0,
      );
      await auditedAs('license_user.unassigned', w.userLicense, VENDOR_LABEL);
      await api(t, 'patch', `/licenses/${w.userLicense}/users/${w.secondUser.id}`, tokens.vendor, {
        max_activations: 2,
      }).expect(404);
    });

    it('mails a password link to a user the manager owns', async () => {
      const { t, w, tokens } = world;
      const before = await countRows(t.db, 'mail_outbox', { to_address: w.endUser.email });
      const res = await api(
        t,
        'post',
        `/licenses/${w.userLicense}/users/${w.endUser.id}/password-link`,
        tokens.managerInside,
      );
      assert.equal(res.status, 200, res.text);
      assert.equal(await countRows(t.db, 'mail_outbox', { to_address: w.endUser.email }), before + 1);
      const audit = await t
        .db('audit_events')
        .where({ action: 'license_user.reset_link_sent', object_id: String(w.endUser.id) })
        .first();
      assert.match(String(audit.actor_label), MANAGER_LABEL);
    });

    it('refuses bad input (422), key-based licenses (409) and managers without the permission (403)', async () => {
      const { t, w, tokens } = world;
      const bad = await api(t, 'post', `/licenses/${w.userLicense}/users`, tokens.vendor, {
        email: 'nope',
        max_activations: 0,
      }).expect(422);
      assert.ok(bad.body.error.fields.email);
      assert.ok(bad.body.error.fields.max_activations);
      const limit = await api(t, 'patch', `/licenses/${w.userLicense}/users/${w.endUser.id}`, tokens.vendor, {
        max_activations: 'many',
      }).expect(422);
      assert.ok(limit.body.error.fields.max_activations);
      const keyed = await api(t, 'post', `/licenses/${w.licenseA}/users`, tokens.vendor, {
        email: 'k@example.com',
        max_activations: 1,
      }).expect(409);
      assert.equal(keyed.body.error.code, 'license_users.not_user_based');

      const invited = await api(t, 'post', `/licenses/${w.userLicense}/users`, tokens.managerInside, {
        email: w.managerB.email,
        max_activations: 1,
      }).expect(201);
      const pending = invited.body.invitation.id;
      // The operator role may manage users, not their credentials; the viewer neither.
      for (const m of [w.operator, w.managerNone])
        await t.db('manager_permissions').insert({ account_id: m.id, permission: 'manage_api_clients' });
      const operator = await tokens.personal(w.operator.id);
      const viewer = await tokens.personal(w.managerNone.id);
      await api(t, 'get', `/licenses/${w.userLicense}/users`, viewer).expect(200);
      const before = await countRows(t.db, 'audit_events');
      for (const [method, path, body] of [
        ['post', `/licenses/${w.userLicense}/users`, { email: 'v@example.com', max_activations: 1 }],
        ['patch', `/licenses/${w.userLicense}/users/${w.endUser.id}`, { max_activations: 1 }],
        ['delete', `/licenses/${w.userLicense}/users/${w.endUser.id}`],
        ['post', `/licenses/${w.userLicense}/users/${w.endUser.id}/password-link`],
        ['delete', `/licenses/${w.userLicense}/invitations/${pending}`],
      ] as [Method, string, object?][]) {
        const res = await api(t, method, path, viewer, body);
        assert.equal(res.status, 403, `viewer ${method} ${path}: ${res.text}`);
        assert.equal(res.body.error.code, 'forbidden');
      }
      const cred = await api(t, 'post', `/licenses/${w.userLicense}/users/${w.endUser.id}/password-link`, operator);
      assert.equal(cred.status, 403, cred.text);
      assert.equal(await countRows(t.db, 'audit_events'), before, 'nothing changed');
      await api(t, 'patch', `/licenses/${w.userLicense}/users/${w.endUser.id}`, operator, {
        max_activations: 2,
      }).expect(200);
    });
  });
});
