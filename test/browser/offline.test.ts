import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeDevice } from '../helpers/device.ts';
import { axeViolations, openPage, useBrowserApp } from '../helpers/browser.ts';
import { verifyEnvelope } from '../../sdk/src/envelope.ts';
import { trustedKeyMap } from '../../app/services/signer.ts';
import { keyedOrder } from '../helpers/catalog.ts';

describe('browser: the Offline Activation Portal', function () {
  this.timeout(60_000);
  const app = useBrowserApp();
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-offline-'));
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('uploads a request with the file picker and downloads the license file; axe finds no violations', async () => {
    const { t, browser, url } = app;
    const key = 'QQQQ-QQQQ-QQQQ-QQQQ-QQQQ-QQQQ-QQQQ';
    await (await keyedOrder(t.db, t.clock, { orderRef: 'O-9' })).license(key, { allowOffline: true });
    const device = makeDevice('HW-BROWSER');
    const requestFile = path.join(dir, 'activation-request.req');
    fs.writeFileSync(requestFile, device.activationRequest({ product: 'acme-cad', licenseKey: key }).text);

    const { page, problems, close } = await openPage(browser);
    try {
      await page.goto(`${url}/offline`);
      await page.getByRole('heading', { name: 'Offline activation' }).waitFor();
      assert.deepEqual(await axeViolations(page), [], 'upload page');

      await page.getByRole('button', { name: 'Upload request' }).click();
      await page.getByText('No request was given.').waitFor();
      assert.deepEqual(await axeViolations(page), [], 'upload page with a refusal');

      await page.getByLabel('Request file (or a ZIP of many)').setInputFiles(requestFile);
      await page.getByRole('button', { name: 'Upload request' }).click();
      await page.getByRole('heading', { name: 'License activated' }).waitFor();
      assert.deepEqual(await axeViolations(page), [], 'result page');

      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('link', { name: 'Download the license file' }).click(),
      ]);
      assert.equal(download.suggestedFilename(), 'acme-cad-HW-BROWSER.lic');
      const saved = path.join(dir, 'license.lic');
      await download.saveAs(saved);
      const verified = verifyEnvelope(fs.readFileSync(saved, 'utf8'), {
        expectedType: 'license',
        trustedKeys: await trustedKeyMap(t.db),
      });
      assert.equal((verified.payload as { hardwareId: string }).hardwareId, 'HW-BROWSER');
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });
});
