import assert from 'node:assert/strict';
import { decodeQrPng } from '../helpers/qr.ts';
import { axeViolations, openPage, useBrowserApp } from '../helpers/browser.ts';
import { airgappedCode } from '../helpers/vouchers.ts';
import { createAirgapRequest, verifyActivationCode } from '../../sdk/src/airgap.ts';
import { trustedKeyMap } from '../../app/services/signer.ts';
import { keyedOrder } from '../helpers/catalog.ts';

describe('browser: the Air-Gapped Activation Portal', function () {
  this.timeout(60_000);
  const app = useBrowserApp();

  it('a person types the license key and the request code and gets an activation code and its QR code; axe finds no violations', async () => {
    const { t, browser, url } = app;
    const now = t.clock.now();
    const key = 'TYPE-TYPE-TYPE-TYPE-TYPE-TYPE-TYPE';
    const vendor = await keyedOrder(t.db, t.clock, {
      product: { name: 'Plant Control', code: 'plant' },
      orderRef: 'AG-B',
    });
    await vendor.license(key, { airgapped: true, allowOffline: true });
    const { code, request } = createAirgapRequest({ product: 'plant', hardwareId: 'SITE-BROWSER', now });

    const { page, problems, close } = await openPage(browser);
    try {
      await page.goto(`${url}/airgap`);
      await page.getByRole('heading', { name: 'Air-gapped activation' }).waitFor();
      assert.deepEqual(await axeViolations(page), [], 'activate tab');
      await page.getByRole('link', { name: 'Deactivate' }).click();
      await page.getByLabel('Deactivation code').waitFor();
      assert.deepEqual(await axeViolations(page), [], 'deactivate tab');
      await page.getByRole('link', { name: 'Activate', exact: true }).click();

      await page.getByLabel('License key').pressSequentially(key.toLowerCase().replace(/-/g, ' '));
      await page.getByLabel('Request code').pressSequentially(code);
      await page.getByRole('button', { name: 'Activate' }).click();
      await page.getByRole('heading', { name: 'Activation code', exact: true }).waitFor();
      assert.deepEqual(await axeViolations(page), [], 'activation code page');

      const shown = (await page.locator('#activation-code').textContent())!.trim();
      const verified = verifyActivationCode(shown, {
        trustedKeys: await trustedKeyMap(t.db),
        request,
        licenseKey: key,
      });
      assert.equal(verified.expiresAt, null, 'a perpetual license: the code carries no expiry');
      const src = (await page.getByRole('img', { name: 'QR code of the activation code' }).getAttribute('src'))!;
      assert.equal(decodeQrPng(src), shown, 'the QR code decodes to the same code');
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });

  it('a person types a redeemable code and the request code and gets the new license key (with a copy button) and the activation code; axe finds no violations', async () => {
    const { t, browser, url } = app;
    const now = t.clock.now();
    const voucher = await airgappedCode(t, 'AG-B-CODE');
    const { code, request } = createAirgapRequest({ product: 'pump', hardwareId: 'SITE-BROWSER-CODE', now });

    const { page, problems, close } = await openPage(browser);
    try {
      await page.goto(`${url}/airgap`);
      await page.getByLabel('License key or redeemable code').pressSequentially(voucher!);
      await page.getByLabel('Request code').pressSequentially(code);
      await page.getByRole('button', { name: 'Activate' }).click();
      await page.getByRole('heading', { name: 'Your new license key' }).waitFor();
      assert.deepEqual(await axeViolations(page), [], 'activation code page with the new key');
      const key = (await page.locator('#new-license-key').textContent())!.trim();
      const shown = (await page.locator('#activation-code').textContent())!.trim();
      verifyActivationCode(shown, { trustedKeys: await trustedKeyMap(t.db), request, licenseKey: key });
      assert.ok(await page.getByRole('button', { name: 'Copy license key' }).isVisible(), 'the copy button is shown');
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });
});
