import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { useServedApp } from '../helpers/browser.ts';
import { said } from '../helpers/cli.ts';
import { airgappedCode } from '../helpers/vouchers.ts';
import { keyedOrder } from '../helpers/catalog.ts';

/** The device's CLI in process (runCli, what the binary runs; test/e2e/device-cli.test.ts spawns the binary). */
const cli = (dir: string, args: string[]) => said({ dir, cwd: path.dirname(dir) }, ...args);

/** Submits a portal form like a person typing into it: GET the page for its token, POST the fields. */
async function typeInto(base: string, action: string, fields: Record<string, string>): Promise<string> {
  const page = await fetch(`${base}/airgap`);
  const cookie = page.headers.get('set-cookie')!.split(';')[0]!;
  const token = /name="_csrf" value="([^"]+)"/.exec(await page.text())![1]!;
  const res = await fetch(`${base}${action}`, {
    method: 'POST',
    headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: token, ...fields }),
  });
  return res.text();
}

/**
 * The way back, as a person carries it: the CLI prints a deactivation code (short enough to type),
 * the portal frees the seat and shows a confirmation code, the CLI accepts it and is unlicensed.
 */
async function deactivateByHand(
  served: { t: { db: Knex }; base: string },
  dir: string,
  key: string,
  licenseId: number,
) {
  const deactivation = await cli(dir, ['airgap-deactivate']);
  assert.equal(deactivation.code, 0, deactivation.out);
  const deactivationCode = /Deactivation code: (\S+)/.exec(deactivation.out)![1]!;
  assert.ok(deactivationCode.replace(/-/g, '').length <= 40);
  const freed = await typeInto(served.base, '/airgap/deactivate', {
    license_key: key,
    deactivation_code: deactivationCode,
  });
  const confirmation = /id="confirmation-code"[^>]*>([^<]+)</.exec(freed)![1]!.trim();
  assert.equal((await served.t.db('licenses').where({ id: licenseId }).first()).times_activated, 0, 'the seat is free');
  const confirmed = await cli(dir, ['airgap-confirm', confirmation]);
  assert.equal(confirmed.code, 0, confirmed.out);
  assert.equal((await cli(dir, ['status'])).code, 3);
}

describe('end to end: the CLI plays an air-gapped machine, a person carries the codes', function () {
  this.timeout(120_000);
  const served = useServedApp('airgap');

  it('request code → portal → activation code typed back → active; deactivation code → portal → seat freed → confirmation accepted', async () => {
    const { t, base, work } = served;
    const key = 'SAFE-SAFE-SAFE-SAFE-SAFE-SAFE-SAFE';
    const vendor = await keyedOrder(t.db, t.clock, {
      product: { name: 'Plant Control', code: 'plant' },
      orderRef: 'AG-E2E',
    });
    const licenseId = await vendor.license(key, { airgapped: true, allowOffline: true });
    const keysFile = path.join(work, 'keys.json');
    fs.writeFileSync(keysFile, await (await fetch(`${base}/.well-known/portico-keys.json`)).text());
    const dir = path.join(work, 'device');
    assert.equal(
      (await cli(dir, ['init', '--product', 'plant', '--key', key, '--keys', keysFile, '--hardware-id', 'PLANT-PC-7']))
        .code,
      0,
    );

    const request = await cli(dir, ['airgap-request', '--portal', base]);
    assert.equal(request.code, 0, request.out);
    const requestCode = /Request code: (\S+)/.exec(request.out)![1]!;
    assert.ok(requestCode.replace(/-/g, '').length <= 40);
    assert.match(request.out, new RegExp(`${base}/airgap\\?code=${requestCode}`));

    const activated = await typeInto(base, '/airgap/activate', {
      license_key: key,
      request_code: requestCode.toLowerCase().replace(/-/g, ' '),
    });
    const activationCode = /id="activation-code"[^>]*>([^<]+)</.exec(activated)![1]!.trim();
    const installed = await cli(dir, ['airgap-activate', activationCode]);
    assert.equal(installed.code, 0, installed.out);
    assert.equal((await cli(dir, ['status'])).code, 0);
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 1);

    await deactivateByHand(served, dir, key, licenseId);
  });

  it('a folder set up without a key: request code → portal redeems a code → airgap-activate --key → licensed; deactivation → portal → confirmed', async () => {
    const { t, base, work } = served;
    const voucher = await airgappedCode(t, 'AG-E2E-CODE');
    const keysFile = path.join(work, 'keys.json');
    fs.writeFileSync(keysFile, await (await fetch(`${base}/.well-known/portico-keys.json`)).text());
    const dir = path.join(work, 'redeeming');
    assert.equal(
      (await cli(dir, ['init', '--product', 'pump', '--keys', keysFile, '--hardware-id', 'PUMP-PC-1'])).code,
      0,
    );

    const request = await cli(dir, ['airgap-request']);
    assert.equal(request.code, 0, request.out);
    assert.match(request.out, /with your redeemable code/);
    assert.match(request.out, /airgap-activate <activation code> --key <license key>/);
    const requestCode = /Request code: (\S+)/.exec(request.out)![1]!;

    const activated = await typeInto(base, '/airgap/activate', { license_key: voucher!, request_code: requestCode });
    const activationCode = /id="activation-code"[^>]*>([^<]+)</.exec(activated)![1]!.trim();
    const key = /id="new-license-key"[^>]*>([^<]+)</.exec(activated)![1]!.trim();

    const withoutKey = await cli(dir, ['airgap-activate', activationCode]);
    assert.equal(withoutKey.code, 1, withoutKey.out);
    assert.match(withoutKey.out, /--key/);
    const wrongKey = await cli(dir, ['airgap-activate', activationCode, '--key', 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA']);
    assert.notEqual(wrongKey.code, 0, 'the code is checked against the key');
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).licenseKey, null);

    const installed = await cli(dir, ['airgap-activate', activationCode, '--key', key.toLowerCase()]);
    assert.equal(installed.code, 0, installed.out);
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).licenseKey, key, 'key remembered');
    const status = await cli(dir, ['status']);
    assert.equal(status.code, 0, status.out);
    assert.match(status.out, new RegExp(key));
    const licenseId = (await t.db('licenses').where({ license_key: key }).first()).id;
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 1);

    await deactivateByHand(served, dir, key, licenseId);
  });
});
