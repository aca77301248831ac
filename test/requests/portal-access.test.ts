import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import request from 'supertest';
import { buildTestApp, createAccount, csrfFrom, loginAgent, type TestApp } from '../helpers/app.ts';
import * as catalog from '../../app/models/catalog.ts';
import * as licenseUsers from '../../app/models/license-users.ts';
import * as vouchers from '../../app/models/vouchers.ts';
import { portalWorld } from '../helpers/portal.ts';
import * as accounts from '../../app/models/accounts.ts';
import { createPersonalToken } from '../../app/services/api-tokens.ts';
import { systemActor } from '../../app/services/context.ts';
import { routeTable, fullPath } from '../../app/routes.ts';
import * as webhooks from '../../app/models/webhooks.ts';
import { createEndpoint, webhookDepsOf } from '../../app/services/webhooks.ts';
import { BUILT_IN_ROLES, PERMISSIONS, type Permission } from '../../app/policies/permissions.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;

/**
 * Every User Portal route: the permission it needs (null: any manager of the order), whether it
 * addresses an object of order A (so the manager of order B must get 404), who it is for, and how to
 * fill its parameters. A route missing here fails the meta-test below.
 */
interface Row {
  perm: Permission | null;
  scoped: boolean;
  /**
   * inviter: only the manager who invited the `:accountId` (delegation) may address it; causer: only
   * the account whose action caused the `:mailId` (managerAll in every run). api_managers: managers
   * holding manage_api_clients (403 for other managers, 404 for everyone else, admins included); hook_owner: only the manager
   * who owns the `:id` webhook endpoint (managerAll).
   */
  for: 'managers' | 'end_users' | 'everyone' | 'inviter' | 'causer' | 'api_managers' | 'hook_owner';
  params?: (w: World, s: Scratch) => Record<string, number>;
}

/** Made afresh for each role's run, so that one run's removals do not change the next run's answers. */
interface Scratch {
  managerId: number;
  userId: number;
  invitationId: number;
  voucherId: number;
  mailId: number;
  hookId: number;
  hookDeliveryId: number;
  tokenId: number;
  ssoProviderId: number;
  ssoDomainId: number;
  ssoMappingId: number;
}

const license = (w: World) => ({ id: w.licenseA, deviceId: w.deviceA });
const userLicense = (w: World, s: Scratch) => ({ id: w.userLicense, accountId: s.userId });
const order = (w: World, s: Scratch) => ({ id: w.orderA, accountId: s.managerId });
const voucher = (w: World, s: Scratch) => ({ id: w.orderA, voucherId: s.voucherId });
const invitation = (w: World, s: Scratch) => ({ id: w.userLicense, invitationId: s.invitationId });
const hook = (_w: World, s: Scratch) => ({ id: s.hookId, deliveryId: s.hookDeliveryId });
const sso = (w: World, s: Scratch) => ({
  id: w.customer,
  providerId: s.ssoProviderId,
  domainId: s.ssoDomainId,
  mappingId: s.ssoMappingId,
});

