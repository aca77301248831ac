import assert from 'node:assert/strict';
import request from 'supertest';
import { adminAgent, auditOf, countRows, csrfFrom, submitForm, type TestApp } from '../helpers/app.ts';
import { adminConsole, outsiders, type Agent } from '../helpers/console.ts';

/** A real 1×1 PNG. */
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);
const CLEAN_SVG =
  '<?xml version="1.0" encoding="UTF-8"?>\n<!-- made by hand -->\n<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 10 10"><defs><linearGradient id="g"><stop offset="0" stop-color="#123456"/></linearGradient></defs><rect id="r" width="10" height="10" fill="url(#g)" style="opacity:.9"/><use xlink:href="#r"/></svg>';

const brandingFields = (over: Record<string, string> = {}) => ({
  name: 'acme',
  display_name: 'ACME Licensing',
  primary_color: '#112233',
  accent_color: '#445566',
  support_email: 'help@acme.example',
  default_language: 'en',
  ...over,
});

describe('console: brandings and host names', () => {
  let t: TestApp;
  let agent: Agent;
  let adminId: number;
  let acmeId: number;

  before(async () => ({ t, agent, adminId } = await adminConsole()));
  after(async () => t.close());

  /** Uploads a logo through the real multipart form: its CSRF token travels in the action URL. */
  async function uploadLogo(id: number, data: Buffer | string, filename: string, contentType: string) {
    const page = await agent.get(`/admin/brandings/${id}`).expect(200);
    const action = /<form method="post" action="([^"]+)" enctype="multipart\/form-data"/
      .exec(page.text)![1]!
      .replace(/&amp;/g, '&');
    assert.match(action, /^\/admin\/brandings\/\d+\/logo\?_csrf=/);
    return agent
      .post(action)
      .attach('logo', Buffer.isBuffer(data) ? data : Buffer.from(data), { filename, contentType });
  }

  it('anonymous visitors are sent to the login page; managers and end users get 404', async () => {
    await request(t.app).get('/admin/brandings').expect(303).expect('location', '/login');
    await request(t.app).get('/admin/brandings/new').expect(303).expect('location', '/login');
    for (const { agent: other, csrf } of await outsiders(t)) {
      for (const url of ['/admin/brandings', '/admin/brandings/new', '/admin/brandings/1', '/admin/brandings/1/logo'])
        await other.get(url).expect(404);
      await other
        .post('/admin/brandings')
        .type('form')
        .send({ _csrf: csrf, ...brandingFields() })
        .expect(404);
    }
    assert.equal(await countRows(t.db, 'brandings'), 0);
  });

  it('refuses a form without its CSRF token (403)', async () => {
    await agent.post('/admin/brandings').type('form').send(brandingFields()).expect(403);
    assert.equal(await countRows(t.db, 'brandings'), 0);
  });

  it('creates a branding; bad input is 422 with field errors; the name is unique', async () => {
    const bad = await submitForm(
      agent,
      '/admin/brandings/new',
      '/admin/brandings',
      brandingFields({
        name: 'no spaces!',
        display_name: '',
        primary_color: 'blue',
        support_email: 'nope',
        default_language: 'xx',
      }),
    );
    assert.equal(bad.status, 422);
    for (const field of ['name', 'display_name', 'primary_color', 'support_email', 'default_language'])
      assert.match(bad.text, new RegExp(`id="field-${field}-error"`), field);
    assert.match(bad.text, /Enter a colour as #rrggbb/);
    assert.match(bad.text, /value="no spaces!"/, 'the submitted values come back');
    assert.equal(await countRows(t.db, 'brandings'), 0);

    const ok = await submitForm(
      agent,
      '/admin/brandings/new',
      '/admin/brandings',
      brandingFields({ name: 'ACME', primary_color: '#AABBCC' }),
    );
    assert.equal(ok.status, 303);
    const row = await t.db('brandings').where({ name: 'acme' }).first();
    assert.ok(row, 'the name is stored lower-cased');
    assert.equal(row.primary_color, '#aabbcc');
    acmeId = row.id;
    assert.equal(ok.headers.location, `/admin/brandings/${acmeId}`);
    const page = await agent.get(ok.headers.location).expect(200);
    assert.match(page.text, /The branding has been created/);
    const events = await auditOf(t.db, 'branding', acmeId);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.action, 'branding.created');
    assert.equal(events[0]!.actor, adminId);
    assert.equal(events[0]!.after.displayName, 'ACME Licensing');

    const dup = await submitForm(
      agent,
      '/admin/brandings/new',
      '/admin/brandings',
      brandingFields({ display_name: 'Other' }),
    );
    assert.equal(dup.status, 422);
    assert.match(dup.text, /A branding with this identifier already exists/);
  });

  it('shows field errors in the admin language', async () => {
    const { agent: german } = await adminAgent(t, 'de');
    const bad = await submitForm(
      german,
      '/admin/brandings/new',
      '/admin/brandings',
      brandingFields({ display_name: '', support_email: 'kaputt' }),
    );
    assert.equal(bad.status, 422);
    assert.match(bad.text, /<html lang="de">/);
    assert.match(bad.text, /Dieses Feld ist erforderlich/);
    assert.match(bad.text, /Geben Sie eine gültige E-Mail-Adresse ein/);
    assert.match(bad.text, /Anzeigename/);
    assert.doesNotMatch(bad.text, /This field is required/);
    const branding = await t.db('brandings').where({ name: 'acme' }).first();
    const host = await submitForm(german, `/admin/brandings/${branding.id}`, `/admin/brandings/${branding.id}/hosts`, {
      hostname: 'bad host',
      portal: '',
    });
    assert.equal(host.status, 422);
    assert.match(host.text, /Geben Sie einen Hostnamen/);
  });

  it('edits a branding with before/after in one audit event', async () => {
    const res = await submitForm(
      agent,
      `/admin/brandings/${acmeId}/edit`,
      `/admin/brandings/${acmeId}`,
      brandingFields({ primary_color: '#0a0b0c', default_language: 'fr' }),
    );
    assert.equal(res.status, 303);
    assert.match((await agent.get(res.headers.location)).text, /The branding has been saved/);
    const events = await auditOf(t.db, 'branding', acmeId);
    assert.equal(events.length, 2);
    const updated = events[1]!;
    assert.equal(updated.action, 'branding.updated');
    assert.equal(updated.before.primaryColor, '#aabbcc');
    assert.equal(updated.after.primaryColor, '#0a0b0c');
    assert.equal(updated.after.defaultLanguage, 'fr');
  });

  it('validates host names: lower-cased, a DNS name, no port, unique across brandings', async () => {
    const url = `/admin/brandings/${acmeId}`;
    for (const hostname of [
      'users.acme.example:8443',
      'https://users.acme.example',
      '-bad.example',
      'under_score.example',
      '10.0.0.1',
      'a..b',
      `${'x'.repeat(64)}.example`,
      '',
    ]) {
      const res = await submitForm(agent, url, `${url}/hosts`, { hostname, portal: 'portal' });
      assert.equal(res.status, 422, hostname);
      assert.match(res.text, /id="field-hostname"[^>]*aria-invalid="true"/, hostname);
    }
    const badPortal = await submitForm(agent, url, `${url}/hosts`, { hostname: 'ok.acme.example', portal: 'admin' });
    assert.equal(badPortal.status, 422);
    assert.match(badPortal.text, /Choose one of the offered options/);
    assert.equal(await countRows(t.db, 'branding_hosts'), 0);

    const ok = await submitForm(agent, url, `${url}/hosts`, { hostname: ' Users.ACME.example ', portal: 'portal' });
    assert.equal(ok.status, 303);
    assert.match((await agent.get(url)).text, /The host name users\.acme\.example has been added/);
    const host = await t.db('branding_hosts').where({ hostname: 'users.acme.example' }).first();
    assert.equal(host.portal, 'portal');
    const [event] = await auditOf(t.db, 'branding_host', host.id);
    assert.equal(event!.action, 'branding_host.created');
    assert.deepEqual(event!.after, { brandingId: acmeId, hostname: 'users.acme.example', portal: 'portal' });

    const otherId = (
      await t
        .db('brandings')
        .insert({ name: 'other', display_name: 'Other', created_at: new Date(), updated_at: new Date() })
    )[0];
    const dup = await submitForm(agent, `/admin/brandings/${otherId}`, `/admin/brandings/${otherId}/hosts`, {
      hostname: 'USERS.acme.example',
      portal: '',
    });
    assert.equal(dup.status, 422);
    assert.match(dup.text, /This host name already belongs to a branding/);
    assert.equal(await countRows(t.db, 'branding_hosts'), 1);
  });

  it('a bound host serves the User Portal at / with the branding', async () => {
    const login = await request(t.app).get('/login').set('Host', 'users.acme.example').expect(200);
    assert.match(login.text, /ACME Licensing/);
    assert.match(login.text, /<html lang="fr">/);
    await request(t.app).get('/').set('Host', 'users.acme.example').expect(303).expect('location', '/login');
    await request(t.app).get('/admin').set('Host', 'users.acme.example').expect(404);
    const css = await request(t.app).get('/branding.css').set('Host', 'users.acme.example').expect(200);
    assert.match(css.text, /--brand-primary:#0a0b0c/);
    assert.match(css.text, /--brand-accent:#445566/);
    const plain = await request(t.app).get('/login').set('Host', 'elsewhere.example').expect(200);
    assert.doesNotMatch(plain.text, /ACME Licensing/);
  });

  it('refuses SVG logos with active content or external references (422)', async () => {
    const cases: [string, RegExp][] = [
      ['<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', /contains a script element/],
      [
        '<svg xmlns="http://www.w3.org/2000/svg"><svg:script xmlns:svg="http://www.w3.org/2000/svg">alert(1)</svg:script></svg>',
        /contains a script element/,
      ],
      ['<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>', /event handler attribute/],
      ['<svg xmlns="http://www.w3.org/2000/svg"><rect ONCLICK = "x()"/></svg>', /event handler attribute/],
      [
        '<svg xmlns="http://www.w3.org/2000/svg"><a href="javascript:alert(1)"><rect/></a></svg>',
        /javascript: or data: URL/,
      ],
      [
        '<svg xmlns="http://www.w3.org/2000/svg"><set attributeName="href" to="&#106;ava&#x09;script:alert(1)"/></svg>',
        /javascript: or data: URL/,
      ],
      [
        '<svg xmlns="http://www.w3.org/2000/svg"><image href="data:image/png;base64,AAAA"/></svg>',
        /javascript: or data: URL/,
      ],
      ['<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><p>hi</p></foreignObject></svg>', /foreignObject/],
      [
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"><use xlink:href="https://evil.example/x.svg#a"/></svg>',
        /refers to other files/,
      ],
      [
        '<svg xmlns="http://www.w3.org/2000/svg"><rect style="fill:url(https://evil.example/track)"/></svg>',
        /refers to other files/,
      ],
      [
        '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x "y">]><svg xmlns="http://www.w3.org/2000/svg">&x;</svg>',
        /document type or entity/,
      ],
      [
        '<?xml version="1.0"?><?xml-stylesheet href="https://evil.example/a.css"?><svg xmlns="http://www.w3.org/2000/svg"/>',
        /processing instructions/,
      ],
      ['<?xml version="1.0" encoding="UTF-7"?><svg xmlns="http://www.w3.org/2000/svg"/>', /UTF-8/],
    ];
    for (const [svg, message] of cases) {
      const res = await uploadLogo(acmeId, svg, 'logo.svg', 'image/svg+xml');
      assert.equal(res.status, 422, svg);
      assert.match(res.text, message, svg);
      assert.match(res.text, /id="field-logo"[^>]*aria-invalid="true"/);
    }
    const notAnImage = await uploadLogo(acmeId, 'just text, honestly', 'logo.png', 'image/png');
    assert.equal(notAnImage.status, 422);
    assert.match(notAnImage.text, /not a PNG, JPEG or SVG image/);
    const manyComments = await uploadLogo(acmeId, `${'<!--a-->'.repeat(60)}<html/>`, 'logo.svg', 'image/svg+xml');
    assert.equal(manyComments.status, 422, 'answered at once: the type check does not backtrack over comments');
    const page = await agent.get(`/admin/brandings/${acmeId}`).expect(200);
    const noFile = await agent
      .post(`/admin/brandings/${acmeId}/logo?_csrf=${encodeURIComponent(csrfFrom(page.text))}`)
      .field('x', 'y');
    assert.equal(noFile.status, 422);
    assert.match(noFile.text, /Choose an image file to upload/);
    assert.equal((await t.db('brandings').where({ id: acmeId }).first()).logo_mime, null);
    assert.equal((await auditOf(t.db, 'branding', acmeId)).length, 2, 'a refused upload changes and audits nothing');
  });

  it('decides the type by content: a PNG is stored, audited without its bytes and served with its mime', async () => {
    const res = await uploadLogo(acmeId, PNG, 'looks-like.svg', 'image/svg+xml');
    assert.equal(res.status, 303);
    assert.match((await agent.get(res.headers.location)).text, /The logo has been saved/);
    const row = await t.db('brandings').where({ id: acmeId }).first();
    assert.equal(row.logo_mime, 'image/png');
    const served = await request(t.app)
      .get('/branding/logo')
      .set('Host', 'users.acme.example')
      .buffer(true)
      .parse((r, cb) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => cb(null, Buffer.concat(chunks)));
      });
    assert.equal(served.status, 200);
    assert.equal(served.headers['content-type'], 'image/png');
    assert.match(served.headers['content-security-policy']!, /sandbox/);
    assert.ok(PNG.equals(served.body as Buffer));
    const login = await request(t.app).get('/login').set('Host', 'users.acme.example').expect(200);
    assert.match(login.text, /src="\/branding\/logo"/);

    const events = await auditOf(t.db, 'branding', acmeId);
    const uploaded = events.at(-1)!;
    assert.equal(uploaded.action, 'branding.logo_uploaded');
    assert.deepEqual(uploaded.before, { logoMime: null, logoSize: null });
    assert.deepEqual(uploaded.after, { logoMime: 'image/png', logoSize: PNG.length });
    const raw = JSON.stringify(await t.db('audit_events').select('before_state', 'after_state'));
    assert.ok(!raw.includes(PNG.toString('base64').slice(0, 16)), 'no logo bytes in the audit trail');
  });

  it('sets the page title, the tab icon (the logo, when ticked) and whether “Powered by Portico” shows', async () => {
    const save = (over: Record<string, string>) =>
      submitForm(agent, `/admin/brandings/${acmeId}/edit`, `/admin/brandings/${acmeId}`, brandingFields(over));
    // The layout reads the branding through the per-process cache: a save bumps its generation.
    const page = async () => (await request(t.app).get('/login').set('Host', 'users.acme.example').expect(200)).text;

    assert.equal((await save({ default_language: 'en', logo_as_favicon: 'on' })).status, 303);
    let html = await page();
    assert.match(html, /<title>[^<]+ · ACME Licensing<\/title>/);
    assert.match(html, /<link rel="icon" href="\/branding\/logo">/);
    assert.doesNotMatch(html, /Powered by Portico/);
    const edited = (await auditOf(t.db, 'branding', acmeId)).at(-1)!;
    assert.equal(edited.after.showPoweredBy, false);
    assert.equal(edited.after.logoAsFavicon, true);
    const form = (await agent.get(`/admin/brandings/${acmeId}/edit`).expect(200)).text;
    assert.match(form, /<input type="checkbox" id="field-logo_as_favicon" name="logo_as_favicon" checked/);
    assert.match(form, /<input type="checkbox" id="field-show_powered_by" name="show_powered_by"(?! checked)/);

    assert.equal((await save({ default_language: 'en', show_powered_by: 'on' })).status, 303);
    html = await page();
    assert.match(html, /<link rel="icon" href="\/static\/img\/favicon.svg" type="image\/svg\+xml">/);
    assert.match(html, /Powered by Portico/);
    // Hosts without a branding keep Portico's own icon and footer.
    const plain = (await request(t.app).get('/login').set('Host', 'elsewhere.example').expect(200)).text;
    assert.match(plain, /<title>[^<]+ · Portico<\/title>/);
    assert.match(plain, /Powered by Portico/);
  });

  it('accepts a clean SVG and a large PNG under the limit; over 512 KiB is 413', async () => {
    const svg = await uploadLogo(acmeId, CLEAN_SVG, 'logo.svg', 'image/svg+xml');
    assert.equal(svg.status, 303);
    assert.equal((await t.db('brandings').where({ id: acmeId }).first()).logo_mime, 'image/svg+xml');
    const served = await request(t.app).get('/branding/logo').set('Host', 'users.acme.example').expect(200);
    assert.equal(served.headers['content-type'], 'image/svg+xml');

    const big = Buffer.concat([PNG, Buffer.alloc(500 * 1024 - PNG.length, 7)]);
    assert.equal((await uploadLogo(acmeId, big, 'big.png', 'image/png')).status, 303);
    const stored = await t.db('brandings').where({ id: acmeId }).first();
    assert.equal(
      Buffer.from(stored.logo_data).length,
      big.length,
      'a 500 KiB logo is stored whole (MEDIUMBLOB on MySQL)',
    );
    const preview = await agent.get(`/admin/brandings/${acmeId}/logo`).expect(200);
    assert.equal(preview.headers['content-type'], 'image/png');

    const tooBig = await uploadLogo(
      acmeId,
      Buffer.concat([PNG, Buffer.alloc(512 * 1024, 1)]),
      'huge.png',
      'image/png',
    ).catch((err: { response?: request.Response }) => err.response!);
    assert.equal(tooBig.status, 413);
    assert.match(tooBig.text, /too large/);
    assert.equal(Buffer.from((await t.db('brandings').where({ id: acmeId }).first()).logo_data).length, big.length);
  });

  it('refuses an upload whose action URL lacks the CSRF token (403)', async () => {
    await agent
      .post(`/admin/brandings/${acmeId}/logo`)
      .attach('logo', PNG, { filename: 'a.png', contentType: 'image/png' })
      .expect(403);
  });

  it('removes the logo (audited); /branding/logo is then 404', async () => {
    const res = await submitForm(agent, `/admin/brandings/${acmeId}`, `/admin/brandings/${acmeId}/logo/delete`, {
      confirmed: '1',
    });
    assert.equal(res.status, 303);
    assert.match((await agent.get(res.headers.location)).text, /The logo has been removed/);
    await request(t.app).get('/branding/logo').set('Host', 'users.acme.example').expect(404);
    const removed = (await auditOf(t.db, 'branding', acmeId)).at(-1)!;
    assert.equal(removed.action, 'branding.logo_removed');
    assert.deepEqual(removed.before, { logoMime: 'image/png', logoSize: 500 * 1024 });
    assert.deepEqual(removed.after, { logoMime: null, logoSize: null });
  });

  it('lists and searches brandings with their host names', async () => {
    const list = await agent.get('/admin/brandings').expect(200);
    assert.match(list.text, /ACME Licensing/);
    assert.match(list.text, /users\.acme\.example/);
    const search = await agent.get('/admin/brandings?q=othe').expect(200);
    assert.doesNotMatch(search.text, /ACME Licensing/);
    assert.match(search.text, /Other/);
  });

  it('removes a host name (audited): the host falls back to path-based routing', async () => {
    const host = await t.db('branding_hosts').where({ hostname: 'users.acme.example' }).first();
    const otherId = (await t.db('brandings').where({ name: 'other' }).first()).id;
    await submitForm(agent, `/admin/brandings/${otherId}`, `/admin/brandings/${otherId}/hosts/${host.id}/delete`, {
      confirmed: '1',
    }).then((r) => assert.equal(r.status, 404, 'a host of another branding is out of reach'));
    const res = await submitForm(
      agent,
      `/admin/brandings/${acmeId}`,
      `/admin/brandings/${acmeId}/hosts/${host.id}/delete`,
      { confirmed: '1' },
    );
    assert.equal(res.status, 303);
    assert.equal(await countRows(t.db, 'branding_hosts'), 0);
    const events = await auditOf(t.db, 'branding_host', host.id);
    assert.deepEqual(
      events.map((e) => e.action),
      ['branding_host.created', 'branding_host.deleted'],
    );
    assert.equal(events[1]!.before.hostname, 'users.acme.example');
    await request(t.app).get('/').set('Host', 'users.acme.example').expect(303).expect('location', '/login');
    await request(t.app).get('/portal').set('Host', 'users.acme.example').expect(303);
  });

  it('the branding named "default" applies to hosts without their own', async () => {
    const res = await submitForm(
      agent,
      '/admin/brandings/new',
      '/admin/brandings',
      brandingFields({ name: 'default', display_name: 'Vendor Licensing', primary_color: '#010203' }),
    );
    assert.equal(res.status, 303);
    const login = await request(t.app).get('/login').set('Host', 'anything.example').expect(200);
    assert.match(login.text, /Vendor Licensing/);
    const css = await request(t.app).get('/branding.css').set('Host', 'anything.example').expect(200);
    assert.match(css.text, /--brand-primary:#010203/);
  });

  it('deletes a branding with its hosts, audited with the state before', async () => {
    await submitForm(agent, `/admin/brandings/${acmeId}`, `/admin/brandings/${acmeId}/hosts`, {
      hostname: 'offline.acme.example',
      portal: 'offline',
    });
    const res = await submitForm(agent, `/admin/brandings/${acmeId}`, `/admin/brandings/${acmeId}/delete`, {
      confirmed: '1',
    });
    assert.equal(res.status, 303);
    assert.equal(res.headers.location, '/admin/brandings');
    assert.match((await agent.get('/admin/brandings')).text, /The branding and its host names have been deleted/);
    assert.equal(await t.db('brandings').where({ id: acmeId }).first(), undefined);
    assert.equal(await countRows(t.db, 'branding_hosts', { branding_id: acmeId }), 0);
    const deleted = (await auditOf(t.db, 'branding', acmeId)).at(-1)!;
    assert.equal(deleted.action, 'branding.deleted');
    assert.equal(deleted.before.name, 'acme');
    assert.deepEqual(deleted.before.hosts, [{ hostname: 'offline.acme.example', portal: 'offline' }]);
  });

  it('unknown and malformed ids are 404', async () => {
    await agent.get('/admin/brandings/999999').expect(404);
    await agent.get('/admin/brandings/abc').expect(404);
    await agent.get('/admin/brandings/999999/edit').expect(404);
    await agent.get('/admin/brandings/999999/logo').expect(404);
    const page = await agent.get('/admin/brandings').expect(200);
    await agent
      .post('/admin/brandings/999999/delete')
      .type('form')
      .send({ _csrf: csrfFrom(page.text) })
      .expect(404);
  });
});
