import assert from 'node:assert/strict';
import request from 'supertest';
import { adminAgent, buildTestApp, createAccount, csrfFrom, loginAgent, type TestApp } from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import { makeDevice } from '../helpers/device.ts';
import * as catalog from '../../app/models/catalog.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;

/** Words, not codes: the console's audit log, the manager's activity and a license's history say what happened and why. */
describe('Labels instead of codes', function () {
  this.timeout(60_000);
  let t: TestApp;
  let w: World;
  const KEY = 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA';
  const RAW = ['activation.granted', 'activation.refused', 'license.disabled', 'license_disabled'];
  const activate = (hardwareId: string) =>
    request(t.app)
      .post('/api/v1/activate')
      .set('Accept', 'application/json')
      .send({ request: makeDevice(hardwareId).activationRequest({ product: 'cad', licenseKey: KEY }).text });
  const noRawCodes = (html: string) => {
    for (const code of RAW) assert.ok(!html.includes(code), `raw code ${code} on the page`);
  };

  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    // portalWorld starts its licenses at the wall clock's now; the app's clock is its own.
    await t
      .db('licenses')
      .where({ id: w.licenseA })
      .update({ start_date: new Date(t.clock.now().getTime() - 86_400_000) });
    const granted = await activate('HW-GRANTED');
    assert.equal(granted.status, 200, JSON.stringify(granted.body));
    // The manager disables the license; the next activation is refused and says why.
    const manager = await loginAgent(t.app, w.managerAll.email, w.managerAll.password);
    const page = await manager.get(`/portal/licenses/${w.licenseA}`).expect(200);
    await manager
      .post(`/portal/licenses/${w.licenseA}/disable`)
      .type('form')
      .send({ _csrf: csrfFrom(page.text), confirmed: '1' })
      .expect(303);
    const refused = await activate('HW-REFUSED').expect(403);
    assert.equal(refused.body.error.code, 'license_disabled');
  });
  after(async () => t.close());

  const managerIn = async (language: string) => {
    const m = await createAccount(t.db, { role: 'manager', language });
    await catalog.assignManager(t.db, m.id, w.orderA, new Date());
    return loginAgent(t.app, m.email, m.password);
  };

  const cases = [
    {
      lng: 'en',
      granted: 'Activation granted',
      refused: 'Activation refused: the license is disabled',
      disabled: 'License disabled',
    },
    {
      lng: 'de',
      granted: 'Aktivierung erteilt',
      refused: 'Aktivierung abgelehnt: die Lizenz ist deaktiviert',
      disabled: 'Lizenz deaktiviert',
    },
    {
      lng: 'fr',
      granted: 'Activation accordée',
      refused: 'Activation refusée : la licence est désactivée',
      disabled: 'Licence désactivée',
    },
  ];

  for (const c of cases) {
    it(`${c.lng}: the manager dashboard's activity and the license's history say why an activation was refused`, async () => {
      const agent = await managerIn(c.lng);
      const dashboard = await agent.get('/portal').expect(200);
      assert.ok(dashboard.text.includes(c.granted), dashboard.text);
      assert.ok(dashboard.text.includes(c.refused));
      assert.ok(dashboard.text.includes(c.disabled));
      noRawCodes(dashboard.text);
      const license = await agent.get(`/portal/licenses/${w.licenseA}`).expect(200);
      assert.ok(license.text.includes(c.refused));
      noRawCodes(license.text);
    });

    it(`${c.lng}: the console's audit log and license page label every event, refusals with their reason`, async () => {
      const { agent } = await adminAgent(t, c.lng);
      const log = await agent.get('/admin/audit').expect(200);
      assert.ok(log.text.includes(c.granted));
      assert.ok(log.text.includes(c.refused));
      noRawCodes(log.text);
      const license = await agent.get(`/admin/licenses/${w.licenseA}`).expect(200);
      assert.ok(license.text.includes(c.refused));
      noRawCodes(license.text);
    });
  }
});