const MATRIX: Record<string, Row> = {
  'GET /portal': { perm: null, scoped: false, for: 'everyone' },
  'POST /portal/my/devices/:deviceId/release': {
    perm: null,
    scoped: false,
    for: 'end_users',
    params: (w) => ({ deviceId: w.userDevice }),
  },
  'GET /portal/orders': { perm: null, scoped: false, for: 'managers' },
  'GET /portal/search': { perm: null, scoped: false, for: 'managers' },
  'GET /portal/orders/new': { perm: 'create_order', scoped: false, for: 'managers' },
  'POST /portal/orders': { perm: 'create_order', scoped: false, for: 'managers' },
  'GET /portal/orders/bundle/new': { perm: 'create_bundle_order', scoped: false, for: 'managers' },
  'POST /portal/orders/bundle': { perm: 'create_bundle_order', scoped: false, for: 'managers' },
  'GET /portal/orders/:id': { perm: null, scoped: true, for: 'managers', params: order },
  'GET /portal/orders/:id/export.csv': { perm: null, scoped: true, for: 'managers', params: order },
  'GET /portal/orders/:id/dispatch': { perm: 'dispatch_license', scoped: true, for: 'managers', params: order },
  'POST /portal/orders/:id/dispatch': { perm: 'dispatch_license', scoped: true, for: 'managers', params: order },
  'POST /portal/orders/:id/dispatch/csv': { perm: 'dispatch_license', scoped: true, for: 'managers', params: order },
  'POST /portal/orders/:id/licenses': { perm: 'issue_license', scoped: true, for: 'managers', params: order },
  'POST /portal/orders/:id/managers': { perm: 'manage_managers', scoped: true, for: 'managers', params: order },
  'POST /portal/orders/:id/managers/:accountId/role': {
    perm: 'manage_managers',
    scoped: true,
    for: 'managers',
    params: order,
  },
  'GET /portal/team': { perm: null, scoped: false, for: 'managers' },
  'GET /portal/mail': { perm: null, scoped: false, for: 'managers' },
  'GET /portal/mail/:mailId': { perm: null, scoped: false, for: 'causer', params: (_w, s) => ({ mailId: s.mailId }) },
  'POST /portal/team/:accountId/quotas': { perm: null, scoped: false, for: 'inviter', params: order },
  // Last of the scratch manager's rows: it removes them.
  'POST /portal/orders/:id/managers/:accountId/delete': {
    perm: 'manage_managers',
    scoped: true,
    for: 'managers',
    params: order,
  },
  'GET /portal/orders/:id/vouchers': { perm: null, scoped: true, for: 'managers', params: order },
  'POST /portal/orders/:id/vouchers': { perm: 'issue_license', scoped: true, for: 'managers', params: order },
  'GET /portal/orders/:id/vouchers/new-codes.csv': {
    perm: 'issue_license',
    scoped: true,
    for: 'managers',
    params: order,
  },
  'GET /portal/orders/:id/vouchers/new-codes/print': {
    perm: 'issue_license',
    scoped: true,
    for: 'managers',
    params: order,
  },
  'POST /portal/orders/:id/vouchers/new-codes/dismiss': { perm: null, scoped: true, for: 'managers', params: order },
  'POST /portal/orders/:id/vouchers/:voucherId/void': {
    perm: 'issue_license',
    scoped: true,
    for: 'managers',
    params: voucher,
  },
  // Renewal requests: any manager of the order; an end user for a license they use.
  'GET /portal/orders/:id/renewals/new': { perm: null, scoped: true, for: 'managers', params: order },
  'POST /portal/orders/:id/renewals': { perm: null, scoped: true, for: 'managers', params: order },
  'GET /portal/licenses/:id/renewals/new': { perm: null, scoped: true, for: 'managers', params: license },
  'POST /portal/licenses/:id/renewals': { perm: null, scoped: true, for: 'managers', params: license },
  'GET /portal/my/licenses/:id/renewals/new': {
    perm: null,
    scoped: false,
    for: 'end_users',
    params: (w) => ({ id: w.userLicense }),
  },
  'POST /portal/my/licenses/:id/renewals': {
    perm: null,
    scoped: false,
    for: 'end_users',
    params: (w) => ({ id: w.userLicense }),
  },
  'GET /portal/orders/:id/customer/edit': { perm: 'edit_customer', scoped: true, for: 'managers', params: order },
  'POST /portal/orders/:id/customer': { perm: 'edit_customer', scoped: true, for: 'managers', params: order },
  'GET /portal/licenses/:id': { perm: null, scoped: true, for: 'managers', params: license },
  'POST /portal/licenses/:id/disable': { perm: 'edit_license', scoped: true, for: 'managers', params: license },
  'POST /portal/licenses/:id/enable': { perm: 'edit_license', scoped: true, for: 'managers', params: license },
  'POST /portal/licenses/:id/note': { perm: 'edit_license', scoped: true, for: 'managers', params: license },
  'POST /portal/licenses/:id/reset': { perm: 'reset_license', scoped: true, for: 'managers', params: license },
  'GET /portal/orders/:id/usage': { perm: null, scoped: true, for: 'managers', params: order },
  'GET /portal/orders/:id/usage.csv': { perm: null, scoped: true, for: 'managers', params: order },
  'GET /portal/licenses/:id/usage': { perm: null, scoped: true, for: 'managers', params: license },
  'GET /portal/licenses/:id/usage.csv': { perm: null, scoped: true, for: 'managers', params: license },
  'POST /portal/licenses/:id/usage/devices/:deviceId/release': {
    perm: 'reset_device',
    scoped: true,
    for: 'managers',
    params: license,
  },
  'GET /portal/licenses/:id/devices/:deviceId/reset': {
    perm: 'reset_device',
    scoped: true,
    for: 'managers',
    params: license,
  },
  'POST /portal/licenses/:id/devices/:deviceId/reset': {
    perm: 'reset_device',
    scoped: true,
    for: 'managers',
    params: license,
  },
  'POST /portal/licenses/:id/devices/:deviceId/revoke': {
    perm: 'revoke_device',
    scoped: true,
    for: 'managers',
    params: license,
  },
  'POST /portal/licenses/:id/devices/:deviceId/unblacklist': {
    perm: 'revoke_device',
    scoped: true,
    for: 'managers',
    params: license,
  },
  'POST /portal/licenses/:id/devices/:deviceId/borrow': {
    perm: 'borrow_license',
    scoped: true,
    for: 'managers',
    params: license,
  },
  'GET /portal/licenses/:id/devices/:deviceId/refresh': { perm: null, scoped: true, for: 'managers', params: license },
  'GET /portal/licenses/:id/devices/:deviceId/reports': { perm: null, scoped: true, for: 'managers', params: license },
  'POST /portal/licenses/:id/users': {
    perm: 'manage_license_users',
    scoped: true,
    for: 'managers',
    params: userLicense,
  },
  'POST /portal/licenses/:id/users/:accountId': {
    perm: 'manage_license_users',
    scoped: true,
    for: 'managers',
    params: userLicense,
  },
  'POST /portal/licenses/:id/users/:accountId/password': {
    perm: 'manage_user_credentials',
    scoped: true,
    for: 'managers',
    params: userLicense,
  },
  'POST /portal/licenses/:id/users/:accountId/delete': {
    perm: 'manage_license_users',
    scoped: true,
    for: 'managers',
    params: userLicense,
  },
  'POST /portal/licenses/:id/invitations/:invitationId/delete': {
    perm: 'manage_license_users',
    scoped: true,
    for: 'managers',
    params: invitation,
  },
  'GET /portal/tokens': { perm: 'manage_api_clients', scoped: false, for: 'managers' },
  'GET /portal/tokens/new': { perm: 'manage_api_clients', scoped: false, for: 'managers' },
  'POST /portal/tokens': { perm: 'manage_api_clients', scoped: false, for: 'managers' },
  // A personal access token of managerAll: only its owner may address it.
  'POST /portal/tokens/:id/revoke': {
    perm: 'manage_api_clients',
    scoped: false,
    for: 'causer',
    params: (_w, s) => ({ id: s.tokenId }),
  },
  'GET /portal/policies/new': { perm: 'create_license_policy', scoped: false, for: 'managers' },
  'POST /portal/policies': { perm: 'create_license_policy', scoped: false, for: 'managers' },
  'GET /portal/webhooks': { perm: null, scoped: false, for: 'api_managers' },
  'GET /portal/webhooks/new': { perm: null, scoped: false, for: 'api_managers' },
  'POST /portal/webhooks': { perm: null, scoped: false, for: 'api_managers' },
  'GET /portal/webhooks/:id': { perm: null, scoped: false, for: 'hook_owner', params: hook },
  'GET /portal/webhooks/:id/edit': { perm: null, scoped: false, for: 'hook_owner', params: hook },
  'POST /portal/webhooks/:id': { perm: null, scoped: false, for: 'hook_owner', params: hook },
  'POST /portal/webhooks/:id/rotate': { perm: null, scoped: false, for: 'hook_owner', params: hook },
  'POST /portal/webhooks/:id/disable': { perm: null, scoped: false, for: 'hook_owner', params: hook },
  'POST /portal/webhooks/:id/enable': { perm: null, scoped: false, for: 'hook_owner', params: hook },
  'POST /portal/webhooks/:id/test': { perm: null, scoped: false, for: 'hook_owner', params: hook },
  'POST /portal/webhooks/:id/deliveries/:deliveryId/resend': {
    perm: null,
    scoped: false,
    for: 'hook_owner',
    params: hook,
  },
  // Single sign-on of order A's customer: edit_customer on one of its orders (a scratch provider per run).
  'GET /portal/customers/:id/sso': { perm: 'edit_customer', scoped: true, for: 'managers', params: sso },
  'POST /portal/customers/:id/sso/providers': { perm: 'edit_customer', scoped: true, for: 'managers', params: sso },
  'POST /portal/customers/:id/sso/seat-rule': { perm: 'edit_customer', scoped: true, for: 'managers', params: sso },
  'GET /portal/customers/:id/sso/providers/:providerId': {
    perm: 'edit_customer',
    scoped: true,
    for: 'managers',
    params: sso,
  },
  'POST /portal/customers/:id/sso/providers/:providerId': {
    perm: 'edit_customer',
    scoped: true,
    for: 'managers',
    params: sso,
  },
  'POST /portal/customers/:id/sso/providers/:providerId/domains': {
    perm: 'edit_customer',
    scoped: true,
    for: 'managers',
    params: sso,
  },
  'POST /portal/customers/:id/sso/providers/:providerId/domains/:domainId/:change': {
    perm: 'edit_customer',
    scoped: true,
    for: 'managers',
    params: (w, s) => ({ ...sso(w, s), change: 'password_off' }) as unknown as Record<string, number>,
  },
  'POST /portal/customers/:id/sso/providers/:providerId/mappings': {
    perm: 'edit_customer',
    scoped: true,
    for: 'managers',
    params: sso,
  },
  'POST /portal/customers/:id/sso/providers/:providerId/mappings/:mappingId/delete': {
    perm: 'edit_customer',
    scoped: true,
    for: 'managers',
    params: sso,
  },
  // Last of the scratch provider's rows: it deletes it.
  'POST /portal/customers/:id/sso/providers/:providerId/delete': {
    perm: 'edit_customer',
    scoped: true,
    for: 'managers',
    params: sso,
  },
  // Last of the scratch endpoint's rows: without confirmed=1 it only asks.
  'POST /portal/webhooks/:id/delete': { perm: null, scoped: false, for: 'hook_owner', params: hook },
};

