import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { outboundFetch } from '../../app/lib/outbound-fetch.ts';

/** The fetch of identity providers' documents (lib/outbound-fetch.ts): the webhook targets' rules at connect time. */
describe('outbound fetch (identity providers)', () => {
  let server: http.Server;
  let url: string;
  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/redirect') return res.writeHead(302, { location: 'http://169.254.169.254/' }).end();
      if (req.url === '/big') return res.writeHead(200).end(Buffer.alloc(2048, 'a'));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ method: req.method }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise((resolve) => server.close(resolve)));

  it('refuses loopback unless private targets are allowed, and link-local always', async () => {
    await assert.rejects(outboundFetch({ allowPrivate: false })(`${url}/x`), /not allowed/);
    await assert.rejects(outboundFetch({ allowPrivate: true })('http://169.254.169.254/latest'), /not allowed/);
    // A name resolving to loopback is checked as the address connected (localhost → 127.0.0.1).
    const port = new URL(url).port;
    await assert.rejects(outboundFetch({ allowPrivate: false })(`http://localhost:${port}/x`), /fetch failed/);
    const res = await outboundFetch({ allowPrivate: true })(`${url}/x`, { method: 'POST', body: 'a=1' });
    assert.deepEqual(await res.json(), { method: 'POST' });
  });

  it('does not follow redirects and stops reading past its limit', async () => {
    const res = await outboundFetch({ allowPrivate: true })(`${url}/redirect`);
    assert.equal(res.status, 302);
    await assert.rejects(outboundFetch({ allowPrivate: true, maxBytes: 1024 })(`${url}/big`), /fetch failed|too large/);
  });
});
