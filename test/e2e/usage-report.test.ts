import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loginAgent, createAccount, submitForm } from '../helpers/app.ts';
import { useServedApp } from '../helpers/browser.ts';
import { said } from '../helpers/cli.ts';
import { uploadOverHttp } from '../helpers/offline.ts';
import * as catalog from '../../app/models/catalog.ts';

/**
 * End to end with the real CLI (runCli in process, what the binary runs) against the portal over
 * HTTP: an offline machine records usage, reports it, the portal accepts it and — after the vendor
 * extended the license — answers with the renewed license, which the CLI installs. Replayed, edited,
 * rolled-back and out-of-order reports are each refused and audited.
 */

async function ok(dir: string, cwd: string, ...args: string[]) {
  const r = await said({ dir, cwd }, ...args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.out}`);
  return r.out;
}

describe('end to end: usage reports from an offline machine, and the renewal that comes back', function () {
  this.timeout(120_000);
  const served = useServedApp('usage-e2e');

  it('record → report → accepted; extended license → next report brings the renewal, installed with refresh; replayed, edited, rolled-back and out-of-order reports refused and audited', async () => {
    const { t, base, work } = served;
    const now = t.clock.now();
    const product = await catalog.insertProduct(
      t.db,
      { name: 'Acme CAD', code: 'acme-cad', authorizationMethod: 'key' },
      now,
    );
    const render = await catalog.insertFeature(
      t.db,
      { productId: product, code: 'render', name: 'Render minutes', type: 'consumption' },
      now,
    );
    const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Globex' }, now);
    const order = await catalog.insertOrder(t.db, { orderRef: 'USAGE-E2E', customerId: customer }, now);
    const key = 'UUUU-UUUU-UUUU-UUUU-UUUU-UUUU-UUUU';
    const expires = new Date(now.getTime() + 30 * 86_400_000);
    const licenseId = await catalog.insertLicense(
      t.db,
      {
        orderId: order,
        productId: product,
        policyId: null,
        licenseKey: key,
        entitlements: {
          ...catalog.DEFAULT_ENTITLEMENTS,
          licenseType: 'time-limited',
          validityDays: 30,
          allowOffline: true,
          maxActivations: 2,
        },
        startDate: now,
      },
      now,
    );
    await t.db('licenses').where({ id: licenseId }).update({ expires_at: expires });
    await t.db('license_features').insert({
      license_id: licenseId,
      feature_id: render,
      max_consumption: 1000,
      consumption_period: 'month',
      total_consumption: 0,
    });
    const manager = await createAccount(t.db, { role: 'manager' });
    await catalog.assignManager(t.db, manager.id, order, now);
    const portal = await loginAgent(t.app, manager.email, manager.password);

    // Activate offline with the CLI.
    fs.writeFileSync(
      path.join(work, 'portico-keys.json'),
      await (await fetch(`${base}/.well-known/portico-keys.json`)).text(),
    );
    const dir = path.join(work, 'device');
    await ok(
      dir,
      work,
      'init',
      '--product',
      'acme-cad',
      '--key',
      key,
      '--keys',
      'portico-keys.json',
      '--hardware-id',
      'USAGE-MACHINE',
    );
    await ok(dir, work, 'request', '--out', 'activation.req');
    const activation = await uploadOverHttp(base, 'requests', path.join(work, 'activation.req'));
    assert.equal(activation.status, 200, activation.page);
    fs.writeFileSync(path.join(work, 'license.lic'), activation.file!);
    await ok(dir, work, 'activate', 'license.lic');
    const deviceId = Number((await t.db('devices').where({ license_id: licenseId }).first()).id);

    // Record and report: accepted once, no renewal (nothing changed).
    await ok(dir, work, 'usage', 'record', '--consume', 'render=120', '--seats', '2', '--feature', 'render=3');
    assert.match(await ok(dir, work, 'usage', 'report', '--out', 'r1.usage'), /entries 1 to 3/);
    const r1 = await uploadOverHttp(base, 'reports', path.join(work, 'r1.usage'));
    assert.equal(r1.status, 200, r1.page);
    assert.match(r1.page, /Usage report accepted/);
    assert.equal(r1.file, null);
    assert.equal(Number((await t.db('consumption_usage').where({ license_id: licenseId }).first()).used), 120);

    // Replayed: the same file again.
    const replayed = await uploadOverHttp(base, 'reports', path.join(work, 'r1.usage'));
    assert.equal(replayed.status, 409);
    assert.match(replayed.page, /already accepted/);

    // A backup of the state folder now, to roll back to later.
    const backup = path.join(work, 'device-backup');
    fs.cpSync(dir, backup, { recursive: true });

    // The vendor extends the license in the console; the manager sees the renewal pending.
    const admin = await createAccount(t.db, { role: 'admin' });
    const console_ = await loginAgent(t.app, admin.email, admin.password);
    const extended = '2031-01-31';
    const edit = await submitForm(console_, `/admin/licenses/${licenseId}/edit`, `/admin/licenses/${licenseId}`, {
      license_type: 'time-limited',
      validity_days: '30',
      max_activations: '2',
      max_transfers: '-1',
      allow_offline: 'on',
      expires_at: extended,
    });
    assert.equal(edit.status, 303, edit.text);
    assert.match(
      (await portal.get(`/portal/licenses/${licenseId}`).expect(200)).text,
      /Renewal pending — picked up with the next report/,
    );

    // Out of order: report 4–4 is made but not uploaded; 5–5 is uploaded first.
    await ok(dir, work, 'usage', 'record', '--consume', 'render=10');
    await ok(dir, work, 'usage', 'report', '--out', 'r2.usage');
    await ok(dir, work, 'usage', 'record', '--consume', 'render=20');
    await ok(dir, work, 'usage', 'report', '--out', 'r3.usage');
    const early = await uploadOverHttp(base, 'reports', path.join(work, 'r3.usage'));
    assert.equal(early.status, 409);
    assert.match(early.page, /expects entry 4 next/);

    // In order: 4 is accepted with the renewed license, which the CLI installs; then 5.
    const r2 = await uploadOverHttp(base, 'reports', path.join(work, 'r2.usage'));
    assert.equal(r2.status, 200, r2.page);
    assert.match(r2.page, /renewed license file/);
    fs.writeFileSync(path.join(work, 'renewed.lic'), r2.file!);
    assert.match(await ok(dir, work, 'refresh', 'renewed.lic'), /License refreshed \(file 1\)/);
    assert.match(await ok(dir, work, 'status'), /2031-01-31/);
    assert.doesNotMatch((await portal.get(`/portal/licenses/${licenseId}`).expect(200)).text, /Renewal pending/);
    assert.equal((await uploadOverHttp(base, 'reports', path.join(work, 'r3.usage'))).status, 200);
    assert.equal(Number((await t.db('consumption_usage').where({ license_id: licenseId }).first()).used), 150);

    // Rolled back: the state folder restored from the backup records and reports again from entry 4.
    await ok(backup, work, 'usage', 'record', '--consume', 'render=1');
    await ok(backup, work, 'usage', 'report', '--out', 'rolled.usage');
    const rolled = await uploadOverHttp(base, 'reports', path.join(work, 'rolled.usage'));
    assert.equal(rolled.status, 409);
    assert.match(rolled.page, /rolled back/);

    // Edited: an entry of the log changed on disk, then reported.
    await ok(dir, work, 'usage', 'record', '--consume', 'render=50');
    const logFile = path.join(dir, 'usage-log.json');
    const log = JSON.parse(fs.readFileSync(logFile, 'utf8'));
    log.entries.at(-1).amount = 5;
    fs.writeFileSync(logFile, JSON.stringify(log));
    await ok(dir, work, 'usage', 'report', '--out', 'edited.usage');
    const edited = await uploadOverHttp(base, 'reports', path.join(work, 'edited.usage'));
    assert.equal(edited.status, 422);
    assert.match(edited.page, /do not chain/);

    const codes = (await t.db('audit_events').where({ action: 'usage_report.refused' }).orderBy('id')).map(
      (e: { after_state: string }) => JSON.parse(e.after_state).code,
    );
    assert.deepEqual(codes, ['report_replayed', 'report_out_of_order', 'report_rolled_back', 'report_chain_broken']);
    assert.equal(Number((await t.db('consumption_usage').where({ license_id: licenseId }).first()).used), 150);
    const history = await portal.get(`/portal/licenses/${licenseId}/devices/${deviceId}/reports`).expect(200);
    assert.match(history.text, /4 to 4/);
  });
});
