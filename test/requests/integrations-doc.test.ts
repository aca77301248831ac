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
 * docs/integrations.md's worked examples are code a vendor copies: this runs them, as written, against
 * a real server — including the shop's retries, which must not issue or generate twice.
 */
describe('docs/integrations.md: the worked examples', () => {
  let t: TestApp;
  let server: Server;
  let dir: string;
  let w: Awaited<ReturnType<typeof portalWorld>>;
  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
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
  it('runs the codes example as documented: codes told once, a retry gets the same ones, a refund voids one', async () => {
    const doc = fs.readFileSync(path.join(projectRoot, 'docs', 'integrations.md'), 'utf8');
    const blocks = [...doc.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const codesExample = blocks.find((b) => b.includes('export async function sellCodes'));
    assert.ok(codesExample, 'a js block sells codes');
    // It uses the `api` helper of the first example, as the text says.
    const file = path.join(dir, 'codes.mjs');
    fs.writeFileSync(file, `${blocks[0]}\n${codesExample}`);

    process.env.PORTICO_URL = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    process.env.PORTICO_TOKEN = await clientToken(t, ['vouchers:write'], 'Code shop');
    process.env.PORTICO_ORDER_ID = String(w.orderA);
    process.env.PORTICO_POLICY_ID = String(w.policy);
    try {
      const { sellCodes, refundCode } = (await import(pathToFileURL(file).href)) as {
        sellCodes(s: object): Promise<{ voucherId: number; code: string }[]>;
        refundCode(id: number): Promise<{ status: string }>;
      };
      const batches = await countRows(t.db, 'voucher_batches');
      const sold = await sellCodes({ id: 'S-900', quantity: 2 });
      assert.equal(sold.length, 2);
      for (const s of sold) assert.match(s.code, /^[0-9A-Z]{5}(-[0-9A-Z]{5}){3}$/);
      assert.deepEqual(await sellCodes({ id: 'S-900', quantity: 2 }), sold, 'the retry gets the same codes');
      assert.equal(await countRows(t.db, 'voucher_batches'), batches + 1, 'one batch');
      const refunded = await refundCode(sold[0]!.voucherId);
      assert.equal(refunded.status, 'voided');
      const row = await t.db('vouchers').where({ id: sold[0]!.voucherId }).first();
      assert.notEqual(row.voided_at, null);
    } finally {
      delete process.env.PORTICO_URL;
      delete process.env.PORTICO_TOKEN;
      delete process.env.PORTICO_ORDER_ID;
      delete process.env.PORTICO_POLICY_ID;
    }
  });
});
