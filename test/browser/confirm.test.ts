import assert from 'node:assert/strict';
import { portalWorld } from '../helpers/portal.ts';
import { axeViolations, logIn, openPage, useBrowserApp } from '../helpers/browser.ts';

describe('browser: an irreversible action asks first, in a dialog', function () {
  this.timeout(90_000);
  const app = useBrowserApp();

  it('blacklisting a machine: the dialog names it; Escape and Cancel do nothing; confirming does it; the undo; axe finds no violations', async () => {
    const { t, browser, url } = app;
    const w = await portalWorld(t.db);
    const { page, problems, close } = await openPage(browser);
    const checkAxe = async (label: string) => assert.deepEqual(await axeViolations(page), [], label);
    // The text of the focused element (a string evaluated in the page: the tests compile without the DOM types).
    const focused = () => page.evaluate('document.activeElement && document.activeElement.textContent');
    const blacklisted = async () =>
      Boolean(await t.db('license_blacklist').where({ license_id: w.licenseA, hardware_id: 'HW-A' }).first());
    try {
      await logIn(page, url, w.managerAll);
      await page.goto(`${url}/portal/licenses/${w.licenseA}`);
      await page.getByRole('heading', { name: /AAAA-AAAA/ }).waitFor();
      const dialog = page.getByRole('dialog', { name: 'Blacklist machine HW-A (HW-A.local)?' });
      const open = async () => {
        await page.getByRole('button', { name: 'Blacklist', exact: true }).click();
        await dialog.waitFor();
      };

      // Escape cancels: nothing happened, the focus is back on the button.
      await open();
      assert.match(
        (await dialog.textContent()) ?? '',
        /on license AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA: it is deactivated and can never activate this license again/,
      );
      assert.equal(await focused(), 'Cancel');
      await checkAxe('dialog open');
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'hidden' });
      assert.equal(await focused(), 'Blacklist');
      assert.equal(await blacklisted(), false);

      // Cancel does nothing either.
      await open();
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      await dialog.waitFor({ state: 'hidden' });
      assert.equal(await blacklisted(), false);
      assert.equal(page.url(), `${url}/portal/licenses/${w.licenseA}`);

      // Confirming does it.
      await open();
      await dialog.getByRole('button', { name: 'Blacklist machine' }).click();
      await page.getByRole('button', { name: 'Remove from blacklist: HW-A' }).waitFor();
      assert.equal(await blacklisted(), true);
      await checkAxe('license after blacklisting');

      // The undo (no question: it can be done again).
      await page.getByRole('button', { name: 'Remove from blacklist: HW-A' }).click();
      await page.getByText('The machine is off the blacklist').waitFor();
      assert.equal(await blacklisted(), false);

      // The confirm page itself (what a browser without the script gets): axe finds nothing either.
      await page.evaluate("document.querySelector('form[action$=\"/disable\"]').removeAttribute('data-confirm')");
      await page.getByRole('button', { name: 'Disable', exact: true }).click();
      await page.getByRole('heading', { name: /^Disable license AAAA-/ }).waitFor();
      await checkAxe('confirm page');
      await page.getByRole('link', { name: 'Cancel' }).click();
      await page.waitForURL(`${url}/portal/licenses/${w.licenseA}`);
      assert.equal(Number((await t.db('licenses').where({ id: w.licenseA }).first()).enabled), 1);
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });
});

describe('browser: without JavaScript the confirm page asks', function () {
  this.timeout(90_000);
  const app = useBrowserApp();

  it('without JavaScript the confirm page asks: Cancel leads back, confirming does it', async () => {
    const { t, browser, url } = app;
    const w = await portalWorld(t.db);
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    try {
      await logIn(page, url, w.managerB);
      await page.goto(`${url}/portal/licenses/${w.licenseB}`);
      await page.getByRole('button', { name: 'Disable', exact: true }).click();
      await page.getByRole('heading', { name: 'Disable license BBBB-BBBB-BBBB-BBBB-BBBB-BBBB-BBBB?' }).waitFor();
      assert.equal(Number((await t.db('licenses').where({ id: w.licenseB }).first()).enabled), 1);
      await page.getByRole('link', { name: 'Cancel' }).click();
      await page.waitForURL(`${url}/portal/licenses/${w.licenseB}`);
      await page.getByRole('button', { name: 'Disable', exact: true }).click();
      await page.getByRole('heading', { name: /^Disable license/ }).waitFor();
      await page.getByRole('button', { name: 'Disable', exact: true }).click();
      await page.getByRole('button', { name: 'Enable', exact: true }).waitFor();
      assert.equal(Number((await t.db('licenses').where({ id: w.licenseB }).first()).enabled), 0);
    } finally {
      await context.close();
    }
  });
});
