import assert from 'node:assert/strict';
import { adminAgent, auditOf, buildTestApp, loginAgent, submitForm, type TestApp } from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;

/** The console's roles (docs/user-portal.md, "Roles"): the vendor's own, the default, and what is refused. */
describe('console: roles', function () {
  this.timeout(60_000);
  let t: TestApp;
  let w: World;
  let agent: Awaited<ReturnType<typeof adminAgent>>['agent'];
  const form = (url: string, action: string, fields: Record<string, string | string[]>) =>
    submitForm(agent, url, action, fields as Record<string, string>);
  const flashOf = async (res: { headers: Record<string, string> }) => (await agent.get(res.headers.location!)).text;

  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    agent = (await adminAgent(t)).agent;
  });
  after(async () => t.close());

  it('lists the built-in roles and the default one', async () => {
    const page = (await agent.get('/admin/roles').expect(200)).text;
    for (const name of ['Viewer', 'Operator', 'Manager', 'Standard']) assert.match(page, new RegExp(name));
  });

  it('creates, renames and changes a role; refuses a taken name and an unknown permission', async () => {
    const created = await form('/admin/roles/new', '/admin/roles', {
      name: 'Support desk',
      permissions: ['reset_device', 'revoke_device'],
    });
    assert.equal(created.status, 303);
    const role = await t.db('roles').where({ name: 'Support desk' }).first();
    const perms = async () =>
      (await t.db('role_permissions').where({ role_id: role.id }).orderBy('permission')).map((r) => r.permission);
    assert.deepEqual(await perms(), ['reset_device', 'revoke_device']);
    const taken = await form('/admin/roles/new', '/admin/roles', { name: 'Viewer', permissions: [] });
    assert.equal(taken.status, 422);
    assert.match(taken.text, /Another role has this name/);
    const bad = await form('/admin/roles/new', '/admin/roles', { name: 'Rockets', permissions: ['create_order'] });
    assert.equal(bad.status, 422, 'an account permission is no order permission');
    const edit = `/admin/roles/${role.id}/edit`;
    assert.equal(
      (await form(edit, `/admin/roles/${role.id}`, { name: 'Support', permissions: ['reset_device'] })).status,
      303,
    );
    assert.deepEqual(await perms(), ['reset_device']);
    assert.deepEqual(
      (await auditOf(t.db, 'role', role.id)).map((e) => e.action),
      ['role.created', 'role.updated'],
    );
  });

  it('a role change reaches every manager who holds it, at once', async () => {
    const role = await t.db('roles').where({ name: 'Support' }).first();
    await t.db('manager_orders').where({ account_id: w.operator.id, order_id: w.orderA }).update({ role_id: role.id });
    const op = await loginAgent(t.app, w.operator.email, w.operator.password);
    await op.get(`/portal/orders/${w.orderA}/dispatch`).expect(403);
    await form(`/admin/roles/${role.id}/edit`, `/admin/roles/${role.id}`, {
      name: 'Support',
      permissions: ['reset_device', 'dispatch_license'],
    });
    await op.get(`/portal/orders/${w.orderA}/dispatch`).expect(200);
  });

  it('makes a role the default; refuses to delete the default, a role in use, or a built-in role', async () => {
    const support = await t.db('roles').where({ name: 'Support' }).first();
    const viewer = await t.db('roles').where({ builtin: 'viewer' }).first();
    assert.equal((await form('/admin/roles', `/admin/roles/${viewer.id}/default`, {})).status, 303);
    assert.equal((await t.db('roles').where({ is_default: true }).first()).id, viewer.id);
    assert.match(
      await flashOf(await form('/admin/roles', `/admin/roles/${viewer.id}/delete`, { confirmed: '1' })),
      /Built-in roles/,
    );
    assert.match(
      await flashOf(await form('/admin/roles', `/admin/roles/${support.id}/delete`, { confirmed: '1' })),
      /Managers hold this role/,
    );
    assert.match(
      await flashOf(await form('/admin/roles', `/admin/roles/${viewer.id}`, { name: 'Looker', permissions: [] })),
      /Built-in roles/,
    );
    assert.equal((await t.db('roles').where({ id: viewer.id }).first()).name, 'Viewer');
    await t.db('manager_orders').where({ role_id: support.id }).update({ role_id: viewer.id });
    assert.equal((await form('/admin/roles', `/admin/roles/${support.id}/delete`, { confirmed: '1' })).status, 303);
    assert.equal(await t.db('roles').where({ id: support.id }).first(), undefined);
    await agent.get(`/admin/roles/${support.id}/edit`).expect(404);
  });

  it('managers are not admins: the roles pages answer 404', async () => {
    const m = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    await m.get('/admin/roles').expect(404);
  });
});
