import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { buildTestApp, countRows, type TestApp } from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import { clientToken } from '../helpers/manage-api.ts';
import { projectRoot } from '../helpers/process.ts';

/**
 * docs/integrations.md's worked example is code a vendor copies: this runs it, as written, against a
 * real server — including the shop's retry, which must not issue twice.
 */
describe('docs/integrations.md: payment cleared → order with licenses → keys by mail', () => {
  let t: TestApp;
  let server: Server;
  let dir: string;
  before(async () => {
    t = await buildTestApp();
    server = t.app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-integrations-'));
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
    await t.close();
  });

  it('runs the shop example as documented: one order, its licenses, a mail per key, and a retry changes nothing', async () => {
    const w = await portalWorld(t.db);
    const doc = fs.readFileSync(path.join(projectRoot, 'docs', 'integrations.md'), 'utf8');
    const example = /```js\n([\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(example?.includes('export async function onPaymentCleared'), 'the first js block is the shop example');
    const file = path.join(dir, 'shop.mjs');
    fs.writeFileSync(file, example!);

    process.env.PORTICO_URL = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    process.env.PORTICO_TOKEN = await clientToken(t, ['orders:write', 'licenses:write'], 'Web shop');
    process.env.PORTICO_POLICY_ID = String(w.policy);
    try {
      const { onPaymentCleared } = (await import(pathToFileURL(file).href)) as {
        onPaymentCleared(p: object): Promise<string[]>;
      };
      const payment = {
        orderNumber: 'WEB-5001',
        company: 'Initech',
        email: 'it@initech.example',
        customerId: 'C-77',
        seats: 3,
      };
      const before = { orders: await countRows(t.db, 'orders'), licenses: await countRows(t.db, 'licenses') };

      const keys = await onPaymentCleared(payment);
      assert.equal(keys.length, 3);
      const order = await t.db('orders').where({ order_ref: 'WEB-5001' }).first();
      assert.ok(order, 'the order exists');
      const rows = await t.db('licenses').where({ order_id: order.id }).orderBy('id');
      assert.deepEqual(
        rows.map((r) => r.license_key),
        keys,
      );
      assert.ok(
        rows.every((r) => r.dispatched_to === 'it@initech.example'),
        'each key was dispatched to the buyer',
      );
      const mails = await t.db('mail_outbox').where({ to_address: 'it@initech.example' });
      assert.equal(mails.length, 3, 'one mail per key');
      for (const key of keys)
        assert.ok(
          mails.some((m) => String(m.text_body).includes(key)),
          'each mail carries its key',
        );

      // The shop timed out and runs the same payment again: the stored answers come back, nothing new.
      assert.deepEqual(await onPaymentCleared(payment), keys);
      assert.equal(await countRows(t.db, 'orders'), before.orders + 1);
      assert.equal(await countRows(t.db, 'licenses'), before.licenses + 3);
      assert.equal((await t.db('mail_outbox').where({ to_address: 'it@initech.example' })).length, 3);
    } finally {
      delete process.env.PORTICO_URL;
      delete process.env.PORTICO_TOKEN;
      delete process.env.PORTICO_POLICY_ID;
    }
  });
});
