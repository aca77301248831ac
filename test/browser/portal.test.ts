import assert from 'node:assert/strict';
import { portalWorld } from '../helpers/portal.ts';
import { axeViolations, openPage, useBrowserApp } from '../helpers/browser.ts';

describe('browser: a license manager in the User Portal', function () {
  this.timeout(90_000);
  const app = useBrowserApp();

  it('logs in, finds an order, issues 2 licenses, dispatches one by e-mail, resets a device; axe finds no violations', async () => {
    const { t, browser, url } = app;
    const w = await portalWorld(t.db);
    const { page, problems, close } = await openPage(browser);
    const checkAxe = async (label: string) => assert.deepEqual(await axeViolations(page), [], label);
    try {
      await page.goto(`${url}/login`);
      await page.getByLabel('E-mail address').fill(w.managerAll.email);
      await page.getByLabel('Password').fill(w.managerAll.password);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('heading', { name: /Welcome/ }).waitFor();
      await checkAxe('dashboard');

      await page.getByRole('link', { name: 'All orders' }).click();
      await page.getByRole('searchbox', { name: 'Search' }).fill('A-1');
      await page.getByRole('button', { name: 'Search' }).click();
      await checkAxe('orders');
      await page.getByRole('link', { name: 'A-1' }).click();
      await page.getByRole('heading', { name: 'Order A-1' }).waitFor();
      await checkAxe('order');

      await page.getByLabel('Policy').selectOption({ label: 'Acme CAD — Floating' });
      await page.getByLabel('Quantity').fill('2');
      await page.getByRole('button', { name: 'Issue licenses' }).click();
      await page.getByText('2 license(s) issued.').waitFor();
      assert.equal(
        await t
          .db('licenses')
          .where({ order_id: w.orderA, product_id: w.product })
          .count({ n: '*' })
          .first()
          .then((r) => Number(r!.n)),
        3,
      );

      await page.getByRole('link', { name: 'Dispatch licenses' }).click();
      await page.getByRole('heading', { name: /Dispatch licenses/ }).waitFor();
      await checkAxe('dispatch');
      const newest = await t
        .db('licenses')
        .where({ order_id: w.orderA, product_id: w.product })
        .orderBy('id', 'desc')
        .first();
      await page.getByLabel(`Recipient of ${newest.license_key}`).fill('engineer@globex.example');
      await page.getByRole('button', { name: 'Send the licenses' }).click();
      await page.getByText('1 license(s) sent.').waitFor();
      const mail = await t.db('mail_outbox').where({ to_address: 'engineer@globex.example' }).first();
      assert.ok(mail?.text_body.includes(newest.license_key), 'the mail with the key is in the outbox');

      await page.getByRole('link', { name: 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA' }).click();
      await page.getByRole('heading', { name: /AAAA-AAAA/ }).waitFor();
      await checkAxe('license');
      await page.getByRole('link', { name: 'Move to another device' }).click();
      await page.getByRole('heading', { name: 'Move the license to another device' }).waitFor();
      assert.ok(await page.getByText('Transfers left after this move: 2.').isVisible());
      await checkAxe('transfer');
      await page.getByRole('button', { name: 'Free the seat' }).click();
      await page.getByText('The device has been reset; its seat is free for another device.').waitFor();
      await checkAxe('license after reset');
      assert.equal((await t.db('licenses').where({ id: w.licenseA }).first()).times_activated, 0);
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });
});
