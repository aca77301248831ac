import assert from 'node:assert/strict';
import { portalWorld } from '../helpers/portal.ts';
import { axeViolations, logIn, openPage, useBrowserApp } from '../helpers/browser.ts';
import { addDays, dayOf } from '../../app/models/usage.ts';
import { snapshotDay } from '../../app/services/usage.ts';

/**
 * The usage pages in Chromium: chart.js (served from our origin) draws both charts under the CSP
 * `script-src 'self'` with no violation and no script error, the range switch works, and axe-core
 * finds no violations on the User Portal's and the console's pages.
 */
describe('browser: usage pages', function () {
  this.timeout(90_000);
  const app = useBrowserApp();

  it('draws the charts with no CSP error, switches the range and passes axe', async () => {
    const { t, browser, url } = app;
    const w = await portalWorld(t.db);
    // Some history: the last days' snapshots, and a refusal on one of them.
    const today = dayOf(t.clock.now());
    const earlier = new Date(t.clock.now().getTime() - 10 * 86_400_000);
    await t.db('licenses').update({ created_at: earlier });
    await t.db('devices').update({ activated_at: earlier, last_seen_at: earlier });
    await t.db('activation_history').insert({
      license_id: w.licenseA,
      event: 'refused',
      channel: 'online',
      detail: 'no_seats',
      occurred_at: new Date(`${addDays(today, -2)}T12:00:00Z`),
    });
    for (let i = 3; i >= 1; i--) await snapshotDay(t.db, addDays(today, -i), t.clock.now());
    const { page, problems, close } = await openPage(browser);
    const charts = () =>
      // A string, like the layout test's: the type check has no DOM library.
      page.evaluate(
        "[...document.querySelectorAll('canvas[data-usage-chart]')].map((c) => Boolean(window.Chart && window.Chart.getChart(c)))",
      ) as Promise<boolean[]>;
    try {
      await logIn(page, url, w.managerAll);
      await page.goto(`${url}/portal/licenses/${w.licenseA}`);
      await page.getByRole('link', { name: 'Usage', exact: true }).click();
      await page.getByRole('heading', { name: /^Usage: AAAA/ }).waitFor();
      await page.getByRole('heading', { name: 'Charts' }).waitFor();
      assert.deepEqual(await charts(), [true, true], 'both charts drawn');
      assert.equal(
        await page
          .locator(`tr[data-day="${addDays(today, -2)}"] td`)
          .nth(4)
          .textContent(),
        '1',
      );
      assert.deepEqual(await axeViolations(page), [], 'license usage page');

      await page.getByRole('link', { name: '90 days' }).first().click();
      await page.getByRole('heading', { name: 'Charts' }).waitFor();
      assert.equal(await page.locator('tr[data-day]').count(), 90);
      assert.deepEqual(await charts(), [true, true]);

      await page.goto(`${url}/portal/orders/${w.orderA}/usage`);
      await page.getByRole('heading', { name: 'Charts' }).waitFor();
      assert.deepEqual(await charts(), [true, true]);
      assert.deepEqual(await axeViolations(page), [], 'order usage page');
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }

    const admin = await openPage(browser);
    try {
      await logIn(admin.page, url, w.admin);
      await admin.page.getByRole('link', { name: 'Usage', exact: true }).click();
      await admin.page.getByRole('heading', { name: 'Usage: all licenses' }).waitFor();
      await admin.page.getByRole('heading', { name: 'Charts' }).waitFor();
      assert.deepEqual(await axeViolations(admin.page), [], 'console overview');
      assert.deepEqual(admin.problems, []);
    } finally {
      await admin.close();
    }
  });
});