type Who = 'anonymous' | 'managerAll' | 'managerNone' | 'operator' | 'mixed' | 'managerB' | 'endUser' | 'admin';
type Expected = 'login' | 'allowed' | 403 | 404;

/** Each account's role on the order the matrix addresses (order A; `mixed` again on order B below). */
const ROLE_ON_ORDER: Partial<Record<Who, readonly string[]>> = {
  managerNone: BUILT_IN_ROLES.viewer,
  operator: BUILT_IN_ROLES.operator,
  mixed: BUILT_IN_ROLES.operator,
  managerAll: BUILT_IN_ROLES.manager,
  admin: PERMISSIONS,
};
const ACCOUNT: Partial<Record<Who, readonly string[]>> = {
  managerAll: PERMISSIONS,
  managerB: PERMISSIONS,
  admin: PERMISSIONS,
};

function expected(row: Row, who: Who, roleOnOrder = ROLE_ON_ORDER[who]): Expected {
  if (who === 'anonymous') return 'login';
  if (row.for === 'end_users') return who === 'endUser' ? 'allowed' : 404;
  if (who === 'endUser') return row.for === 'everyone' ? 'allowed' : 404;
  // Webhook pages: managers' only (admins have the console's); the permission is checked before the endpoint.
  if ((row.for === 'api_managers' || row.for === 'hook_owner') && who !== 'admin')
    if (!(ACCOUNT[who] ?? []).includes('manage_api_clients')) return 403;
  if (row.for === 'inviter' || row.for === 'causer' || row.for === 'hook_owner')
    return who === 'managerAll' ? 'allowed' : 404;
  if (row.for === 'api_managers') return who !== 'admin' ? 'allowed' : 404;
  if (row.scoped) {
    if (!roleOnOrder) return 404;
    return !row.perm || roleOnOrder.includes(row.perm) ? 'allowed' : 403;
  }
  return !row.perm || (ACCOUNT[who] ?? []).includes(row.perm) ? 'allowed' : 403;
}

