import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { auditOf, countRows, csrfFrom, submitForm, type TestApp } from '../helpers/app.ts';
import { adminConsole, outsiders, type Agent } from '../helpers/console.ts';
import { keysDir } from '../../app/lib/key-files.ts';

interface PublishedKey {
  kid: string;
  status: string;
}

describe('console: signing keys', () => {
  let t: TestApp;
  let agent: Agent;
  let adminId: number;
  let firstKid: string;
  let secondKid: string;
  /** Every response body of this file, checked at the end for private key material. */
  const bodies: string[] = [];
  const seen = <T extends { text: string }>(res: T) => {
    bodies.push(res.text);
    return res;
  };

  const published = async (): Promise<PublishedKey[]> =>
    (await request(t.app).get('/.well-known/portico-keys.json').expect(200)).body.keys;
  const statusOf = async (kid: string) => (await t.db('signing_keys').where({ kid }).first()).status;
  // The retire action asks first (docs/decisions.md, "Confirmation"): these posts carry the confirmation.
  const post = async (url: string) => seen(await submitForm(agent, '/admin/keys', url, { confirmed: '1' }));

  before(async () => {
    ({ t, agent, adminId } = await adminConsole());
    firstKid = (await t.db('signing_keys').where({ status: 'active' }).first()).kid;
  });
  after(async () => t.close());

  it('anonymous visitors are sent to the login page; managers and end users get 404', async () => {
    await request(t.app).get('/admin/keys').expect(303).expect('location', '/login');
    for (const { agent: other, csrf: _csrf } of await outsiders(t)) {
      await other.get('/admin/keys').expect(404);
      await other.post('/admin/keys').type('form').send({ _csrf }).expect(404);
      await other.post(`/admin/keys/${firstKid}/retire`).type('form').send({ _csrf }).expect(404);
    }
    assert.equal(await countRows(t.db, 'signing_keys'), 1);
  });

  it('lists every key with status, dates, public key PEM and whether its private key file is present', async () => {
    const page = seen(await agent.get('/admin/keys').expect(200));
    assert.match(page.text, new RegExp(`<code>${firstKid}</code> <span class="status status-active">Active</span>`));
    const pem = (await t.db('signing_keys').where({ kid: firstKid }).first()).public_key_pem as string;
    assert.ok(page.text.includes(pem.trim()), 'the public key PEM is shown');
    assert.match(page.text, /Present in the data directory/);
    assert.match(page.text, /href="\/\.well-known\/portico-keys\.json"/);
  });

  it('refuses actions without their CSRF token (403)', async () => {
    await agent.post('/admin/keys').type('form').send({}).expect(403);
    await agent.post(`/admin/keys/${firstKid}/retire`).type('form').send({}).expect(403);
    assert.equal(await countRows(t.db, 'signing_keys'), 1);
  });

  it('generates a trusted key: published, its private key in DATA_DIR/keys (0600), one audit event', async () => {
    const res = await post('/admin/keys');
    assert.equal(res.status, 303);
    assert.equal(res.headers.location, '/admin/keys');
    const row = await t.db('signing_keys').whereNot({ kid: firstKid }).first();
    secondKid = row.kid;
    assert.equal(row.status, 'trusted');
    assert.equal(row.activated_at, null);
    const page = seen(await agent.get('/admin/keys').expect(200));
    assert.match(page.text, new RegExp(`The key ${secondKid} has been generated`));
    assert.match(page.text, new RegExp(`<code>${secondKid}</code> <span class="status">Trusted</span>`));
    const file = path.join(keysDir(t.dataDir), `${secondKid}.pem`);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(
      (await published()).map((k) => [k.kid, k.status]).sort(),
      [
        [firstKid, 'active'],
        [secondKid, 'trusted'],
      ].sort(),
    );
    const events = await auditOf(t.db, 'signing_key', secondKid);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.action, 'signing_key.generated');
    assert.equal(events[0]!.actor, adminId);
    assert.deepEqual(events[0]!.after, { kid: secondKid, algorithm: 'Ed25519', status: 'trusted' });
  });

  it('refuses to retire the active key, with a clear message and no change', async () => {
    const res = await post(`/admin/keys/${firstKid}/retire`);
    assert.equal(res.status, 303);
    const page = seen(await agent.get(res.headers.location).expect(200));
    assert.match(page.text, /The active key cannot be retired\. Make another key active first\./);
    assert.equal(await statusOf(firstKid), 'active');
    assert.equal((await auditOf(t.db, 'signing_key', firstKid)).length, 0);
  });

  it('makes a trusted key active; the previously active key becomes trusted (one audit event)', async () => {
    t.clock.advance(60_000);
    const res = await post(`/admin/keys/${secondKid}/activate`);
    assert.equal(res.status, 303);
    assert.match(seen(await agent.get('/admin/keys')).text, new RegExp(`The key ${secondKid} now signs`));
    assert.equal(await statusOf(secondKid), 'active');
    assert.equal(await statusOf(firstKid), 'trusted');
    assert.equal(await countRows(t.db, 'signing_keys', { status: 'active' }), 1);
    assert.ok((await t.db('signing_keys').where({ kid: secondKid }).first()).activated_at);
    assert.deepEqual(
      (await published()).map((k) => [k.kid, k.status]).sort(),
      [
        [firstKid, 'trusted'],
        [secondKid, 'active'],
      ].sort(),
    );
    const events = await auditOf(t.db, 'signing_key', secondKid);
    assert.equal(events.length, 2);
    assert.equal(events[1]!.action, 'signing_key.activated');
    assert.deepEqual(events[1]!.before, {
      kid: secondKid,
      algorithm: 'Ed25519',
      status: 'trusted',
      activeKid: firstKid,
    });
    assert.deepEqual(events[1]!.after, {
      kid: secondKid,
      algorithm: 'Ed25519',
      status: 'active',
      activeKid: secondKid,
    });
    const again = await post(`/admin/keys/${secondKid}/activate`);
    assert.match(seen(await agent.get(again.headers.location)).text, /already the active key/);
  });

  it('retires a trusted key: it leaves the published list and cannot come back', async () => {
    t.clock.advance(60_000);
    const res = await post(`/admin/keys/${firstKid}/retire`);
    assert.equal(res.status, 303);
    const page = seen(await agent.get('/admin/keys').expect(200));
    assert.match(page.text, new RegExp(`The key ${firstKid} has been retired`));
    assert.match(page.text, new RegExp(`<code>${firstKid}</code> <span class="status status-disabled">Retired</span>`));
    assert.equal(await statusOf(firstKid), 'retired');
    assert.ok((await t.db('signing_keys').where({ kid: firstKid }).first()).retired_at);
    assert.deepEqual(
      (await published()).map((k) => k.kid),
      [secondKid],
    );
    const [event] = await auditOf(t.db, 'signing_key', firstKid);
    assert.equal(event!.action, 'signing_key.retired');
    assert.equal(event!.before.status, 'trusted');
    assert.equal(event!.after.status, 'retired');

    const reactivate = await post(`/admin/keys/${firstKid}/activate`);
    assert.match(
      seen(await agent.get(reactivate.headers.location)).text,
      /Only a trusted key can become the active key/,
    );
    const reretire = await post(`/admin/keys/${firstKid}/retire`);
    assert.match(seen(await agent.get(reretire.headers.location)).text, /already retired/);
    assert.equal(await statusOf(firstKid), 'retired');
    assert.equal((await auditOf(t.db, 'signing_key', firstKid)).length, 1);
  });

  it('refuses to activate a key whose private key file is missing', async () => {
    await post('/admin/keys');
    const third = (await t.db('signing_keys').where({ status: 'trusted' }).first()).kid;
    fs.rmSync(path.join(keysDir(t.dataDir), `${third}.pem`));
    const page = seen(await agent.get('/admin/keys').expect(200));
    assert.match(page.text, /Missing from the data directory/);
    const res = await post(`/admin/keys/${third}/activate`);
    assert.match(seen(await agent.get(res.headers.location)).text, /private key file of this key is missing/);
    assert.equal(await statusOf(third), 'trusted');
    assert.equal(await statusOf(secondKid), 'active');
  });

  it('unknown and malformed kids are 404', async () => {
    const page = await agent.get('/admin/keys').expect(200);
    const _csrf = csrfFrom(page.text);
    await agent.post('/admin/keys/ed25519-doesnotexist0000/activate').type('form').send({ _csrf }).expect(404);
    await agent.post('/admin/keys/..%2F..%2Fsecret/retire').type('form').send({ _csrf }).expect(404);
    await agent
      .post(`/admin/keys/${'x'.repeat(65)}/retire`)
      .type('form')
      .send({ _csrf })
      .expect(404);
  });

  it('no response, log line or audit event contains private key material', async () => {
    bodies.push(JSON.stringify(await published()));
    for (const body of bodies) assert.ok(!body.includes('PRIVATE KEY'), 'no private key in a response');
    assert.ok(!JSON.stringify(t.logs).includes('PRIVATE KEY'), 'no private key in the log');
    const audit = JSON.stringify(await t.db('audit_events').select('before_state', 'after_state'));
    assert.ok(!audit.includes('PRIVATE KEY') && !audit.includes('BEGIN'), 'no key material in the audit trail');
    for (const file of fs.readdirSync(keysDir(t.dataDir))) {
      const pem = fs.readFileSync(path.join(keysDir(t.dataDir), file), 'utf8');
      const base64 = pem.split('\n')[1]!;
      for (const body of bodies) assert.ok(!body.includes(base64), 'not even the private key body');
    }
  });
});
