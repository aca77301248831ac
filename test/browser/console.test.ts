import assert from 'node:assert/strict';
import { createAccount } from '../helpers/app.ts';
import { axeViolations, openPage, useBrowserApp } from '../helpers/browser.ts';
import * as catalog from '../../app/models/catalog.ts';

describe('browser: the vendor console', function () {
  this.timeout(90_000);
  const app = useBrowserApp();

  it('an admin issues licenses into an order and disables one; axe finds no violations on the pages visited', async () => {
    const { t, browser, url } = app;
    const now = new Date();
    const product = await catalog.insertProduct(
      t.db,
      { name: 'Acme CAD', code: 'cad', authorizationMethod: 'key' },
      now,
    );
    await catalog.insertFeature(t.db, { productId: product, code: 'pdf', name: 'PDF export', type: 'activation' }, now);
    await catalog.insertPolicy(
      t.db,
      {
        productId: product,
        name: 'Standard',
        isDefault: true,
        entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, maxActivations: 3 },
      },
      now,
    );
    const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Globex' }, now);
    const order = await catalog.insertOrder(t.db, { orderRef: 'ORD-42', customerId: customer }, now);
    const admin = await createAccount(t.db, { role: 'admin' });

    const { page, problems, close } = await openPage(browser);
    const checkAxe = async (label: string) => assert.deepEqual(await axeViolations(page), [], label);
    try {
      await page.goto(`${url}/login`);
      await page.getByLabel('E-mail address').fill(admin.email);
      await page.getByLabel('Password').fill(admin.password);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('heading', { name: 'Vendor console' }).waitFor();
      await checkAxe('console dashboard');

      await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Products' }).click();
      await page.getByRole('heading', { name: 'Products' }).waitFor();
      await checkAxe('products');
      await page.getByRole('link', { name: 'Acme CAD' }).click();
      await page.getByRole('heading', { name: 'Acme CAD' }).waitFor();
      await checkAxe('product');
      await page.getByRole('link', { name: 'Standard' }).click();
      await page.getByRole('heading', { name: /Standard/ }).waitFor();
      await checkAxe('policy');
      await page.getByRole('link', { name: 'Edit' }).click();
      await page.getByRole('heading', { name: /Edit policy/ }).waitFor();
      await checkAxe('policy form');

      await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Orders' }).click();
      await page.getByRole('link', { name: 'ORD-42' }).click();
      await page.getByRole('heading', { name: 'Order ORD-42' }).waitFor();
      await checkAxe('order');

      // Bad input first: the form comes back with the error next to the field.
      await page.getByLabel('Quantity').fill('0');
      await page.getByRole('button', { name: 'Issue licenses' }).click();
      await page.getByText('This number is out of the allowed range.').waitFor();
      await checkAxe('order with a field error');

      await page.getByLabel('Policy').selectOption({ label: 'Acme CAD — Standard (Default)' });
      await page.getByLabel('Quantity').fill('3');
      await page.getByRole('button', { name: 'Issue licenses' }).click();
      await page.getByText('3 licenses issued.').waitFor();
      assert.equal(await page.locator('table code').count(), 3);

      await page.locator('table a').first().click();
      await page.getByRole('heading', { name: /Inactive/ }).waitFor();
      await checkAxe('license');
      await page.getByRole('button', { name: 'Disable' }).click();
      // It asks first (docs/console.md, "Actions that ask first"): confirm in the dialog.
      const dialog = page.getByRole('dialog', { name: /^Disable license/ });
      await dialog.waitFor();
      await checkAxe('disable dialog');
      await dialog.getByRole('button', { name: 'Disable' }).click();
      await page.getByText('The license has been disabled.').waitFor();
      assert.ok(await page.getByRole('button', { name: 'Enable' }).isVisible());
      await checkAxe('disabled license');

      const licenses = await t.db('licenses').where({ order_id: order }).orderBy('id');
      assert.equal(licenses.length, 3);
      assert.equal(licenses.filter((l: { enabled: unknown }) => !Number(l.enabled)).length, 1);

      await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Customers' }).click();
      await page.getByRole('heading', { name: 'Customers' }).waitFor();
      await checkAxe('customers');
      // Another section: its tab first (it opens the section's first page), then the page.
      const nav = page.getByRole('navigation', { name: 'Console sections' });
      await nav.getByRole('link', { name: 'People' }).click();
      await page.getByRole('heading', { name: 'License users' }).waitFor();
      await nav.getByRole('link', { name: 'Managers' }).click();
      await page.getByRole('link', { name: 'Invite manager' }).click();
      await page.getByRole('heading', { name: 'Invite manager' }).waitFor();
      await checkAxe('invite manager');
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });
});