const portalRoutes = (t: TestApp) =>
  routeTable(t.app.locals.ctx)
    .filter((r) => r.area === 'portal')
    .map((r) => `${r.method.toUpperCase()} ${fullPath(r)}`);

/**
 * Runs every row (or those `only` keeps) as `who`, with a fresh scratch manager (invited to `orderId`
 * by `inviter`) and scratch end user, and returns the answers that differ from `want`. A POST carries
 * a valid CSRF token: it is the forged request of a user who crafts what their page does not offer.
 */
async function runMatrix(
  t: TestApp,
  w: World,
  who: Who,
  want: (row: Row) => Expected,
  options: { orderId?: number; inviter?: number; only?: (row: Row) => boolean } = {},
) {
  const account = who === 'anonymous' ? null : w[who];
  const agent = account ? await loginAgent(t.app, account.email, account.password) : request.agent(t.app);
  const token = csrfFrom((await agent.get(account ? '/account' : '/login')).text);
  const now = new Date();
  const scratchManager = await createAccount(t.db, { role: 'manager' });
  const scratchUser = await createAccount(t.db, { role: 'end_user' });
  await catalog.assignManager(t.db, scratchManager.id, options.orderId ?? w.orderA, now);
  await t
    .db('manager_orders')
    .where({ account_id: scratchManager.id })
    .update({ invited_by: options.inviter ?? w.managerAll.id });
  await catalog.assignLicenseUser(t.db, w.userLicense, scratchUser.id, 1, now);
  const invitee = await createAccount(t.db, { role: 'end_user' });
  const invitationId = await licenseUsers.insertInvitation(
    t.db,
    {
      licenseId: w.userLicense,
      accountId: invitee.id,
      maxActivations: 1,
      tokenHash: crypto.randomBytes(32).toString('hex'),
      invitedBy: null,
      expiresAt: new Date(now.getTime() + 86_400_000),
    },
    now,
  );
  const batchId = await vouchers.insertBatch(
    t.db,
    {
      orderId: options.orderId ?? w.orderA,
      policyId: w.policy,
      productId: w.product,
      createdBy: null,
      quotaCounted: false,
      count: 1,
      expiresAt: new Date(now.getTime() + 86_400_000),
    },
    now,
  );
  const hash = crypto.randomBytes(32).toString('hex');
  await vouchers.insertVouchers(
    t.db,
    batchId,
    [{ codeHash: hash, hint: 'TEST' }],
    new Date(now.getTime() + 86_400_000),
  );
  const voucherId = Number((await t.db('vouchers').where({ code_hash: hash }).first()).id);
  const [mailId] = await t.db('mail_outbox').insert({
    to_address: 'someone@example.com',
    subject: 'Your license',
    text_body: '',
    reason: 'sent',
    caused_by_account_id: w.managerAll.id,
    created_at: now,
  });
  const hookEndpoint = await createEndpoint(webhookDepsOf(t.app.locals.ctx), systemActor('matrix'), w.managerAll.id, {
    url: 'https://93.184.216.34/hook',
    description: null,
    events: ['order.created'],
  });
  const hookEvent = await webhooks.insertEvent(
    t.db,
    {
      uid: `msg_${crypto.randomBytes(8).toString('hex')}`,
      type: 'order.created',
      orderId: w.orderA,
      dedupeKey: null,
      payload: '{}',
    },
    now,
  );
  const [ssoProviderId] = await t.db('identity_providers').insert({
    customer_id: w.customer,
    kind: 'oidc',
    name: 'Matrix',
    enabled: false,
    groups_claim: 'groups',
    created_at: now,
    updated_at: now,
  });
  const [ssoDomainId] = await t.db('sso_domains').insert({
    provider_id: ssoProviderId,
    domain: `matrix-${crypto.randomBytes(4).toString('hex')}.test`,
    password_login: true,
    created_at: now,
  });
  const [ssoMappingId] = await t.db('sso_mappings').insert({
    provider_id: ssoProviderId,
    group_name: 'matrix',
    kind: 'seat',
    license_id: w.userLicense,
    created_at: now,
  });
  const scratch: Scratch = {
    ssoProviderId: Number(ssoProviderId),
    ssoDomainId: Number(ssoDomainId),
    ssoMappingId: Number(ssoMappingId),
    hookId: hookEndpoint.id,
    hookDeliveryId: await webhooks.insertDelivery(t.db, hookEvent!, hookEndpoint.id, now),
    managerId: scratchManager.id,
    userId: scratchUser.id,
    invitationId,
    voucherId,
    mailId: Number(mailId),
    tokenId: (
      await createPersonalToken(t, systemActor('test'), (await accounts.findById(t.db, w.managerAll.id))!, {
        name: 'Matrix',
        scopes: ['orders:read'],
        days: 1,
      })
    ).id,
  };
  const failures: string[] = [];
  for (const [key, row] of Object.entries(MATRIX)) {
    if (options.only && !options.only(row)) continue;
    const [method, pattern] = key.split(' ') as ['GET' | 'POST', string];
    const params = row.params?.(w, scratch) ?? {};
    const url = pattern.replace(/:(\w+)/g, (_m, name: string) => String(params[name]));
    const res = method === 'GET' ? await agent.get(url) : await agent.post(url).type('form').send({ _csrf: token });
    const wanted = want(row);
    const ok =
      wanted === 'login'
        ? res.status === 303 && res.headers.location === '/login'
        : wanted === 'allowed'
          ? [200, 303, 422].includes(res.status) && res.headers.location !== '/login'
          : res.status === wanted;
    if (!ok)
      failures.push(
        `${key} → ${res.status}${res.headers.location ? ` ${res.headers.location}` : ''}, expected ${wanted}`,
      );
  }
  return failures;
}

