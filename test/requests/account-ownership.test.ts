import assert from 'node:assert/strict';
import request from 'supertest';
import {
  adminAgent,
  auditOf,
  buildTestApp,
  createAccount,
  csrfFrom,
  loginAgent,
  type TestApp,
} from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import * as catalog from '../../app/models/catalog.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;
type Agent = Awaited<ReturnType<typeof loginAgent>>;

/**
 * Account ownership (docs/decisions.md): a manager acts only on end-user accounts whose every license
 * lies in their orders; any other existing account is invited, with one neutral answer for all.
 */
describe('account ownership and license invitations', function () {
  this.timeout(120_000);
  let t: TestApp;
  let w: World;
  let b: Agent;
  const now = () => t.clock.now();

  const userLicenseIn = (orderId: number) =>
    catalog.insertLicense(
      t.db,
      {
        orderId,
        productId: w.userProduct,
        policyId: w.userPolicy,
        licenseKey: null,
        entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, maxActivations: 2 },
        startDate: now(),
      },
      now(),
    );
  const post = async (agent: Agent, url: string, fields: Record<string, string> = {}) =>
    agent
      .post(url)
      .type('form')
      .send({ _csrf: csrfFrom((await agent.get('/account')).text), ...fields });
  const mailsTo = (to: string) => t.db('mail_outbox').where({ to_address: to }).orderBy('id');
  const linkIn = (text: string) => /http:\/\/portico\.test(\/invitations\/[\w-]+)/.exec(text)![1]!;
  /** The flash shown after a redirect. */
  const flashAfter = async (agent: Agent, res: { headers: Record<string, string> }) =>
    /class="flash[^"]*"[^>]*>([\s\S]*?)<\//.exec((await agent.get(res.headers.location!)).text)?.[1]?.trim();
  /** An end user who holds a license of order A only. */
  const endUserOfA = async () => {
    const user = await createAccount(t.db, { role: 'end_user' });
    await catalog.assignLicenseUser(t.db, w.userLicense, user.id, 1, now());
    return user;
  };

  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    b = await loginAgent(t.app, w.managerB.email, w.managerB.password);
  });
  after(async () => t.close());

  it('invites an end user of another order: mail, confirm page, accept without login, assigned and audited; the used link is 410', async () => {
    const licenseB = await userLicenseIn(w.orderB);
    const user = await endUserOfA();
    const res = await post(b, `/portal/licenses/${licenseB}/users`, { email: user.email, max_activations: '2' });
    assert.equal(res.status, 303);
    const mails = await mailsTo(user.email);
    assert.equal(mails.length, 1);
    assert.match(mails[0].subject, /Acme Analytics/);
    assert.match(mails[0].text_body, /Other Order/, 'names who invites');
    const link = linkIn(mails[0].text_body);
    const stored = await t.db('license_user_invitations').where({ license_id: licenseB, account_id: user.id }).first();
    assert.notEqual(stored.token_hash, link.split('/').pop(), 'only a hash of the token is stored');
    assert.equal(stored.invited_by_account_id, w.managerB.id);
    assert.ok(new Date(stored.expires_at).getTime() - now().getTime() >= 7 * 86_400_000 - 1000);

    const anonymous = request.agent(t.app);
    const page = await anonymous.get(link).expect(200);
    assert.match(page.text, /Accept the license/);
    assert.equal(page.headers['referrer-policy'], 'no-referrer');
    await anonymous.post(link).type('form').send({}).expect(403); // CSRF
    const accepted = await anonymous
      .post(link)
      .type('form')
      .send({ _csrf: csrfFrom(page.text) });
    assert.equal(accepted.status, 303);
    const row = await t.db('license_user_assignments').where({ license_id: licenseB, account_id: user.id }).first();
    assert.equal(row.max_activations, 2);
    assert.ok((await t.db('license_user_invitations').where({ id: stored.id }).first()).accepted_at);
    const accept = (await auditOf(t.db, 'license', licenseB)).find(
      (e) => e.action === 'license_user.invitation_accepted',
    )!;
    assert.equal(accept.actor, user.id);
    assert.equal(accept.after.accountId, user.id);

    await anonymous.get(link).expect(410);
    const again = await anonymous
      .post(link)
      .type('form')
      .send({ _csrf: csrfFrom((await anonymous.get('/login')).text) });
    assert.equal(again.status, 410);
    assert.match(again.text, /already been accepted, it was withdrawn, or it has expired/);

    // The user now has licenses in A and B: manager B lists them but has no power over the account.
    const list = await b.get(`/portal/licenses/${licenseB}`).expect(200);
    assert.ok(list.text.includes(user.email));
    assert.match(list.text, /Shared account/);
    assert.doesNotMatch(list.text, new RegExp(`/users/${user.id}/(password|delete)`));
    assert.equal(
      (await post(b, `/portal/licenses/${licenseB}/users/${user.id}/password`, { credentials: 'password' })).status,
      404,
    );
  });

  it('an expired link is 410 and assigns nothing', async () => {
    const licenseB = await userLicenseIn(w.orderB);
    const user = await endUserOfA();
    await post(b, `/portal/licenses/${licenseB}/users`, { email: user.email, max_activations: '1' });
    const link = linkIn((await mailsTo(user.email))[0].text_body);
    // Seven days pass for the invitation (moving the app's clock would also end the manager's session).
    const invitation = t.db('license_user_invitations').where({ license_id: licenseB, account_id: user.id });
    await invitation.clone().update({ expires_at: new Date(now().getTime() - 60_000) });
    const anonymous = request.agent(t.app);
    const page = await anonymous.get(link).expect(410);
    assert.match(page.text, /expired/);
    await anonymous
      .post(link)
      .type('form')
      .send({ _csrf: csrfFrom((await anonymous.get('/login')).text) })
      .expect(410);
    assert.equal(
      await t.db('license_user_assignments').where({ license_id: licenseB, account_id: user.id }).first(),
      undefined,
    );
    assert.equal((await invitation.clone().first()).accepted_at, null);
    assert.doesNotMatch(
      (await b.get(`/portal/licenses/${licenseB}`)).text,
      /Invited/,
      'an expired invitation is no longer listed',
    );
  });

  it("the manager withdraws a pending invitation: its link is 410; another order's manager cannot withdraw it", async () => {
    const licenseB = await userLicenseIn(w.orderB);
    const user = await endUserOfA();
    await post(b, `/portal/licenses/${licenseB}/users`, { email: user.email, max_activations: '1' });
    const link = linkIn((await mailsTo(user.email))[0].text_body);
    const invitation = await t
      .db('license_user_invitations')
      .where({ license_id: licenseB, account_id: user.id })
      .first();
    const page = await b.get(`/portal/licenses/${licenseB}`).expect(200);
    assert.match(page.text, new RegExp(`/licenses/${licenseB}/invitations/${invitation.id}/delete`));
    const a = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    assert.equal(
      (await post(a, `/portal/licenses/${licenseB}/invitations/${invitation.id}/delete`, { confirmed: '1' })).status,
      404,
    );
    assert.equal(
      (await post(b, `/portal/licenses/${licenseB}/invitations/${invitation.id}/delete`, { confirmed: '1' })).status,
      303,
    );
    assert.equal(await t.db('license_user_invitations').where({ id: invitation.id }).first(), undefined);
    await request(t.app).get(link).expect(410);
    assert.ok((await auditOf(t.db, 'license', licenseB)).some((e) => e.action === 'license_user.invitation_withdrawn'));
    assert.equal(
      (await post(b, `/portal/licenses/${licenseB}/invitations/${invitation.id}/delete`, { confirmed: '1' })).status,
      404,
      'gone',
    );
  });

  it('the same answer for an admin, a manager, a disabled account, an end user of another order and an unknown address; mail only to those who can accept', async () => {
    const licenseB = await userLicenseIn(w.orderB);
    const disabled = await createAccount(t.db, { role: 'end_user' });
    await t.db('accounts').where({ id: disabled.id }).update({ disabled: true });
    const outside = await endUserOfA();
    const addresses = {
      admin: w.admin.email,
      manager: w.managerAll.email,
      disabled: disabled.email,
      outside: outside.email,
      unknown: `new-${Date.now()}@example.com`,
    };
    const answers: Record<string, { status: number; location: string; flash: string | undefined }> = {};
    for (const [kind, email] of Object.entries(addresses)) {
      const res = await post(b, `/portal/licenses/${licenseB}/users`, { email, max_activations: '1' });
      answers[kind] = { status: res.status, location: res.headers.location!, flash: await flashAfter(b, res) };
    }
    const first = answers.admin!;
    for (const [kind, a] of Object.entries(answers)) {
      assert.equal(a.status, 303, kind);
      assert.equal(a.location, first.location, kind);
      assert.equal(a.flash, first.flash, kind);
    }
    assert.match(first.flash!, /If this address can be given this license/);
    for (const kind of ['admin', 'manager', 'disabled'] as const)
      assert.equal((await mailsTo(addresses[kind])).length, 0, `no mail to the ${kind}`);
    assert.equal((await mailsTo(addresses.outside)).length, 1);
    assert.equal((await mailsTo(addresses.unknown)).length, 1, 'a new account gets its set-password link, as before');
    // Nobody but the new account is assigned; the rest are listed alike, as invited.
    const assigned = (await t.db('license_user_assignments').where({ license_id: licenseB }).select('account_id')).map(
      (r: { account_id: number }) => Number(r.account_id),
    );
    const created = await t.db('accounts').where({ email: addresses.unknown }).first();
    assert.deepEqual(assigned, [created.id]);
    assert.equal((await t.db('accounts').where({ id: w.admin.id }).first()).role, 'admin');
    const page = (await b.get(`/portal/licenses/${licenseB}`).expect(200)).text;
    for (const kind of ['admin', 'manager', 'disabled', 'outside'] as const) {
      const row = new RegExp(
        `<td[^>]*>${addresses[kind].replace(/[.+]/g, '\\$&')} <span class="status status-pending">Invited</span></td>`,
      );
      assert.match(page, row, kind);
    }
    // The portal issue form takes the same path: the victim's address gets a license of B only by invitation.
    const issued = await post(b, `/portal/orders/${w.orderB}/licenses`, {
      policy_id: String(w.userPolicy),
      emails: outside.email,
    });
    assert.equal(issued.status, 303);
    assert.equal(
      (await t.db('license_user_assignments').where({ account_id: outside.id }).select('license_id')).length,
      1,
      'still only the license of order A',
    );
    assert.equal((await mailsTo(outside.email)).length, 2);
    const viaIssue = await post(b, `/portal/orders/${w.orderB}/licenses`, {
      policy_id: String(w.userPolicy),
      emails: w.admin.email,
    });
    assert.equal(viaIssue.status, 303, 'an admin address is not a form error that names its role');
  });

  it('a manager whose orders hold every license of the account still manages its credentials, limit and assignment', async () => {
    const both = await createAccount(t.db, { role: 'manager' });
    await catalog.assignManager(t.db, both.id, w.orderA, now());
    await catalog.assignManager(t.db, both.id, w.orderB, now());
    await catalog.grantPermissions(t.db, both.id, ['manage_license_users', 'manage_user_credentials']);
    const licenseB = await userLicenseIn(w.orderB);
    const user = await endUserOfA();
    await catalog.assignLicenseUser(t.db, licenseB, user.id, 1, now());
    const m = await loginAgent(t.app, both.email, both.password);
    const page = await m.get(`/portal/licenses/${licenseB}`).expect(200);
    assert.match(page.text, new RegExp(`/users/${user.id}/password`));
    const shown = await post(m, `/portal/licenses/${licenseB}/users/${user.id}/password`, { credentials: 'password' });
    assert.equal(shown.status, 200);
    assert.match(shown.text, /class="one-time"><code>[^<]+<\/code>/);
    assert.equal(
      (await post(m, `/portal/licenses/${licenseB}/users/${user.id}`, { max_activations: '3' })).status,
      303,
    );
    // An existing account of their own orders is assigned directly (no invitation).
    const other = await userLicenseIn(w.orderA);
    assert.equal(
      (await post(m, `/portal/licenses/${other}/users`, { email: user.email, max_activations: '1' })).status,
      303,
    );
    assert.ok(await t.db('license_user_assignments').where({ license_id: other, account_id: user.id }).first());
    assert.equal(await t.db('license_user_invitations').where({ account_id: user.id }).first(), undefined);
    assert.equal(
      (await post(m, `/portal/licenses/${licenseB}/users/${user.id}/delete`, { confirmed: '1' })).status,
      303,
    );
  });

  it('admins are not bound: the console and the portal assign any end user directly and reset their password', async () => {
    const { agent: admin } = await adminAgent(t);
    const licenseB = await userLicenseIn(w.orderB);
    const user = await endUserOfA();
    assert.equal(
      (await post(admin, `/admin/licenses/${licenseB}/users`, { email: user.email, max_activations: '1' })).status,
      303,
    );
    assert.ok(await t.db('license_user_assignments').where({ license_id: licenseB, account_id: user.id }).first());
    const shown = await post(admin, `/admin/license-users/${user.id}/password`, { credentials: 'password' });
    assert.equal(shown.status, 200);
    assert.match(shown.text, /class="one-time"/);
    const portalLicense = await userLicenseIn(w.orderB);
    const viaPortal = await post(admin, `/portal/licenses/${portalLicense}/users`, {
      email: user.email,
      max_activations: '1',
    });
    assert.equal(viaPortal.status, 303);
    assert.match((await flashAfter(admin, viaPortal))!, /has been assigned/);
    assert.ok(await t.db('license_user_assignments').where({ license_id: portalLicense, account_id: user.id }).first());
    assert.equal(
      (await post(admin, `/portal/licenses/${portalLicense}/users/${user.id}/password`, { credentials: 'password' }))
        .status,
      200,
    );
    assert.equal(await t.db('license_user_invitations').where({ account_id: user.id }).first(), undefined);
  });
});
