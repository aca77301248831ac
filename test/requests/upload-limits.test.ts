import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import request from 'supertest';
import { buildTestApp, type TestApp } from '../helpers/app.ts';
import { makeDevice } from '../helpers/device.ts';
import { RateLimiter } from '../../app/lib/rate-limiter.ts';
import { OFFLINE_REQUESTS_PER_CLIENT } from '../../app/controllers/offline.ts';
import { BUSY_RETRY_SECONDS, streamToDisk, uploadSlots, uploadTempDir } from '../../app/middleware/uploads.ts';
import { MAX_REQUEST_BYTES, MAX_ZIP_BYTES } from '../../app/services/offline.ts';
import { loadConfig } from '../../config/index.ts';
import { keyedOrder } from '../helpers/catalog.ts';

/**
 * Limits before work on the offline upload (docs/decisions.md, "Upload limits"): the per-client
 * limit and a slot of the process before a byte of the body is read, bodies streamed to a temporary
 * file with the size limits checked as they arrive, every slot and every temporary file given back
 * however the request ends. Raw http requests, so that a test controls when (and whether) the body
 * is sent. Speed and memory are the benchmark's (test/bench/upload-flood.ts), never asserted here.
 */

const BOUNDARY = 'PorticoUploadLimitsTest';
const partHead = Buffer.from(
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="activation-request.req"\r\nContent-Type: application/octet-stream\r\n\r\n`,
);
const partTail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A multipart upload of a file of `fileBytes` bytes whose body is sent when (and as far as) the test says. */
function openUpload(port: number, path: string, headers: Record<string, string>, fileBytes: number) {
  const req = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path,
    agent: false,
    headers: {
      'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
      'content-length': String(partHead.length + fileBytes + partTail.length),
      ...headers,
    },
  });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    // Writing on after an early answer fails (the server closed the connection): the answer counts.
    req.on('error', reject);
  });
  answer.catch(() => {});
  return { req, answer };
}

const tempFiles = () => fs.readdirSync(uploadTempDir()).length;

async function until(condition: () => boolean, what: string, ms = 10_000) {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('Upload limits on the offline portal', function () {
  this.timeout(120_000);
  const SLOTS = 4;
  const PRODUCT = 'acme-cad';
  const KEY = 'UUUU-UUUU-UUUU-UUUU-UUUU-UUUU-UUUU';
  let t: TestApp;
  let server: http.Server;
  let port: number;
  /** One browser: its session cookie and the form's action (CSRF token in the query). */
  let browser: { headers: Record<string, string>; action: string };

  before(async () => {
    t = await buildTestApp({ offlineUploadSlots: SLOTS, trustProxy: 'loopback' });
    await (await keyedOrder(t.db, t.clock, { orderRef: 'O-U' })).license(KEY, {
      allowOffline: true,
      maxActivations: 100,
    });
    server = t.app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    port = (server.address() as AddressInfo).port;
    const page = await request(server).get('/offline').expect(200);
    browser = {
      headers: { cookie: String(page.headers['set-cookie']![0]!.split(';')[0]) },
      action: /<form[^>]*action="([^"]*_csrf=[^"]*)"/.exec(page.text)![1]!.replace(/&amp;/g, '&'),
    };
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await t.close();
  });

  /** Uploads that take a slot each and hold it: their request file is sent up to the middle. */
  async function holdSlots(n: number) {
    const before = tempFiles();
    const holders = Array.from({ length: n }, (_, i) => {
      const text = Buffer.from(makeDevice().activationRequest({ product: PRODUCT, licenseKey: KEY }).text);
      // Each from an address of its own: one client may hold only its share of the slots.
      const upload = openUpload(
        port,
        browser.action,
        { ...browser.headers, 'X-Forwarded-For': `198.51.100.${i + 1}` },
        text.length,
      );
      upload.req.write(Buffer.concat([partHead, text.subarray(0, 100)]));
      return { ...upload, rest: Buffer.concat([text.subarray(100), partTail]) };
    });
    await until(() => tempFiles() === before + n, `${n} uploads are being written to temporary files`);
    return holders;
  }

  /** Uploads that announce an 8 MiB body and send nothing of it: a refusal must come without it. */
  const unsentUploads = (n: number, headers: Record<string, string> = {}) =>
    Promise.all(
      Array.from({ length: n }, async () => {
        const upload = openUpload(port, browser.action, { ...browser.headers, ...headers }, MAX_ZIP_BYTES);
        upload.req.flushHeaders();
        const answer = await upload.answer;
        upload.req.destroy();
        return answer;
      }),
    );

  it('the temporary directory is private to the process (0700) and OFFLINE_UPLOAD_SLOTS is a whole number ≥ 1 (default 8)', () => {
    assert.equal(fs.statSync(uploadTempDir()).mode & 0o777, 0o700);
    assert.equal(loadConfig({}).offlineUploadSlots, 8);
    assert.equal(loadConfig({ OFFLINE_UPLOAD_SLOTS: '3' }).offlineUploadSlots, 3);
    assert.throws(() => loadConfig({ OFFLINE_UPLOAD_SLOTS: '0' }), /OFFLINE_UPLOAD_SLOTS must be between 1 and 1000/);
    assert.throws(() => loadConfig({ OFFLINE_UPLOAD_SLOTS: 'many' }), /OFFLINE_UPLOAD_SLOTS must be a whole number/);
  });

  it(`40 concurrent uploads with ${SLOTS} slots: ${SLOTS} are read, 36 get 503 + Retry-After at once without their body; no slot leaks, no file stays`, async () => {
    const holders = await holdSlots(SLOTS);
    const busy = await unsentUploads(36);
    assert.deepEqual(
      busy.map((a) => a.status),
      Array(36).fill(503),
    );
    for (const a of busy) {
      assert.equal(a.headers['retry-after'], String(BUSY_RETRY_SECONDS));
      assert.equal(a.headers.connection, 'close');
    }
    assert.match(busy[0]!.body, /Portal busy/);
    assert.match(busy[0]!.body, /send it again in a few seconds/);
    const [german] = await unsentUploads(1, { 'accept-language': 'de' });
    assert.match(german!.body, /Portal ausgelastet/);

    for (const h of holders) h.req.end(h.rest);
    const done = await Promise.all(holders.map((h) => h.answer));
    for (const a of done) {
      assert.equal(a.status, 200, /role="alert"[\s\S]{0,400}/.exec(a.body)?.[0]);
      assert.match(a.body, /License activated/);
    }
    await until(() => tempFiles() === 0, 'every temporary file is deleted');

    // Every slot came back: exactly SLOTS uploads can be read at once again.
    const again = await holdSlots(SLOTS);
    assert.deepEqual(
      (await unsentUploads(1)).map((a) => a.status),
      [503],
    );
    for (const h of again) h.req.end(h.rest);
    assert.deepEqual(
      (await Promise.all(again.map((h) => h.answer))).map((a) => a.status),
      Array(SLOTS).fill(200),
    );
    await until(() => tempFiles() === 0, 'every temporary file is deleted');
  });

  it('one client holds at most its share of the slots: another client still gets one', async () => {
    const [mine] = await holdSlots(1); // 198.51.100.1, and SLOTS / 4 = 1 slot a client here
    const [second] = await unsentUploads(1, { 'x-forwarded-for': '198.51.100.1' });
    assert.equal(second!.status, 503, 'the same client, a second slot');
    assert.ok(Number(second!.headers['retry-after']) > 0);
    const other = openUpload(port, browser.action, { ...browser.headers, 'X-Forwarded-For': '203.0.113.9' }, 10);
    other.req.end(Buffer.concat([partHead, Buffer.from('0123456789'), partTail]));
    assert.notEqual((await other.answer).status, 503, 'another client is served');
    mine!.req.destroy();
    await until(() => tempFiles() === 0, 'every temporary file is deleted');
  });

  it('a client that goes away mid-body gives its slot back and leaves no temporary file', async () => {
    const holders = await holdSlots(SLOTS);
    assert.equal((await unsentUploads(1))[0]!.status, 503);
    holders[0]!.req.destroy();
    await until(() => tempFiles() === SLOTS - 1, 'the abandoned upload’s file is deleted');
    const replacement = await holdSlots(1);
    assert.equal((await unsentUploads(1))[0]!.status, 503, 'still exactly SLOTS at once');
    for (const h of [...holders.slice(1), ...replacement]) h.req.destroy();
    await until(() => tempFiles() === 0, 'every temporary file is deleted');
    const after = await holdSlots(SLOTS);
    for (const h of after) h.req.end(h.rest);
    assert.deepEqual(
      (await Promise.all(after.map((h) => h.answer))).map((a) => a.status),
      Array(SLOTS).fill(200),
    );
  });

  it('a client over its limit gets 429 + Retry-After before a byte of its body is read, and takes no slot', async () => {
    const ip = '192.0.2.77';
    for (let i = 0; i < OFFLINE_REQUESTS_PER_CLIENT.limit; i++)
      await t.app.locals.ctx.limiter.hit(RateLimiter.key('offline', ip), OFFLINE_REQUESTS_PER_CLIENT);
    const holders = await holdSlots(SLOTS);
    const [limited] = await unsentUploads(1, { 'x-forwarded-for': ip });
    assert.equal(limited!.status, 429);
    assert.ok(Number(limited!.headers['retry-after']) > 0);
    assert.equal(limited!.headers.connection, 'close');
    for (const h of holders) h.req.destroy();
    await until(() => tempFiles() === 0, 'every temporary file is deleted');
  });

  it('sizes are checked as the body arrives: a declared length over the limit or no length before a byte, a file or pasted request one byte over at that byte (413)', async () => {
    const declared = openUpload(port, browser.action, browser.headers, MAX_ZIP_BYTES + 1024 * 1024);
    declared.req.flushHeaders();
    assert.equal((await declared.answer).status, 413);
    declared.req.destroy();

    const chunked = http.request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: browser.action,
      agent: false,
      headers: {
        ...browser.headers,
        'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
        'transfer-encoding': 'chunked',
      },
    });
    chunked.flushHeaders();
    const lengthRequired = await new Promise<number>((resolve, reject) =>
      chunked.on('response', (res) => resolve(res.statusCode ?? 0)).on('error', reject),
    );
    assert.equal(lengthRequired, 411);
    chunked.destroy();

    // One byte over 8 MiB: refused there, the connection closed, the partial file deleted.
    const over = openUpload(port, browser.action, browser.headers, MAX_ZIP_BYTES + 1);
    over.req.end(Buffer.concat([partHead, Buffer.alloc(MAX_ZIP_BYTES + 1, 0x61), partTail]));
    const overAnswer = await over.answer;
    assert.equal(overAnswer.status, 413);
    assert.equal(overAnswer.headers.connection, 'close');
    await until(() => tempFiles() === 0, 'the partial file is deleted');

    // Exactly 8 MiB is read (the limit is not off by one); not a ZIP and over 64 KiB, the portal then refuses it as too large.
    const exact = openUpload(port, browser.action, browser.headers, MAX_ZIP_BYTES);
    exact.req.end(Buffer.concat([partHead, Buffer.alloc(MAX_ZIP_BYTES, 0x61), partTail]));
    const exactAnswer = await exact.answer;
    assert.equal(exactAnswer.status, 413);
    assert.match(exactAnswer.body, /role="alert"/, 'the upload page with the refusal, not an error page');
    await until(() => tempFiles() === 0, 'the file is deleted');

    const pasted = await request(server)
      .post(browser.action)
      .set(browser.headers)
      .field('request', 'x'.repeat(MAX_REQUEST_BYTES + 1));
    assert.equal(pasted.status, 413);
    const pastedOk = await request(server)
      .post(browser.action)
      .set(browser.headers)
      .field('request', makeDevice().activationRequest({ product: PRODUCT, licenseKey: KEY }).text);
    assert.equal(pastedOk.status, 200);
    assert.match(pastedOk.text, /License activated/);
  });

  it('a body still arriving after the deadline is dropped (408, connection closed), its slot and file given back', async () => {
    const slots = uploadSlots(1);
    const app = express();
    app.post(
      '/u',
      slots.acquire,
      streamToDisk({ field: 'file', maxFileBytes: 1024, maxFieldBytes: 1024, bodySeconds: 0.3 }),
      (_req, res) => res.send('read'),
    );
    app.use(((err, _req, res, _next) => res.status(err.status ?? 500).end()) as express.ErrorRequestHandler);
    const slow = app.listen(0, '127.0.0.1');
    await new Promise((r) => slow.once('listening', r));
    try {
      const upload = openUpload((slow.address() as AddressInfo).port, '/u', {}, 1000);
      upload.req.write(Buffer.concat([partHead, Buffer.alloc(10, 0x61)]));
      await until(() => tempFiles() === 1, 'the upload is being written');
      assert.equal(slots.inUse(), 1);
      const answer = await upload.answer;
      assert.equal(answer.status, 408);
      assert.equal(answer.headers.connection, 'close');
      upload.req.destroy();
      await until(() => slots.inUse() === 0 && tempFiles() === 0, 'the slot and the file are given back');
    } finally {
      slow.closeAllConnections();
      await new Promise((r) => slow.close(r));
    }
  });
});
