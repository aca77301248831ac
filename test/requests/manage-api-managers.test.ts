import assert from 'node:assert/strict';
import { buildTestApp, countRows } from '../helpers/app.ts';
import { accessMatrix, api, manageApiWorld, type ManageApiWorld } from '../helpers/manage-api.ts';
import { createRole } from '../../app/services/roles.ts';
import { systemActor } from '../../app/services/context.ts';

/** Managers and roles: API clients only; a personal token never holds managers:* (403 insufficient_scope). */
describe('Management API: managers and roles', () => {
  let world: ManageApiWorld;
  let viewerRole: number;
  let managerRole: number;
  let customRole: number;
  before(async () => {
    world = await manageApiWorld(await buildTestApp());
    viewerRole = Number((await world.t.db('roles').where({ builtin: 'viewer' }).first()).id);
    managerRole = Number((await world.t.db('roles').where({ builtin: 'manager' }).first()).id);
    customRole = await createRole(world.t, systemActor('test'), {
      name: 'Support desk',
      permissions: ['reset_device'],
    });
  });
  after(() => world.t.close());

  const vendorOnly = { managerInside: 403, managerOutside: 403 };

  describe('access matrix', () => {
    let n = 0;
    accessMatrix(
      () => world,
      [
        { route: 'GET /managers', scope: 'managers:read', path: () => '/managers', ...vendorOnly },
        {
          route: 'POST /managers',
          scope: 'managers:write',
          path: () => '/managers',
          body: () => ({ email: `invitee${++n}@example.com`, name: `Invitee ${n}` }),
          ...vendorOnly,
          vendor: 201,
        },
        {
          route: 'GET /managers/:id',
          scope: 'managers:read',
          path: (w) => `/managers/${w.operator.id}`,
          ...vendorOnly,
        },
        {
          route: 'POST /managers/:id/orders',
          scope: 'managers:write',
          path: (w) => `/managers/${w.managerNone.id}/orders`,
          body: () => ({ order_ref: 'B-1', role_id: viewerRole }),
          ...vendorOnly,
          vendor: 201,
        },
        {
          route: 'PATCH /managers/:id/orders/:orderId',
          scope: 'managers:write',
          path: (w) => `/managers/${w.operator.id}/orders/${w.orderA}`,
          body: () => ({ role_id: managerRole }),
          ...vendorOnly,
        },
        {
          route: 'DELETE /managers/:id/orders/:orderId',
          scope: 'managers:write',
          path: (w) => `/managers/${w.mixed.id}/orders/${w.orderB}`,
          ...vendorOnly,
        },
        { route: 'GET /roles', scope: 'managers:read', path: () => '/roles', ...vendorOnly },
        { route: 'GET /roles/:id', scope: 'managers:read', path: () => `/roles/${viewerRole}`, ...vendorOnly },
        {
          route: 'POST /roles',
          scope: 'managers:write',
          path: () => '/roles',
          body: () => ({ name: `Role ${++n}`, permissions: ['dispatch_license'] }),
          ...vendorOnly,
          vendor: 201,
        },
        {
          route: 'PATCH /roles/:id',
          scope: 'managers:write',
          path: () => `/roles/${customRole}`,
          body: () => ({ permissions: ['reset_device', 'dispatch_license'] }),
          ...vendorOnly,
        },
      ],
    );
  });

  it('invites a manager through the console’s service (default permissions, a mail), audited as the token', async () => {
    const { t, tokens } = world;
    const res = await api(t, 'post', '/managers', tokens.vendor, {
      email: 'Reseller@Example.com',
      name: 'Reseller',
    }).expect(201);
    assert.equal(res.body.email, 'reseller@example.com');
    assert.equal(res.body.invitation_pending, true);
    assert.ok(['sending', 'outbox'].includes(res.body.invitation_mail));
    const audit = await t
      .db('audit_events')
      .where({ action: 'manager.invited', object_id: String(res.body.id) })
      .first();
    assert.match(audit.actor_label, /^api client "shop"/);
    const again = await api(t, 'post', '/managers', tokens.vendor, { email: 'reseller@example.com', name: 'R' }).expect(
      422,
    );
    assert.ok(again.body.error.fields.email);
  });

  it('assigns, re-roles and unassigns orders; the manager’s power follows at once', async () => {
    const { t, w, tokens } = world;
    const manager = await api(t, 'post', '/managers', tokens.vendor, { email: 'm2@example.com', name: 'M2' }).expect(
      201,
    );
    const id = manager.body.id;
    const assigned = await api(t, 'post', `/managers/${id}/orders`, tokens.vendor, {
      order_ref: 'A-1',
      role_id: viewerRole,
    }).expect(201);
    assert.deepEqual(
      assigned.body.orders.map((o: { order_id: number; role_id: number }) => [o.order_id, o.role_id]),
      [[w.orderA, viewerRole]],
    );
    await api(t, 'post', `/managers/${id}/orders`, tokens.vendor, { order_ref: 'NOPE', role_id: viewerRole }).expect(
      422,
    );
    const changed = await api(t, 'patch', `/managers/${id}/orders/${w.orderA}`, tokens.vendor, {
      role_id: managerRole,
    }).expect(200);
    assert.equal(changed.body.orders[0].role_id, managerRole);
    await api(t, 'patch', `/managers/${id}/orders/${w.orderB}`, tokens.vendor, { role_id: managerRole }).expect(404);
    await api(t, 'delete', `/managers/${id}/orders/${w.orderA}`, tokens.vendor).expect(200);
    assert.equal(await countRows(t.db, 'manager_orders', { account_id: id }), 0);
    // Not a manager: 404.
    await api(t, 'get', `/managers/${w.endUser.id}`, tokens.vendor).expect(404);
    await api(t, 'get', `/managers/${w.admin.id}`, tokens.vendor).expect(404);
  });

  it('lists managers with a cursor and roles with their permissions', async () => {
    const { t, tokens } = world;
    const page = await api(t, 'get', '/managers?limit=2', tokens.vendor).expect(200);
    assert.equal(page.body.data.length, 2);
    assert.ok(page.body.next_cursor);
    const roles = await api(t, 'get', '/roles', tokens.vendor).expect(200);
    assert.ok(roles.body.data.some((r: { builtin: string }) => r.builtin === 'manager'));
  });

  it('makes and changes custom roles as the console does: audited as the token, built-in roles fixed, bad input 422', async () => {
    const { t, w, tokens } = world;
    const made = await api(t, 'post', '/roles', tokens.vendor, {
      name: 'Dispatch only',
      permissions: ['dispatch_license'],
    }).expect(201);
    assert.deepEqual(made.body.permissions, ['dispatch_license']);
    assert.equal(made.body.builtin, null);
    const audit = await t
      .db('audit_events')
      .where({ action: 'role.created', object_id: String(made.body.id) })
      .first();
    assert.match(audit.actor_label, /^api client "shop"/);

    // The role's new permission reaches a manager holding it at once (the portal's own permission function).
    await api(t, 'patch', `/managers/${w.managerNone.id}/orders/${w.orderA}`, tokens.vendor, {
      role_id: made.body.id,
    }).expect(200);
    const changed = await api(t, 'patch', `/roles/${made.body.id}`, tokens.vendor, {
      permissions: ['dispatch_license', 'reset_device'],
    }).expect(200);
    assert.equal(changed.body.name, 'Dispatch only', 'a PATCH keeps what it does not send');
    assert.deepEqual([...changed.body.permissions].sort(), ['dispatch_license', 'reset_device']);
    const held = await t
      .db('manager_orders')
      .join('role_permissions', 'role_permissions.role_id', 'manager_orders.role_id')
      .where({ 'manager_orders.account_id': w.managerNone.id, 'manager_orders.order_id': w.orderA })
      .pluck('role_permissions.permission');
    assert.deepEqual([...held].sort(), ['dispatch_license', 'reset_device']);

    await api(t, 'patch', `/roles/${managerRole}`, tokens.vendor, { permissions: [] }).expect(409);
    const unknown = await api(t, 'post', '/roles', tokens.vendor, { name: 'X', permissions: ['fly'] }).expect(422);
    assert.ok(unknown.body.error.fields['permissions.0'] ?? unknown.body.error.fields.permissions);
    const taken = await api(t, 'post', '/roles', tokens.vendor, { name: 'Dispatch only', permissions: [] }).expect(422);
    assert.ok(taken.body.error.fields.name);
  });
});
