import assert from 'node:assert/strict';
import { portalWorld } from '../helpers/portal.ts';
import { axeViolations, logIn, openPage, useBrowserApp } from '../helpers/browser.ts';

describe('browser: a license manager in the User Portal', function () {
  this.timeout(90_000);
  const app = useBrowserApp();

  it('logs in, finds an order, issues 2 licenses, dispatches one by e-mail, resets a device; axe finds no violations', async () => {
    const { t, browser, url } = app;
    const w = await portalWorld(t.db);
    const { page, problems, close } = await openPage(browser);
    const checkAxe = async (label: string) => assert.deepEqual(await axeViolations(page), [], label);
    try {
      await logIn(page, url, w.managerAll);
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
      await page.getByText('2 licenses issued.').waitFor();
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
      await page.getByText('1 license queued for e-mail').waitFor();
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

describe('browser: redeemable codes, from the manager to the end user', function () {
  this.timeout(90_000);
  const app = useBrowserApp();

  it('a manager generates codes and opens the printable page; a visitor redeems one and creates an account; axe finds no violations', async () => {
    const { t, browser, url } = app;
    const w = await portalWorld(t.db);
    await t.db('settings').insert({ key: 'end_user_self_service', value: 'true', updated_at: new Date() });
    const { page, problems, close } = await openPage(browser);
    const checkAxe = async (label: string) => assert.deepEqual(await axeViolations(page), [], label);
    try {
      await logIn(page, url, w.managerAll);
      await page.goto(`${url}/portal/orders/${w.orderA}`);
      await page.getByRole('link', { name: 'Redeemable codes' }).click();
      await page.getByRole('heading', { name: 'Redeemable codes of order A-1' }).waitFor();
      await checkAxe('codes page');
      await page.getByLabel('Policy').selectOption({ label: 'Acme CAD — Floating' });
      await page.getByLabel('Number of codes').fill('2');
      await page.getByRole('button', { name: 'Generate codes' }).click();
      await page.getByRole('heading', { name: '2 new codes' }).waitFor();
      await checkAxe('new codes');
      const code = (await page.locator('.code-list code').first().textContent())!.trim();
      await page.getByRole('link', { name: 'Printable page with QR codes' }).click();
      await page.getByRole('heading', { name: 'License codes for Acme CAD' }).waitFor();
      assert.equal(await page.locator('.voucher-card img').count(), 2);
      await checkAxe('printable page');
      await page.getByRole('button', { name: 'Log out' }).click();

      await page.goto(`${url}/redeem?code=${encodeURIComponent(code)}`);
      await page.getByRole('heading', { name: 'Redeem a license code' }).waitFor();
      await checkAxe('redeem page');
      assert.equal(await page.getByLabel('License code').inputValue(), code);
      await page.getByLabel('Name').fill('Erin Enduser');
      await page.getByLabel('E-mail address').fill('erin@globex.example');
      await page.getByLabel('Password', { exact: true }).fill('a quite long passphrase 42');
      await page.getByLabel('Repeat the password').fill('a quite long passphrase 42');
      await page.getByRole('button', { name: 'Create account and redeem' }).click();
      await page.getByText('Code redeemed: your Acme CAD license is in My licenses.').waitFor();
      await checkAxe('my licenses');
      const key = (
        await t
          .db('vouchers')
          .whereNotNull('license_id')
          .join('licenses', 'licenses.id', 'vouchers.license_id')
          .first('licenses.license_key')
      ).license_key;
      assert.ok(await page.getByText(key).isVisible(), 'the license key is under My licenses');
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });
});
