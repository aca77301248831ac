import assert from 'node:assert/strict';
import { portalWorld } from '../helpers/portal.ts';
import { axeViolations, logIn, openPage, useBrowserApp } from '../helpers/browser.ts';

/**
 * The reseller channel in a browser (docs/user-portal.md, "Delegation", "Redeemable codes"): the
 * distributor invites a new reseller to an order with a role and gives it a sub-quota; the reseller
 * sets its password from the mailed link, issues licenses and a sheet of codes within the sub-quota;
 * a signed-in end user redeems one of the codes.
 */
describe('browser: the reseller channel', function () {
  this.timeout(120_000);
  const app = useBrowserApp();

  it('a distributor invites a reseller with a role and a sub-quota; the reseller issues codes; an end user redeems one; axe finds no violations', async () => {
    const { t, browser, url } = app;
    const w = await portalWorld(t.db);
    await t.db('settings').insert({ key: 'end_user_self_service', value: 'true', updated_at: new Date() });
    const distributor = await openPage(browser);
    const reseller = await openPage(browser);
    const endUser = await openPage(browser);
    const checkAxe = async (page: typeof distributor.page, label: string) =>
      assert.deepEqual(await axeViolations(page), [], label);
    try {
      const d = distributor.page;
      await logIn(d, url, w.managerAll);
      await d.goto(`${url}/portal/orders/${w.orderA}`);
      await d.getByLabel('E-mail address of the manager').fill('rosa@reseller.example');
      await d.getByLabel('Name', { exact: true }).fill('Rosa Reseller');
      await d.getByLabel('Role', { exact: true }).selectOption({ label: 'Manager' });
      await d.getByRole('button', { name: 'Invite' }).click();
      await d.getByText('The manager has been added to the order.').waitFor();
      await checkAxe(d, 'order with managers');
      const rosa = await t.db('accounts').where({ email: 'rosa@reseller.example' }).first();
      assert.equal(rosa.role, 'manager');

      await d.getByRole('link', { name: 'My team' }).click();
      await d.getByRole('heading', { name: 'My team' }).waitFor();
      await d.getByLabel('Product').selectOption({ label: 'Acme CAD' });
      await d.getByLabel('Sub-quota').fill('5');
      await d.getByRole('button', { name: 'Set sub-quota' }).click();
      await d.getByText('Sub-quota saved.').waitFor();
      await checkAxe(d, 'my team');
      const sub = await t.db('manager_quotas').where({ account_id: rosa.id, product_id: w.product }).first();
      assert.deepEqual([sub.quota, sub.granted_by], [5, w.managerAll.id]);

      // The reseller chooses a password through the mailed link, then works the order.
      const mail = await t.db('mail_outbox').where({ to_address: 'rosa@reseller.example' }).first();
      const link = /http:\/\/[^\s/]+(\/password\/reset\/[\w-]+)/.exec(mail.text_body)![1]!;
      const r = reseller.page;
      await r.goto(`${url}${link}`);
      await r.getByLabel('New password').fill('rosa sells many seats');
      await r.getByLabel('Repeat the password').fill('rosa sells many seats');
      // An invitation link signs the new manager in once the password is saved (the welcome page).
      await r.getByRole('button', { name: 'Save and sign in' }).click();
      await r.getByRole('heading', { name: /Welcome/ }).waitFor();
      await r.goto(`${url}/portal/orders/${w.orderA}`);
      await r.getByRole('heading', { name: 'Order A-1' }).waitFor();
      assert.equal(await r.getByText(w.managerAll.email).count(), 0, 'the distributor is above: not listed');
      await r.getByLabel('Policy').selectOption({ label: 'Acme CAD — Floating' });
      await r.getByLabel('Quantity').fill('2');
      await r.getByRole('button', { name: 'Issue licenses' }).click();
      await r.getByText('2 license(s) issued.').waitFor();

      // The rest of the sub-quota as a sheet of codes: 4 would exceed it, 3 fit.
      await r.getByRole('link', { name: 'Redeemable codes' }).click();
      await r.getByLabel('Policy').selectOption({ label: 'Acme CAD — Floating' });
      await r.getByLabel('Number of codes').fill('4');
      await r.getByRole('button', { name: 'Generate codes' }).click();
      await r.getByText('This would exceed your issue quota').first().waitFor();
      await r.getByLabel('Number of codes').fill('3');
      await r.getByRole('button', { name: 'Generate codes' }).click();
      await r.getByRole('heading', { name: '3 new codes' }).waitFor();
      await checkAxe(r, 'sheet of codes');
      const code = (await r.locator('.code-list code').first().textContent())!.trim();
      await r.getByRole('link', { name: 'Printable page with QR codes' }).click();
      assert.equal(await r.locator('.voucher-card img').count(), 3);
      assert.equal(
        (await t.db('manager_quotas').where({ account_id: rosa.id, product_id: w.product }).first()).issued,
        5,
        'the sub-quota is used up: 2 licenses and 3 codes',
      );

      // A signed-in end user redeems one code; the reseller sees who redeemed it.
      const e = endUser.page;
      await logIn(e, url, w.endUser);
      await e.goto(`${url}/redeem`);
      await e.getByLabel('License code').fill(code.toLowerCase().replace(/-/g, ' '));
      await e.getByRole('button', { name: 'Redeem', exact: true }).click();
      await e.getByText('Code redeemed: your Acme CAD license is in My licenses.').waitFor();
      await r.goto(`${url}/portal/orders/${w.orderA}/vouchers`);
      await r.getByText(w.endUser.email).first().waitFor();
      await checkAxe(r, 'codes with a redemption');
      assert.equal(
        await t
          .db('vouchers')
          .whereNotNull('redeemed_at')
          .count({ n: '*' })
          .first()
          .then((x) => Number(x!.n)),
        1,
      );
      assert.deepEqual([...distributor.problems, ...reseller.problems, ...endUser.problems], []);
    } finally {
      await distributor.close();
      await reseller.close();
      await endUser.close();
    }
  });
});
