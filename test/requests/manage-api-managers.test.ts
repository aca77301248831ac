import assert from 'node:assert/strict';
import { buildTestApp, countRows } from '../helpers/app.ts';
import { accessMatrix, api, manageApiWorld, type ManageApiWorld } from '../helpers/manage-api.ts';

/** Managers and roles: API clients only; a personal token never holds managers:* (403 insufficient_scope). */
describe('Management API: managers and roles', () => {
  let world: ManageApiWorld;
  let viewerRole: number;
  let managerRole: number;
  before(async () => {
    world = await manageApiWorld(await buildTestApp());
    viewerRole = Number((await world.t.db('roles').where({ builtin: 'viewer' }).first()).id);
    managerRole = Number((await world.t.db('roles').where({ builtin: 'manager' }).first()).id);
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
    assert.ok(['smtp', 'outbox'].includes(res.body.invitation_mail));
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
});
