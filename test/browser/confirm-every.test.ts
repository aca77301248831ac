import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { portalWorld } from '../helpers/portal.ts';
import { logIn, openPage, useBrowserApp } from '../helpers/browser.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;

/** The tables an irreversible action of the portal or the console changes. */
const WATCHED = [
  'licenses',
  'devices',
  'license_blacklist',
  'license_user_assignments',
  'manager_orders',
  'manager_quotas',
  'products',
  'features',
  'customers',
  'orders',
  'roles',
  'signing_keys',
  'brandings',
  'vouchers',
];

/**
 * Every form marked data-confirm on the pages where each role meets irreversible actions: clicking
 * its button opens the dialog with a question in words (never a translation key), Escape closes it,
 * and after all of them nothing in the watched tables has changed. The blacklist test
 * (confirm.test.ts) follows one action through to the end; this one sweeps every question the pages
 * offer (test/requests/confirm.test.ts checks that each action's POST asks when the flag is missing).
 */
describe('browser: every irreversible action of each role asks first', function () {
  this.timeout(180_000);
  const app = useBrowserApp();
  let w: World;

  const snapshot = async () =>
    JSON.stringify(await Promise.all(WATCHED.map((table) => app.t.db(table).select('*').orderBy(app.t.db.raw('1')))));

  /** Opens each confirmable form's dialog on the page and cancels it; returns the questions asked. */
  async function sweep(page: Page, url: string): Promise<string[]> {
    await page.goto(url);
    const forms = page.locator('form[data-confirm]');
    const questions: string[] = [];
    const n = await forms.count();
    for (let i = 0; i < n; i++) {
      await forms.nth(i).locator('button').first().click();
      const dialog = page.getByRole('dialog');
      await dialog.waitFor();
      const title = ((await dialog.locator('h2').textContent()) ?? '').trim();
      const text = ((await dialog.locator('p').textContent()) ?? '').trim();
      assert.ok(title && text, `a question and what will happen, on ${url} (form ${i + 1})`);
      assert.doesNotMatch(`${title} ${text}`, /\bconfirm\.|\{\{/, `words, not keys, on ${url}`);
      questions.push(title);
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'hidden' });
    }
    return questions;
  }

  before(async () => {
    if (!app.t) return;
    w = await portalWorld(app.t.db);
    // Something of every kind to remove: a branding, a voucher-free custom role.
    await app.t
      .db('roles')
      .insert({ name: 'Temporary role', builtin: null, created_at: new Date(), updated_at: new Date() });
    await app.t.db('brandings').insert({
      name: 'Reseller look',
      display_name: 'Reseller portal',
      primary_color: '#1f4e79',
      accent_color: '#d9822b',
      default_language: 'en',
      created_at: new Date(),
      updated_at: new Date(),
    });
  });

  it('a manager: license pages and the order page', async () => {
    const { browser, url } = app;
    const { page, problems, close } = await openPage(browser);
    try {
      const before = await snapshot();
      await logIn(page, url, w.managerAll);
      const asked = [
        ...(await sweep(page, `${url}/portal/licenses/${w.licenseA}`)),
        ...(await sweep(page, `${url}/portal/licenses/${w.userLicense}`)),
        ...(await sweep(page, `${url}/portal/orders/${w.orderA}`)),
      ];
      for (const q of [/^Blacklist machine HW-A/, /^Disable license/, /^Reset all devices/, /^Remove .* from license/])
        assert.ok(
          asked.some((a) => q.test(a)),
          `${q} among: ${asked.join(' | ')}`,
        );
      assert.equal(await snapshot(), before, 'cancelled questions change nothing');
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });

  it('the vendor: console pages of licenses, products, customers, orders, roles, brandings, keys', async () => {
    const { browser, url, t } = app;
    const { page, problems, close } = await openPage(browser);
    try {
      await logIn(page, url, w.admin);
      const role = await t.db('roles').where({ name: 'Temporary role' }).first();
      const branding = await t.db('brandings').where({ name: 'Reseller look' }).first();
      // A batch of codes (through the console's own form), for its void and void-the-rest buttons.
      await page.goto(`${url}/admin/orders/${w.orderA}/vouchers`);
      await page.getByLabel('Number of codes').fill('2');
      await page.getByRole('button', { name: 'Generate codes' }).click();
      await page.waitForURL(`${url}/admin/orders/${w.orderA}/vouchers`);
      const batch = await t.db('voucher_batches').orderBy('id', 'desc').first();
      const before = await snapshot();
      const pages = [
        `/admin/vouchers/${batch.id}`,
        `/admin/licenses/${w.licenseA}`,
        `/admin/licenses/${w.userLicense}`,
        `/admin/products/${w.product}`,
        `/admin/managers/${w.managerAll.id}`,
        `/admin/orders/${w.orderA}`,
        '/admin/roles',
        `/admin/brandings/${branding.id}`,
        '/admin/keys',
      ];
      const asked: string[] = [];
      for (const p of pages) asked.push(...(await sweep(page, `${url}${p}`)));
      assert.ok(role, 'the custom role exists');
      assert.ok(asked.length >= 8, `questions asked: ${asked.join(' | ')}`);
      for (const q of [
        /^Blacklist machine HW-A/,
        /^Disable license/,
        /^Delete/,
        /^Void code …/,
        /^Void the 2 unused codes/,
      ])
        assert.ok(
          asked.some((a) => q.test(a)),
          `${q} among: ${asked.join(' | ')}`,
        );
      assert.equal(await snapshot(), before, 'cancelled questions change nothing');
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });
});
