import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { useServedApp } from '../helpers/browser.ts';
import { projectRoot } from '../helpers/process.ts';
import { said } from '../helpers/cli.ts';
import { uploadOverHttp } from '../helpers/offline.ts';
import * as catalog from '../../app/models/catalog.ts';
import { keyedOrder } from '../helpers/catalog.ts';

const doc = fs.readFileSync(path.join(projectRoot, 'docs', 'file-formats.md'), 'utf8');

/** Runs the CLI as the end user's machine would, in process (runCli, what the binary runs; test/e2e/device-cli.test.ts spawns the binary). */
const cli = (dir: string, args: string[], cwd: string) => said({ dir, cwd }, ...args);

describe('end to end: the CLI plays an offline machine against the portal over HTTP', function () {
  this.timeout(120_000);
  const served = useServedApp('e2e');

  it('request → portal → license file → SDK verifies and activates → deactivate → portal frees the seat; openssl verifies the license file by the documented steps', async () => {
    const { t, base, work } = served;
    const now = t.clock.now();
    const key = 'E2E0-E2E0-E2E0-E2E0-E2E0-E2E0-E2E0';
    const vendor = await keyedOrder(t.db, t.clock, { orderRef: 'E2E-1' });
    await catalog.insertFeature(
      t.db,
      { productId: vendor.productId, code: 'render', name: 'Render minutes', type: 'consumption' },
      now,
    );
    const licenseId = await vendor.license(key, { allowOffline: true, maxActivations: 1 });
    const feature = await t.db('features').where({ code: 'render' }).first();
    await t
      .db('license_features')
      .insert({ license_id: licenseId, feature_id: feature.id, max_consumption: 1000, total_consumption: 0 });

    const keysFile = path.join(work, 'portico-keys.json');
    fs.writeFileSync(keysFile, await (await fetch(`${base}/.well-known/portico-keys.json`)).text());
    const dir = path.join(work, 'device');
    assert.equal(
      (
        await cli(
          dir,
          ['init', '--product', 'acme-cad', '--key', key, '--keys', keysFile, '--hardware-id', 'E2E-MACHINE'],
          work,
        )
      ).code,
      0,
    );
    const request = await cli(dir, ['request', '--out', path.join(work, 'activation.req')], work);
    assert.equal(request.code, 0, request.out);

    const activation = await uploadOverHttp(base, 'requests', path.join(work, 'activation.req'));
    assert.match(activation.page, /License activated/);
    assert.ok(activation.file);
    fs.writeFileSync(path.join(work, 'license.lic'), activation.file!);
    const activated = await cli(dir, ['activate', path.join(work, 'license.lic')], work);
    assert.equal(activated.code, 0, activated.out);
    assert.equal((await cli(dir, ['status'], work)).code, 0);
    assert.equal((await t.db('licenses').where({ id: licenseId }).first()).times_activated, 1);

    // The license file verifies with openssl by the steps written in docs/file-formats.md.
    const steps = /<!-- test: verify-license[^>]*-->\s*```sh\n([\s\S]*?)```/.exec(doc)![1]!;
    const verifyDir = fs.mkdtempSync(path.join(work, 'openssl-'));
    fs.copyFileSync(path.join(work, 'license.lic'), path.join(verifyDir, 'license.lic'));
    fs.copyFileSync(keysFile, path.join(verifyDir, 'portico-keys.json'));
    const out = execFileSync('bash', ['-e', '-c', steps], { cwd: verifyDir, encoding: 'utf8' });
    assert.match(out, /Signature Verified Successfully/);
    assert.match(out, /"hardwareId":"E2E-MACHINE"/);

    const deactivation = await cli(
      dir,
      ['deactivate', '--out', path.join(work, 'deactivation.req'), '--usage', 'render=42'],
      work,
    );
    assert.equal(deactivation.code, 0, deactivation.out);
    assert.equal((await cli(dir, ['status'], work)).code, 3, 'the license is gone from the machine');
    const freed = await uploadOverHttp(base, 'requests', path.join(work, 'deactivation.req'));
    assert.match(freed.page, /License deactivated/);
    fs.writeFileSync(path.join(work, 'receipt.txt'), freed.file!);
    const receipt = await cli(dir, ['receipt', path.join(work, 'receipt.txt')], work);
    assert.equal(receipt.code, 0, receipt.out);
    const license = await t.db('licenses').where({ id: licenseId }).first();
    assert.equal(license.times_activated, 0, 'the seat is free');
    assert.equal(
      Number((await t.db('license_features').where({ license_id: licenseId }).first()).total_consumption),
      42,
      'usage recorded',
    );

    // Replaying the deactivation changes nothing.
    const replay = await uploadOverHttp(base, 'requests', path.join(work, 'deactivation.req'));
    assert.match(replay.page, /processed before; nothing changed/);
    assert.equal(
      Number((await t.db('license_features').where({ license_id: licenseId }).first()).total_consumption),
      42,
    );
  });
});