describe('User Portal access matrix', function () {
  this.timeout(180_000);
  let t: TestApp;
  let w: World;
  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    await t.db('settings').insert({ key: 'end_user_self_service', value: 'true', updated_at: new Date() });
  });
  after(async () => t.close());

  it('lists every User Portal route (a new route must be added to this matrix)', () => {
    assert.deepEqual([...portalRoutes(t)].sort(), Object.keys(MATRIX).sort());
  });

  const everyone: Who[] = [
    'anonymous',
    'managerNone',
    'operator',
    'mixed',
    'managerB',
    'endUser',
    'managerAll',
    'admin',
  ];
  for (const who of everyone) {
    const role = { managerNone: 'Viewer', operator: 'Operator', mixed: 'Operator', managerAll: 'Manager' }[
      who as string
    ];
    it(`as ${who}${role ? ` (${role} on the order)` : ''}`, async () => {
      assert.deepEqual(await runMatrix(t, w, who, (row) => expected(row, who)), []);
    });
  }

  it('as mixed on its other order, where its role is Manager: every order route is open to it', async () => {
    const onB = { ...w, orderA: w.orderB, licenseA: w.licenseB, deviceA: w.deviceB };
    const failures = await runMatrix(t, onB, 'mixed', (row) => expected(row, 'mixed', BUILT_IN_ROLES.manager), {
      orderId: w.orderB,
      inviter: w.mixed.id,
      only: (row) => row.scoped && (row.params === order || row.params === license),
    });
    assert.deepEqual(failures, []);
  });

  it('refuses every POST without its CSRF token, whoever sends it, and changes nothing', async () => {
    const agent = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    const before = await t.db('audit_events').count({ n: '*' }).first();
    for (const key of Object.keys(MATRIX).filter((k) => k.startsWith('POST '))) {
      const url = key
        .slice(5)
        .replace(/:(\w+)/g, (_m, name: string) =>
          String(
            { id: w.orderA, accountId: w.managerNone.id, deviceId: w.deviceA, invitationId: 1, voucherId: 1 }[name],
          ),
        );
      const res = await agent.post(url).type('form').send({ email: 'x@example.com' });
      assert.equal(res.status, 403, key);
    }
    assert.deepEqual(await t.db('audit_events').count({ n: '*' }).first(), before);
  });
});

