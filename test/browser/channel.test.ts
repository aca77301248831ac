import assert from 'node:assert/strict';
import { portalWorld } from '../helpers/portal.ts';
import { axeViolations, openPage, useBrowserApp } from '../helpers/browser.ts';

/**
 * The reseller channel in a browser (docs/user-portal.md, "Delegation"): the distributor invites a
 * new reseller to an order with a role, gives it a sub-quota; the reseller sets its password from
 * the mailed link and sees the order with that role.
 */
describe('browser: the reseller channel', function () {
  this.timeout(120_000);
  const app = useBrowserApp();

  it('a distributor invites a reseller with a role and a sub-quota; the reseller joins and works the order; axe finds no violations', async () => {
    const { t, browser, url } = app;
    const w = await portalWorld(t.db);
    const distributor = await openPage(browser);
    const reseller = await openPage(browser);
    const checkAxe = async (page: typeof distributor.page, label: string) =>
      assert.deepEqual(await axeViolations(page), [], label);
    const login = async (page: typeof distributor.page, email: string, password: string) => {
      await page.goto(`${url}/login`);
      await page.getByLabel('E-mail address').fill(email);
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('heading', { name: /Welcome/ }).waitFor();
    };
    try {
      const d = distributor.page;
      await login(d, w.managerAll.email, w.managerAll.password);
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
      await d.getByLabel('Sub-quota').fill('3');
      await d.getByRole('button', { name: 'Set sub-quota' }).click();
      await d.getByText('Sub-quota saved.').waitFor();
      await checkAxe(d, 'my team');
      const sub = await t.db('manager_quotas').where({ account_id: rosa.id, product_id: w.product }).first();
      assert.deepEqual([sub.quota, sub.granted_by], [3, w.managerAll.id]);

      // The reseller chooses a password through the mailed link, then works the order.
      const mail = await t.db('mail_outbox').where({ to_address: 'rosa@reseller.example' }).first();
      const link = /http:\/\/[^\s/]+(\/password\/reset\/[\w-]+)/.exec(mail.text_body)![1]!;
      const r = reseller.page;
      await r.goto(`${url}${link}`);
      await r.getByLabel('New password').fill('rosa sells many seats');
      await r.getByLabel('Repeat the password').fill('rosa sells many seats');
      await r.getByRole('button', { name: 'Save the new password' }).click();
      await login(r, 'rosa@reseller.example', 'rosa sells many seats');
      await r.goto(`${url}/portal/orders/${w.orderA}`);
      await r.getByRole('heading', { name: 'Order A-1' }).waitFor();
      assert.equal(await r.getByText(w.managerAll.email).count(), 0, 'the distributor is above: not listed');
      await r.getByLabel('Policy').selectOption({ label: 'Acme CAD — Floating' });
      await r.getByLabel('Quantity').fill('3');
      await r.getByRole('button', { name: 'Issue licenses' }).click();
      await r.getByText('3 license(s) issued.').waitFor();
      assert.equal(
        (await t.db('manager_quotas').where({ account_id: rosa.id, product_id: w.product }).first()).issued,
        3,
      );
      assert.deepEqual([...distributor.problems, ...reseller.problems], []);
    } finally {
      await distributor.close();
      await reseller.close();
    }
  });
});
