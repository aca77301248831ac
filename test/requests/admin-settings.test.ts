import assert from 'node:assert/strict';
import request from 'supertest';
import { adminAgent, auditOf, countRows, submitForm, type TestApp } from '../helpers/app.ts';
import { adminConsole, outsiders, type Agent } from '../helpers/console.ts';
import { getSettings, saveSettings, settingDefaults } from '../../app/models/settings.ts';
import { notificationFields } from '../helpers/settings.ts';

const valid = (over: Record<string, string> = {}) => ({
  end_user_self_service: 'on',
  manager_second_factor: 'on',
  default_language: 'es',
  offline_lease_days: '14',
  airgap_code_minutes: '120',
  audit_retention_days: '400',
  ...notificationFields,
  ...over,
});

/** The notification settings at their defaults (docs/notifications.md). */
const NOTIFICATION_DEFAULTS = {
  notificationsEnabled: true,
  expiryWindowsDays: [60, 30, 7, 1],
  maintenanceWindowsDays: [30, 7],
  seatsThresholdPercent: 90,
  leaseWarningDays: 7,
  refusalSpikeThreshold: 10,
  managerDigestHour: 7,
  staffDigestDay: 1,
  staffDigestHour: 7,
};

/** Every setting before anything is saved, with DEFAULT_LANGUAGE=fr. */
const NEVER_SAVED = {
  endUserSelfService: false,
  managerSecondFactor: false,
  defaultLanguage: 'fr',
  offlineLeaseDays: 30,
  airgapCodeMinutes: 60,
  acceptLegacyAirgapDeactivation: true,
  auditRetentionDays: 400,
  webhookPrivateTargets: false,
  ...NOTIFICATION_DEFAULTS,
};