/**
 * The cross-order takeover (docs/decisions.md, "Account ownership"): the manager of order B, with
 * manage_license_users and manage_user_credentials, names an end user of order A on one of B's
 * user-based licenses, then tries to set that account's password and log in as it.
 */
describe('User Portal access: an end user of another order cannot be taken over', function () {
  this.timeout(120_000);
  let t: TestApp;
  let w: World;
  let licenseB: number;
  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    licenseB = await catalog.insertLicense(
      t.db,
      {
        orderId: w.orderB,
        productId: w.userProduct,
        policyId: w.userPolicy,
        licenseKey: null,
        entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, maxActivations: 2 },
        startDate: new Date(),
      },
      new Date(),
    );
  });
  after(async () => t.close());

  it("assigning the victim's address only invites; the one-time password and reset link answer 404; the victim's licenses stay out of reach", async () => {
    const victim = w.endUser; // holds a license of order A only
    const before = await t.db('accounts').where({ id: victim.id }).first();
    const b = await loginAgent(t.app, w.managerB.email, w.managerB.password);
    const post = async (url: string, fields: Record<string, string>) =>
      b
        .post(url)
        .type('form')
        .send({ _csrf: csrfFrom((await b.get('/account')).text), ...fields });

    // Step 1: POST /portal/licenses/:id/users with the victim's address.
    const assigned = await post(`/portal/licenses/${licenseB}/users`, { email: victim.email, max_activations: '1' });
    assert.equal(assigned.status, 303);
    assert.equal(
      await t.db('license_user_assignments').where({ license_id: licenseB, account_id: victim.id }).first(),
      undefined,
      'not linked',
    );
    assert.ok(
      await t
        .db('license_user_invitations')
        .where({ license_id: licenseB, account_id: victim.id })
        .whereNull('accepted_at')
        .first(),
      'a pending invitation instead',
    );
    const page = await b.get(`/portal/licenses/${licenseB}`).expect(200);
    assert.ok(page.text.includes(victim.email) && page.text.includes('Invited'));
    assert.doesNotMatch(page.text, new RegExp(`/users/${victim.id}/password`), 'no credential buttons for the account');

    // Step 2: POST /portal/licenses/:id/users/:accountId/password, both modes.
    assert.equal(
      (await post(`/portal/licenses/${licenseB}/users/${victim.id}/password`, { credentials: 'password' })).status,
      404,
    );
    assert.equal(
      (await post(`/portal/licenses/${licenseB}/users/${victim.id}/password`, { credentials: 'email' })).status,
      404,
    );
    const after = await t.db('accounts').where({ id: victim.id }).first();
    assert.equal(after.password_hash, before.password_hash, 'the password did not change');
    assert.equal(
      await t.db('password_reset_tokens').where({ account_id: victim.id }).first(),
      undefined,
      'no reset link was made',
    );

    // Step 3: the victim's own password still works; nobody else's does; order A stays out of reach.
    await loginAgent(t.app, victim.email, victim.password);
    const guess = request.agent(t.app);
    const login = await guess
      .post('/login')
      .type('form')
      .send({
        _csrf: csrfFrom((await guess.get('/login')).text),
        email: victim.email,
        password: 'a-guess-of-the-manager',
      });
    assert.notEqual(login.headers.location, '/portal');
    await b.get(`/portal/licenses/${w.userLicense}`).expect(404);

    // Even once the victim accepts, the account reaches into order A: still no power over it.
    await t
      .db('license_user_invitations')
      .where({ license_id: licenseB, account_id: victim.id })
      .update({ accepted_at: new Date() });
    await catalog.assignLicenseUser(t.db, licenseB, victim.id, 1, new Date());
    assert.equal(
      (await post(`/portal/licenses/${licenseB}/users/${victim.id}/password`, { credentials: 'password' })).status,
      404,
    );
    assert.equal((await post(`/portal/licenses/${licenseB}/users/${victim.id}`, { max_activations: '5' })).status, 404);
    assert.equal(
      (await post(`/portal/licenses/${licenseB}/users/${victim.id}/delete`, { confirmed: '1' })).status,
      404,
    );
    assert.equal((await t.db('accounts').where({ id: victim.id }).first()).password_hash, before.password_hash);
  });
});
