import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { adminAgent, auditOf, buildTestApp, countRows, csrfFrom, type TestApp, submitForm } from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import { IDP_ENTITY_ID, IDP_SSO_URL, keyPair, type SamlPerson, startSamlIdp } from '../helpers/saml-idp.ts';
import * as catalog from '../../app/models/catalog.ts';
import { saveSettings } from '../../app/models/settings.ts';
import { inTransaction } from '../../app/lib/transaction.ts';
import { purgeOnce } from '../../app/models/identity-providers.ts';
import { SSO_PER_CLIENT } from '../../app/controllers/sso.ts';

/**
 * Single sign-on with SAML 2.0 against a signing IdP (test/helpers/saml-idp.ts): the SP metadata, the
 * IdP's metadata by XML and by URL, JIT end users with seats, and every refusal the assertion
 * consumer owes — tampered, replayed, another audience, expired, unsolicited, signed by another key,
 * a disabled provider, an answer brought back by another browser.
 */
describe('single sign-on: SAML 2.0', function () {
  this.timeout(60_000);
  let t: TestApp;
  let w: Awaited<ReturnType<typeof portalWorld>>;
  let admin: Awaited<ReturnType<typeof adminAgent>>['agent'];
  let idp: Awaited<ReturnType<typeof startSamlIdp>>;
  let providerId: number;
  let seatLicense: number;
  let metadataServer: http.Server;
  let served = '';
  const base = () => `/admin/customers/${w.customer}/sso`;

  const sent = async (p: Promise<request.Response>, status: number) => {
    const res = await p;
    assert.equal(res.status, status, res.text.slice(0, 800));
    return res;
  };

  /** Portico's redirect to the IdP (with the browser's session). */
  async function begin(agent = request.agent(t.app)) {
    const start = await agent.get(`/sso/${providerId}/start`).expect(303);
    assert.ok(start.headers.location!.startsWith(`${IDP_SSO_URL}?SAMLRequest=`));
    return { agent, location: start.headers.location! };
  }

  /** The IdP's POST to the assertion consumer: cross-site, so without Portico's cookie. */
  const post = (samlResponse: string) =>
    request(t.app)
      .post(`/sso/${providerId}/saml/acs`)
      .type('form')
      .send({ SAMLResponse: samlResponse, RelayState: '' });

  async function login(
    person: SamlPerson,
    options: Parameters<typeof idp.answer>[2] = {},
    browser = request.agent(t.app),
  ) {
    const { agent, location } = await begin(browser);
    const answer = idp.answer(location, person, options);
    const acs = await post(answer.samlResponse).expect(303);
    const back = await agent.get(acs.headers.location!);
    return { agent, answer, acs, back };
  }

  const lastRefusal = async () => {
    const row = await t.db('audit_events').where({ action: 'sso.login_refused' }).orderBy('id', 'desc').first();
    return row ? JSON.parse(row.after_state) : null;
  };

  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    admin = (await adminAgent(t)).agent;
    idp = await startSamlIdp();
    await inTransaction(t.db, (trx) => saveSettings(trx, { webhookPrivateTargets: true }, t.clock.now()));
    const now = new Date();
    seatLicense = await catalog.insertLicense(
      t.db,
      {
        orderId: w.orderA,
        productId: w.userProduct,
        policyId: w.userPolicy,
        licenseKey: null,
        entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, maxActivations: 1 },
        startDate: now,
      },
      now,
    );
    served = idp.metadata;
    metadataServer = http.createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/xml' }).end(served),
    );
    await new Promise<void>((resolve) => metadataServer.listen(0, '127.0.0.1', resolve));
  });

  after(async () => {
    metadataServer?.closeAllConnections();
    await new Promise((resolve) => metadataServer?.close(resolve));
    await t?.close();
  });

  it('refuses metadata that is not IdP metadata, with the reason in the form', async () => {
    const res = await sent(
      submitForm(admin, base(), `${base()}/providers`, {
        kind: 'saml',
        name: 'Broken',
        saml_metadata_xml: '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>',
      }),
      422,
    );
    assert.match(res.text, /This is not IdP metadata/);
    assert.equal(await countRows(t.db, 'identity_providers'), 0);
  });

  it('the vendor adds a SAML IdP by its metadata URL (fetched once, server-side) and Portico publishes its SP metadata', async () => {
    const url = `http://127.0.0.1:${(metadataServer.address() as AddressInfo).port}/metadata`;
    const res = await sent(
      submitForm(admin, base(), `${base()}/providers`, {
        kind: 'saml',
        name: 'Hooli Okta',
        enabled: 'on',
        groups_claim: 'groups',
        saml_metadata_url: url,
      }),
      303,
    );
    providerId = Number(/providers\/(\d+)$/.exec(res.headers.location!)![1]);
    const row = await t.db('identity_providers').where({ id: providerId }).first();
    assert.equal(row.saml_entity_id, IDP_ENTITY_ID);
    assert.equal(row.saml_sso_url, IDP_SSO_URL);
    const metadata = await request(t.app).get(`/sso/${providerId}/saml/metadata`).expect(200);
    assert.match(metadata.headers['content-type']!, /xml/);
    assert.ok(metadata.text.includes(`entityID="http://portico.test/sso/${providerId}/saml/metadata"`));
    assert.ok(metadata.text.includes(`Location="http://portico.test/sso/${providerId}/saml/acs"`));
    assert.match(metadata.text, /WantAssertionsSigned="true"/);
    const show = `${base()}/providers/${providerId}`;
    await sent(submitForm(admin, show, `${show}/domains`, { domain: 'hooli.test' }), 303);
    const domain = await t.db('sso_domains').where({ domain: 'hooli.test' }).first();
    await sent(submitForm(admin, show, `${show}/domains/${domain.id}/verify`, {}), 303);
    await sent(
      submitForm(admin, show, `${show}/mappings`, {
        group_name: 'engineers',
        kind: 'seat',
        license_id: String(seatLicense),
      }),
      303,
    );
  });

  it('saving the provider again reads its metadata URL anew (a rotated certificate)', async () => {
    const show = `${base()}/providers/${providerId}`;
    const before = (await t.db('identity_providers').where({ id: providerId }).first()).saml_certificates;
    const rotated = await keyPair('idp2.globex.test');
    const body = (pem: string) => pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s+/g, '');
    served = idp.metadata.replace(body(idp.signing.cert), body(rotated.cert));
    const url = `http://127.0.0.1:${(metadataServer.address() as AddressInfo).port}/metadata`;
    const form = { name: 'Hooli Okta', enabled: 'on', groups_claim: 'groups', saml_metadata_url: url };
    await sent(submitForm(admin, show, show, form), 303);
    const after = (await t.db('identity_providers').where({ id: providerId }).first()).saml_certificates;
    assert.equal(after, body(rotated.cert));
    assert.notEqual(after, before);
    served = idp.metadata;
    await sent(submitForm(admin, show, show, form), 303);
    assert.equal((await t.db('identity_providers').where({ id: providerId }).first()).saml_certificates, before);
  });

  it('a metadata URL on a forbidden address is refused before anything is fetched', async () => {
    const res = await sent(
      submitForm(admin, base(), `${base()}/providers`, {
        kind: 'saml',
        name: 'Metadata thief',
        saml_metadata_url: 'http://169.254.169.254/latest/meta-data',
      }),
      422,
    );
    assert.match(res.text, /field-error/);
  });

  it('first login: the end user is created just in time and gets the seat; the session id changes', async () => {
    const sid = (res: request.Response) =>
      ([] as string[])
        .concat(res.headers['set-cookie'] ?? [])
        .find((c) => c.startsWith('portico.sid='))
        ?.split(';')[0];
    const browser = request.agent(t.app);
    const before = sid(await browser.get('/login').expect(200));
    const { back, agent } = await login(
      { nameId: 'gavin@hooli.test', email: 'gavin@hooli.test', displayName: 'Gavin', groups: ['engineers'] },
      {},
      browser,
    );
    assert.equal(back.status, 303, back.text.slice(0, 500));
    assert.equal(back.headers.location, '/portal');
    assert.ok(before && sid(back) && sid(back) !== before, 'a new session id at login');
    const account = await t.db('accounts').where({ email: 'gavin@hooli.test' }).first();
    assert.equal(account.role, 'end_user');
    assert.equal(account.name, 'Gavin');
    assert.equal(
      await countRows(t.db, 'license_user_assignments', { license_id: seatLicense, account_id: account.id }),
      1,
    );
    await agent.get('/portal').expect(200);
    const loginEvent = (await auditOf(t.db, 'account', account.id)).find((a) => a.action === 'auth.login')!;
    assert.deepEqual(loginEvent.after, { via: 'saml', providerId, groups: ['engineers'] });
  });

  it('the seat count holds: with one seat, the least recently used holder gives way', async () => {
    const { back } = await login({ nameId: 'jared@hooli.test', email: 'jared@hooli.test', groups: ['engineers'] });
    assert.equal(back.status, 303);
    assert.equal(await countRows(t.db, 'license_user_assignments', { license_id: seatLicense }), 1);
    const jared = await t.db('accounts').where({ email: 'jared@hooli.test' }).first();
    assert.equal(
      await countRows(t.db, 'license_user_assignments', { license_id: seatLicense, account_id: jared.id }),
      1,
    );
    assert.ok((await auditOf(t.db, 'license', seatLicense)).some((a) => a.action === 'sso.seat_reclaimed'));
  });

  it('a replayed assertion is refused, even posted by the same browser flow again', async () => {
    const { answer, agent } = await login({
      nameId: 'jared@hooli.test',
      email: 'jared@hooli.test',
      groups: ['engineers'],
    });
    const again = await post(answer.samlResponse).expect(303);
    assert.match(again.headers.location!, /refused=replayed/);
    const page = await agent.get(again.headers.location!).expect(403);
    assert.match(page.text, /already been used/);
    assert.equal((await lastRefusal()).reason, 'replayed');
  });

  it('the same assertion posted twice at the same instant is accepted once', async () => {
    const { location } = await begin();
    const answer = idp.answer(location, {
      nameId: 'jared@hooli.test',
      email: 'jared@hooli.test',
      groups: ['engineers'],
    });
    const results = await Promise.all([
      post(answer.samlResponse),
      post(answer.samlResponse),
      post(answer.samlResponse),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      [303, 303, 303],
    );
    assert.equal(results.filter((r) => /[?&]token=/.test(r.headers.location!)).length, 1);
    assert.equal(results.filter((r) => /refused=/.test(r.headers.location!)).length, 2);
  });

  it('a tampered assertion (e-mail changed after signing) is refused', async () => {
    const { back } = await login(
      { nameId: 'jared@hooli.test', email: 'jared@hooli.test', groups: ['engineers'] },
      {
        tamper: (xml) =>
          xml.replace('>jared@hooli.test</saml:AttributeValue>', '>richard@hooli.test</saml:AttributeValue>'),
      },
    );
    assert.equal(back.status, 403);
    assert.match(back.text, /could not be verified/);
    assert.equal((await lastRefusal()).reason, 'invalid_response');
    assert.equal(await t.db('accounts').where({ email: 'richard@hooli.test' }).first(), undefined);
  });

  it('an assertion for another audience is refused', async () => {
    const { back } = await login(
      { nameId: 'jared@hooli.test', email: 'jared@hooli.test', groups: ['engineers'] },
      { audience: 'https://other-sp.example/saml' },
    );
    assert.equal(back.status, 403);
    const refusal = await lastRefusal();
    assert.equal(refusal.reason, 'invalid_response');
    assert.match(refusal.detail, /audience/i);
  });

  it('an expired assertion is refused', async () => {
    const { back } = await login(
      { nameId: 'jared@hooli.test', email: 'jared@hooli.test', groups: ['engineers'] },
      { validMinutes: -10 },
    );
    assert.equal(back.status, 403);
    const refusal = await lastRefusal();
    assert.equal(refusal.reason, 'invalid_response');
    // node-saml checks the bearer confirmation's NotOnOrAfter first: no valid subject confirmation is left.
    assert.match(refusal.detail, /expired|NotOnOrAfter|subject confirmation/i);
  });

  it('an unsolicited assertion (no InResponseTo) and one signed by another key are refused', async () => {
    const unsolicited = await login(
      { nameId: 'jared@hooli.test', email: 'jared@hooli.test', groups: ['engineers'] },
      { inResponseTo: null },
    );
    assert.equal(unsolicited.back.status, 403);
    assert.equal((await lastRefusal()).reason, 'invalid_response');
    const stranger = await keyPair('evil.test');
    const forged = await login(
      { nameId: 'jared@hooli.test', email: 'jared@hooli.test', groups: ['engineers'] },
      { signWith: stranger },
    );
    assert.equal(forged.back.status, 403);
    assert.match((await lastRefusal()).detail, /signature/i);
  });

  it('an unsigned assertion is refused', async () => {
    const { back } = await login(
      { nameId: 'jared@hooli.test', email: 'jared@hooli.test', groups: ['engineers'] },
      { unsigned: true },
    );
    assert.equal(back.status, 403);
    assert.equal((await lastRefusal()).reason, 'invalid_response');
  });

  it("the assertion consumer's result only completes the browser that started the sign-in", async () => {
    const { location } = await begin();
    const answer = idp.answer(location, {
      nameId: 'jared@hooli.test',
      email: 'jared@hooli.test',
      groups: ['engineers'],
    });
    const acs = await post(answer.samlResponse).expect(303);
    // An attacker's browser (no sign-in started there) brings the token back: refused, and the token is spent.
    const other = request.agent(t.app);
    await other.get(acs.headers.location!).expect(403);
    assert.equal((await lastRefusal()).reason, 'state_mismatch');
  });

  it('two people completing at the same instant for the last seat: one gets it, the other waits (freeze)', async () => {
    await sent(submitForm(admin, base(), `${base()}/seat-rule`, { rule: 'freeze' }), 303);
    await t.db('license_user_assignments').where({ license_id: seatLicense }).delete();
    const returns = [];
    for (const name of ['dinesh', 'monica']) {
      const { agent, location } = await begin();
      const answer = idp.answer(location, {
        nameId: `${name}@hooli.test`,
        email: `${name}@hooli.test`,
        groups: ['engineers'],
      });
      const acs = await post(answer.samlResponse).expect(303);
      returns.push({ agent, url: acs.headers.location! });
    }
    const results = await Promise.all(returns.map((r) => r.agent.get(r.url)));
    assert.deepEqual(
      results.map((r) => r.status),
      [303, 303],
    );
    assert.equal(await countRows(t.db, 'license_user_assignments', { license_id: seatLicense }), 1);
    assert.equal(await countRows(t.db, 'sso_seat_waits', { license_id: seatLicense }), 1);
    await sent(submitForm(admin, base(), `${base()}/seat-rule`, { rule: 'least_recently_used' }), 303);
  });

  // Jared's seat was taken away by hand above (the seats deleted for the race): he signs in again without harm.
  it('an SSO session has the same absolute lifetime as a password login', async () => {
    const { agent, back } = await login({
      nameId: 'jared@hooli.test',
      email: 'jared@hooli.test',
      groups: ['engineers'],
    });
    assert.equal(back.status, 303);
    await agent.get('/portal').expect(200);
    t.clock.advance(t.config.sessionAbsoluteMs + 60_000);
    try {
      const res = await agent.get('/portal').expect(303);
      assert.equal(res.headers.location, '/login');
    } finally {
      t.clock.advance(-(t.config.sessionAbsoluteMs + 60_000));
    }
  });

  it('a disabled provider refuses both the redirect and the answer', async () => {
    const { location, agent } = await begin();
    const answer = idp.answer(location, {
      nameId: 'jared@hooli.test',
      email: 'jared@hooli.test',
      groups: ['engineers'],
    });
    await t.db('identity_providers').where({ id: providerId }).update({ enabled: false });
    const acs = await post(answer.samlResponse).expect(303);
    await agent.get(acs.headers.location!).expect(403);
    assert.equal((await lastRefusal()).reason, 'disabled');
    await request(t.app).get(`/sso/${providerId}/start`).expect(403);
    const page = await request(t.app).get('/login/sso');
    assert.ok(csrfFrom(page.text));
  });

  it('expired one-time keys are purged (the housekeeping of server.ts)', async () => {
    const before = await countRows(t.db, 'sso_once');
    assert.ok(before > 0);
    t.clock.advance(2 * 86_400_000);
    try {
      assert.equal(await purgeOnce(t.db, t.clock.now()), before);
      assert.equal(await countRows(t.db, 'sso_once'), 0);
    } finally {
      t.clock.advance(-2 * 86_400_000);
    }
  });

  it('an anonymous flood is cut per client before any work (429 with Retry-After)', async () => {
    let res: request.Response | undefined;
    for (let i = 0; i <= SSO_PER_CLIENT.limit; i++) {
      res = await request(t.app).get('/sso/999999/start');
      if (res.status === 429) break;
      assert.equal(res.status, 403);
    }
    assert.equal(res!.status, 429);
    assert.ok(Number(res!.headers['retry-after']) > 0);
  });
});