describe('console: settings', () => {
  let t: TestApp;
  let agent: Agent;
  let adminId: number;
  const defaults = settingDefaults('fr');

  before(async () => ({ t, agent, adminId } = await adminConsole({ defaultLanguage: 'fr' })));
  after(async () => t.close());

  it('anonymous visitors are sent to the login page; managers and end users get 404', async () => {
    await request(t.app).get('/admin/settings').expect(303).expect('location', '/login');
    for (const { agent: other, csrf } of await outsiders(t)) {
      await other.get('/admin/settings').expect(404);
      await other
        .post('/admin/settings')
        .type('form')
        .send({ _csrf: csrf, ...valid() })
        .expect(404);
    }
    assert.equal(await countRows(t.db, 'settings'), 0);
  });

  it('has typed defaults for keys never saved; the language default is DEFAULT_LANGUAGE', async () => {
    assert.deepEqual(await getSettings(t.db, defaults), NEVER_SAVED);
    const page = await agent.get('/admin/settings').expect(200);
    assert.match(
      page.text,
      /<input type="checkbox" id="field-end_user_self_service" name="end_user_self_service"(?! checked)/,
    );
    assert.match(page.text, /<option value="fr" lang="fr" selected>/);
    assert.match(page.text, /name="offline_lease_days" type="number"\s+value="30"/);
    assert.match(page.text, /name="airgap_code_minutes" type="number"\s+value="60"/);
  });

  it('refuses a form without its CSRF token (403)', async () => {
    await agent.post('/admin/settings').type('form').send(valid()).expect(403);
    assert.equal(await countRows(t.db, 'settings'), 0);
  });

  it('bad input is 422 with field errors and the submitted values; nothing is saved', async () => {
    const bad = await submitForm(
      agent,
      '/admin/settings',
      '/admin/settings',
      valid({ offline_lease_days: '0', airgap_code_minutes: '4', default_language: 'xx' }),
    );
    assert.equal(bad.status, 422);
    for (const field of ['offline_lease_days', 'airgap_code_minutes', 'default_language'])
      assert.match(bad.text, new RegExp(`id="field-${field}-error"`), field);
    assert.match(bad.text, /This number is out of the allowed range/);
    assert.match(bad.text, /name="offline_lease_days" type="number"\s+value="0"/);
    const tooMuch = await submitForm(
      agent,
      '/admin/settings',
      '/admin/settings',
      valid({ offline_lease_days: '3651', airgap_code_minutes: '10081' }),
    );
    assert.equal(tooMuch.status, 422);
    const notNumbers = await submitForm(
      agent,
      '/admin/settings',
      '/admin/settings',
      valid({ offline_lease_days: '1.5', airgap_code_minutes: '' }),
    );
    assert.equal(notNumbers.status, 422);
    assert.match(notNumbers.text, /id="field-airgap_code_minutes"[^>]*aria-invalid="true"/);
    assert.equal(await countRows(t.db, 'settings'), 0);
    assert.equal(await countRows(t.db, 'audit_events', { action: 'settings.updated' }), 0);
  });

  it('shows field errors in the admin language', async () => {
    const { agent: german } = await adminAgent(t, 'de');
    const bad = await submitForm(german, '/admin/settings', '/admin/settings', valid({ default_language: 'xx' }));
    assert.equal(bad.status, 422);
    assert.match(bad.text, /<html lang="de">/);
    assert.match(bad.text, /Wählen Sie eine der angebotenen Sprachen/);
    assert.match(bad.text, /Offline-Nutzungsdauer \(Tage\)/);
  });

  it('saves every setting with one audited change (before/after); saving again updates the same keys', async () => {
    const res = await submitForm(agent, '/admin/settings', '/admin/settings', valid());
    assert.equal(res.status, 303);
    assert.equal(res.headers.location, '/admin/settings');
    const page = await agent.get('/admin/settings').expect(200);
    assert.match(page.text, /The settings have been saved/);
    assert.match(page.text, /name="end_user_self_service" checked/);
    const saved = {
      endUserSelfService: true,
      managerSecondFactor: true,
      defaultLanguage: 'es',
      offlineLeaseDays: 14,
      airgapCodeMinutes: 120,
      acceptLegacyAirgapDeactivation: false,
      auditRetentionDays: 400,
      webhookPrivateTargets: false,
      ...NOTIFICATION_DEFAULTS,
    };
    assert.deepEqual(await getSettings(t.db, defaults), saved);

    let events = await auditOf(t.db, 'settings', 'installation');
    assert.equal(events.length, 1);
    assert.equal(events[0]!.action, 'settings.updated');
    assert.equal(events[0]!.actor, adminId);
    assert.deepEqual(events[0]!.before, NEVER_SAVED);
    assert.deepEqual(events[0]!.after, saved);

    // Unchecked boxes are absent from the form: they mean "off".
    const again = await submitForm(agent, '/admin/settings', '/admin/settings', {
      default_language: 'de',
      offline_lease_days: '3650',
      airgap_code_minutes: '5',
      audit_retention_days: '30',
      notification_expiry_windows: '14 3',
      notification_maintenance_windows: '90,30',
      notification_seats_threshold: '100',
      notification_lease_days: '2',
      notification_refusal_spike: '50',
      notification_manager_digest_hour: '0',
      notification_staff_digest_day: '7',
      notification_staff_digest_hour: '23',
    });
    assert.equal(again.status, 303);
    const changed = {
      endUserSelfService: false,
      managerSecondFactor: false,
      defaultLanguage: 'de',
      offlineLeaseDays: 3650,
      airgapCodeMinutes: 5,
      acceptLegacyAirgapDeactivation: false,
      auditRetentionDays: 30,
      webhookPrivateTargets: false,
      notificationsEnabled: false,
      expiryWindowsDays: [14, 3],
      maintenanceWindowsDays: [90, 30],
      seatsThresholdPercent: 100,
      leaseWarningDays: 2,
      refusalSpikeThreshold: 50,
      managerDigestHour: 0,
      staffDigestDay: 7,
      staffDigestHour: 23,
    };
    assert.deepEqual(await getSettings(t.db, defaults), changed);
    assert.equal(await countRows(t.db, 'settings'), 17, 'one row per key, updated in place');
    events = await auditOf(t.db, 'settings', 'installation');
    assert.equal(events.length, 2);
    assert.deepEqual(events[1]!.before, saved);
    assert.deepEqual(events[1]!.after, changed);
  });

  it('getSettings falls back to the default for an unreadable stored value; saveSettings upserts', async () => {
    await t.db('settings').where({ key: 'offline_lease_days' }).update({ value: 'many' });
    await t.db('settings').where({ key: 'end_user_self_service' }).update({ value: 'perhaps' });
    const s = await getSettings(t.db, defaults);
    assert.equal(s.offlineLeaseDays, 30);
    assert.equal(s.endUserSelfService, false);
    await saveSettings(t.db, { offlineLeaseDays: 7 }, new Date());
    assert.equal((await getSettings(t.db, defaults)).offlineLeaseDays, 7);
    await t.db('settings').where({ key: 'airgap_code_minutes' }).delete();
    await saveSettings(t.db, { airgapCodeMinutes: 90 }, new Date());
    assert.equal((await getSettings(t.db, defaults)).airgapCodeMinutes, 90);
  });
});
