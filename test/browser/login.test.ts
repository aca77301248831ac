import assert from 'node:assert/strict';
import { createAccount } from '../helpers/app.ts';
import { axeViolations, openPage, useBrowserApp } from '../helpers/browser.ts';
import * as catalog from '../../app/models/catalog.ts';

describe('browser: log in through the real form', function () {
  this.timeout(60_000);
  const app = useBrowserApp();

  it('a manager logs in and sees the dashboard; axe finds no violations; no CSP errors', async () => {
    const { t, browser, url } = app;
    const now = new Date();
    const manager = await createAccount(t.db, { role: 'manager', name: 'Mia Manager' });
    const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Umbrella Corp' }, now);
    const order = await catalog.insertOrder(t.db, { orderRef: 'ORD-77', customerId: customer }, now);
    await catalog.assignManager(t.db, manager.id, order, now);

    const { page, problems, close } = await openPage(browser);
    try {
      await page.goto(`${url}/portal`);
      assert.equal(new URL(page.url()).pathname, '/login', 'anonymous visitors land on the login page');
      assert.deepEqual(await axeViolations(page), [], 'login page');

      await page.getByLabel('E-mail address').fill(manager.email);
      await page.getByLabel('Password').fill('wrong password');
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByText('The e-mail address or password is not correct.').waitFor();
      assert.deepEqual(await axeViolations(page), [], 'login page with an error');

      await page.getByLabel('Password').fill(manager.password);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('heading', { name: 'Welcome, Mia Manager' }).waitFor();
      assert.equal(new URL(page.url()).pathname, '/portal');
      assert.ok(await page.getByRole('cell', { name: 'ORD-77' }).isVisible());
      assert.deepEqual(await axeViolations(page), [], 'dashboard');

      await page.getByLabel('Language').selectOption('de');
      await page.getByRole('button', { name: 'Change' }).click();
      await page.getByRole('heading', { name: 'Willkommen, Mia Manager' }).waitFor();
      assert.deepEqual(await axeViolations(page), [], 'dashboard in German');
      assert.deepEqual(problems, [], 'no CSP violations or script errors');
    } finally {
      await close();
    }
  });

  it('an admin reaches the console dashboard; axe finds no violations', async () => {
    const { t, browser, url } = app;
    const admin = await createAccount(t.db, { role: 'admin' });
    const { page, problems, close } = await openPage(browser);
    try {
      await page.goto(`${url}/login`);
      await page.getByLabel('E-mail address').fill(admin.email);
      await page.getByLabel('Password').fill(admin.password);
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: 'Vendor console' }).waitFor();
      assert.deepEqual(await axeViolations(page), [], 'console');
      await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'System' }).click();
      await page
        .getByRole('navigation', { name: 'Console sections' })
        .getByRole('link', { name: 'Mail outbox' })
        .click();
      await page.getByRole('heading', { name: 'Mail outbox' }).waitFor();
      assert.deepEqual(await axeViolations(page), [], 'outbox');
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });
});
