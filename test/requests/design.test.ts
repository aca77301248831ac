import assert from 'node:assert/strict';
import { adminAgent, buildTestApp, loginAgent, type TestApp } from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';

/** What the design adds to the HTML (the look itself is checked in a browser: test/browser/layout.test.ts). */
describe('design: empty states, labelled table cells, license keys', () => {
  let t: TestApp;
  before(async () => {
    t = await buildTestApp();
  });
  after(async () => t.close());

  it('an empty list says what is missing and offers the next step; an empty search offers to show all', async () => {
    const { agent } = await adminAgent(t);
    const empty = (await agent.get('/admin/products').expect(200)).text;
    assert.match(empty, /class="empty-state"/);
    assert.match(empty, /There are no products yet\./);
    assert.match(empty, /<a class="button" href="\/admin\/products\/new">Create the first product<\/a>/);
    const searched = (await agent.get('/admin/products?q=nothing').expect(200)).text;
    assert.match(searched, /Nothing found\./);
    assert.match(searched, /<a class="button button-secondary" href="\/admin\/products">Show all<\/a>/);
  });

  it('every body cell carries its column name for the phone layout; a license page shows its key whole with a copy button', async () => {
    const w = await portalWorld(t.db);
    const manager = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    const page = (await manager.get(`/portal/licenses/${w.licenseA}`).expect(200)).text;
    assert.match(page, /<td data-label="Hardware id"><code>HW-A<\/code><\/td>/);
    assert.match(page, /<td data-label="Actions">/);
    assert.match(page, /<code class="license-key" id="license-key">AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA<\/code>/);
    assert.match(
      page,
      /<button type="button" class="button button-secondary" data-copy="license-key"[^>]* hidden>Copy key<\/button>/,
    );
    assert.match(page, /<script src="\/static\/js\/copy.js" defer><\/script>/);
    assert.match(page, /<span class="status status-active">Active<\/span>/, 'the device state is a badge');
  });
});
