import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import type { ParsedMail } from 'mailparser';
import request from 'supertest';
import { adminAgent, auditActions, buildTestApp, countRows, submitForm, type TestApp } from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import { makeDevice } from '../helpers/device.ts';
import { download, upload } from '../helpers/offline.ts';
import { fromOf, startSmtp, toOf } from '../helpers/smtp.ts';
import * as brandings from '../../app/models/brandings.ts';
import * as optouts from '../../app/models/notification-optouts.ts';
import * as notifications from '../../app/models/notifications.ts';
import { getSettings, saveSettings, type Settings, settingDefaults } from '../../app/models/settings.ts';
import { runDueJobs } from '../../app/lib/queue.ts';
import { devicePublicKeyString } from '../../sdk/src/envelope.ts';
import { dataDirSecretBox } from '../../app/crypto/secret-box.ts';
import { systemActor } from '../../app/services/context.ts';
import { issueRefreshFile } from '../../app/services/license-files.ts';
import {
  dailySlot,
  MAX_DIGEST_ITEMS,
  narrowestWindow,
  runChecks,
  runNotifications,
  sendManagerDigests,
  sendStaffDigests,
  weeklySlot,
} from '../../app/services/notifications.ts';
import { readUnsubscribeToken } from '../../app/services/unsubscribe.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;

const DAY = 86_400_000;
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);
const USERS = 'users.northwind.test';

/**
 * The notification engine (docs/notifications.md) on one app and database, with a clock the test
 * moves: each new mail kind through a real SMTP server (language, branding, plain text, the one-click
 * unsubscribe headers), the dedupe keys (a second check, two checks at the same instant), the
 * opt-outs, and the digests.
 */
describe('Notifications: reminders and digests through a real SMTP server', function () {
  this.timeout(60_000);
  let t: TestApp;
  let w: World;
  let smtp: Awaited<ReturnType<typeof startSmtp>>;
  let ctx: TestApp['app']['locals']['ctx'];
  let adminCount: number;

  const settingsWith = (over: Partial<Settings> = {}): Settings => ({ ...settingDefaults('en'), ...over });
  const inDays = (d: number) => new Date(t.clock.now().getTime() + d * DAY);
  const ymd = (d: Date) => d.toISOString().slice(0, 10);

  async function delivered(): Promise<ParsedMail[]> {
    await runDueJobs(ctx);
    return smtp.take();
  }
  const to = (mails: ParsedMail[], address: string) =>
    mails.filter((m) => toOf(m)?.toLowerCase() === address.toLowerCase());

  /** The List-Unsubscribe link: a one-click link on `host` whose token names this address and kind. */
  function assertUnsubscribe(m: ParsedMail, host: string, kind: string) {
    const header = (m.headerLines.find((h) => h.key === 'list-unsubscribe')?.line ?? '').replace(/\r?\n\s+/g, ' ');
    const link = /^List-Unsubscribe: <http:\/\/([^/]+)\/unsubscribe\/([^>]+)>$/.exec(header);
    assert.ok(link, header);
    assert.equal(link[1], host);
    assert.deepEqual(readUnsubscribeToken(dataDirSecretBox(t.dataDir), link[2]!), {
      email: toOf(m)!.toLowerCase(),
      kind,
    });
    const post = m.headerLines.find((h) => h.key === 'list-unsubscribe-post')?.line;
    assert.equal(post, 'List-Unsubscribe-Post: List-Unsubscribe=One-Click');
    assert.ok(m.text!.includes(`/unsubscribe/${link[2]}`), 'the link in the plain-text footer too');
  }

  function assertNorthwind(m: ParsedMail) {
    assert.equal(fromOf(m)?.name, 'Northwind Support');
    assert.equal(fromOf(m)?.address, 'portal@vendor.example');
    const html = String(m.html);
    assert.ok(html.includes('src="http://northwind.test/branding/logo"'), 'the logo on a host of the branding');
    assert.ok(html.includes('#123456'), 'the branding colour');
    for (const part of [html, m.text!]) assert.ok(!part.includes('portico.test'), 'no link on BASE_URL');
    assert.ok(!m.text!.includes('<p>') && !m.text!.includes('<a '), 'the plain-text part has no markup');
  }

  before(async () => {
    smtp = await startSmtp();
    t = await buildTestApp({ smtpUrl: `smtp://127.0.0.1:${smtp.port}`, mailFrom: 'Portico <portal@vendor.example>' });
    ctx = t.app.locals.ctx;
    w = await portalWorld(t.db);
    const now = t.clock.now();
    const brandingId = await brandings.insert(
      t.db,
      {
        name: 'northwind',
        displayName: 'Northwind Licensing',
        primaryColor: '#123456',
        accentColor: '#abcdef',
        supportEmail: 'support@northwind.test',
        defaultLanguage: 'de',
        mailFromName: 'Northwind Support',
        mailReplyTo: 'help@northwind.test',
      },
      now,
    );
    await brandings.insertHost(t.db, brandingId, USERS, 'portal', now);
    await brandings.insertHost(t.db, brandingId, 'northwind.test', null, now);
    await brandings.setLogo(t.db, brandingId, { data: PNG, mime: 'image/png' }, now);
    // Order A's mail carries the Northwind branding; order B's the built-in one.
    await t.db('orders').where({ id: w.orderA }).update({ branding_id: brandingId });
    await t.db('accounts').where({ id: w.endUser.id }).update({ language: 'fr' });
    await t.db('accounts').where({ id: w.managerB.id }).update({ language: 'es' });
    await optouts.turnOff(t.db, w.secondUser.email, 'license_expiring', now);
    await optouts.turnOff(t.db, w.managerNone.email, 'manager_digest', now);
    await optouts.turnOff(t.db, w.operator.email, 'seats_high', now);
    adminCount = await countRows(t.db, 'accounts', { role: 'admin', disabled: false });
  });
  after(async () => {
    await t.close();
    await smtp.close();
  });

  it('windows and slots: the narrowest window a date is in; the latest daily and weekly slot not after now', () => {
    assert.equal(narrowestWindow([60, 30, 7, 1], 59 * DAY), 60);
    assert.equal(narrowestWindow([60, 30, 7, 1], 30 * DAY), 30);
    assert.equal(narrowestWindow([60, 30, 7, 1], 5 * DAY), 7);
    assert.equal(narrowestWindow([60, 30, 7, 1], 61 * DAY), null);
    const wed = new Date('2030-01-02T10:30:00Z'); // a Wednesday
    assert.equal(dailySlot(wed, 7).toISOString(), '2030-01-02T07:00:00.000Z');
    assert.equal(dailySlot(wed, 11).toISOString(), '2030-01-01T11:00:00.000Z');
    assert.equal(weeklySlot(wed, 3, 10).toISOString(), '2030-01-02T10:00:00.000Z');
    assert.equal(weeklySlot(wed, 3, 11).toISOString(), '2029-12-26T11:00:00.000Z');
    assert.equal(weeklySlot(wed, 1, 7).toISOString(), '2029-12-31T07:00:00.000Z');
    assert.equal(weeklySlot(wed, 7, 23).toISOString(), '2029-12-30T23:00:00.000Z');
  });

  it('license expiring: the narrowest window, once, to the users and the dispatch recipient in their language, branded; not to who turned it off', async () => {
    await t
      .db('licenses')
      .where({ id: w.userLicense })
      .update({ expires_at: inDays(59.5) });
    await t
      .db('licenses')
      .where({ id: w.licenseA })
      .update({ expires_at: inDays(6.5), dispatched_to: 'Kim@Example.com' });
    const report = await runChecks(ctx, settingsWith());
    assert.equal(report.occurrences, 2);
    assert.equal(report.mails, 2, 'the end user and the dispatch recipient; the second user turned it off');
    const mails = await delivered();
    assert.equal(mails.length, 2);
    const [fr] = to(mails, w.endUser.email);
    const date = ymd(inDays(59.5));
    assert.equal(fr!.subject, `Votre licence Acme Analytics expire le ${date}`);
    assert.match(fr!.text!, /^Bonjour End User,/);
    assert.ok(fr!.text!.includes(`expire le ${date}, dans 60 jours`));
    assert.ok(fr!.text!.includes(`http://${USERS}/`), 'the link on the portal’s bound host');
    assertNorthwind(fr!);
    assertUnsubscribe(fr!, 'northwind.test', 'license_expiring');
    const [de] = to(mails, 'kim@example.com');
    assert.equal(
      de!.subject,
      `Ihre Lizenz für Acme CAD läuft am ${ymd(inDays(6.5))} ab`,
      'no account: the branding’s language',
    );
    assert.ok(de!.text!.includes('AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA'), 'the key of a key-based license');
    assert.ok(de!.text!.includes('in 7 Tagen'));
    assertNorthwind(de!);
    assertUnsubscribe(de!, 'northwind.test', 'license_expiring');
    assert.equal(to(mails, w.secondUser.email).length, 0);
    // Each occurrence waits in the digest of each enabled manager of the order (four on order A).
    assert.equal(await countRows(t.db, 'notification_digest_items'), 8);

    const again = await runChecks(ctx, settingsWith());
    assert.equal(again.occurrences, 0, 'the dedupe keys: nothing twice');
    assert.equal((await delivered()).length, 0);
  });

  it('two checks at the same instant insert each occurrence once; a renewed license is announced again', async () => {
    t.clock.advance(53 * DAY); // the user license now has 6.5 days left (the 7-day window); license A has expired
    await t
      .db('licenses')
      .where({ id: w.licenseA })
      .update({ expires_at: inDays(29) }); // renewed
    const [a, b] = await Promise.all([runChecks(ctx, settingsWith()), runChecks(ctx, settingsWith())]);
    assert.equal(a.occurrences + b.occurrences, 2, JSON.stringify([a, b]));
    assert.equal(a.mails + b.mails, 2);
    assert.equal(await countRows(t.db, 'notifications', { kind: 'license_expiring', license_id: w.userLicense }), 2);
    assert.equal(await countRows(t.db, 'notifications', { kind: 'license_expiring', license_id: w.licenseA }), 2);
    const mails = await delivered();
    assert.equal(mails.length, 2);
    assert.ok(to(mails, w.endUser.email)[0]!.text!.includes('dans 7 jours'));
    assert.ok(to(mails, 'kim@example.com')[0]!.text!.includes('in 29 Tagen'), 'the new date, its 30-day window');
  });

  it('maintenance ending: the built-in branding and the installation’s language for an order without a branding', async () => {
    await t
      .db('licenses')
      .where({ id: w.licenseB })
      .update({ maintenance_until: inDays(20), dispatched_to: 'lee@example.com' });
    const report = await runChecks(ctx, settingsWith());
    assert.equal(report.occurrences, 1);
    const [m, ...more] = await delivered();
    assert.equal(more.length, 0);
    assert.equal(toOf(m!), 'lee@example.com');
    assert.equal(m!.subject, `Maintenance of your Acme CAD license ends on ${ymd(inDays(20))}`);
    assert.equal(fromOf(m!)?.name, 'Portico');
    assert.ok(m!.text!.includes('in 20 days') && m!.text!.includes('http://portico.test/'));
    assertUnsubscribe(m!, 'portico.test', 'maintenance_ending');
  });

  it('lease ending: issuing a file records the device’s lease end; its user is reminded within the warning days, once per lease', async () => {
    await t
      .db('licenses')
      .where({ id: w.userLicense })
      .update({ expires_at: inDays(365), allow_offline: true, start_date: null });
    const { publicKey } = crypto.generateKeyPairSync('ed25519');
    const [deviceId] = await t.db('devices').insert({
      license_id: w.userLicense,
      license_user_account_id: w.endUser.id,
      hardware_id: 'HW-LEASE',
      active_hardware_id: 'HW-LEASE',
      hostname: 'atelier-01',
      channel: 'offline',
      device_public_key: devicePublicKeyString(publicKey),
      activated_at: t.clock.now(),
    });
    await t.db('request_nonces').insert({
      nonce: crypto.randomBytes(16).toString('base64url'),
      kind: 'activation',
      license_id: w.userLicense,
      device_id: deviceId,
      created_at: t.clock.now(),
    });
    await issueRefreshFile(ctx, systemActor(), w.userLicense, Number(deviceId));
    const leaseEnd = inDays(30); // offlineLeaseDays' default
    const row = await t.db('devices').where({ id: deviceId }).first('lease_ends_at');
    assert.equal(new Date(row.lease_ends_at).getTime(), leaseEnd.getTime());
    assert.equal((await runChecks(ctx, settingsWith())).occurrences, 0, '30 days left: not yet');

    t.clock.advance(24 * DAY);
    const report = await runChecks(ctx, settingsWith());
    assert.equal(
      report.occurrences,
      2,
      'the lease, and license A (renewed to 29 days, 5 left now) enters the 7-day window',
    );
    const mails = await delivered();
    assert.equal(mails.length, 2);
    assert.equal(to(mails, 'kim@example.com').length, 1);
    const [m] = to(mails, w.endUser.email);
    assert.equal(m!.subject, `La licence hors ligne de atelier-01 expire le ${ymd(leaseEnd)}`);
    assert.ok(m!.text!.includes('dans 6 jours'));
    assertNorthwind(m!);
    assertUnsubscribe(m!, 'northwind.test', 'lease_ending');
    assert.equal((await runChecks(ctx, settingsWith())).occurrences, 0);
  });

  it('seats and refusal spikes: digest items for the managers (no mail of their own), once per period, the spike audited', async () => {
    const now = t.clock.now();
    await t.db('activation_history').insert(
      [1, 2, 3].map((i) => ({
        license_id: w.licenseA,
        event: i === 3 ? 'check_refused' : 'refused',
        channel: 'online',
        hardware_id: `HW-X${i}`,
        detail: 'no_seats',
        occurred_at: new Date(now.getTime() - i * 3_600_000),
      })),
    );
    const settings = settingsWith({ seatsThresholdPercent: 25, refusalSpikeThreshold: 3 });
    const report = await runChecks(ctx, settings);
    // Order A: 3 of 7 seats in use (license A's 3, the user license's users' 2 + 2); order B: 1 of 3.
    assert.equal(await countRows(t.db, 'notifications', { kind: 'seats_high' }), 2);
    assert.equal(await countRows(t.db, 'notifications', { kind: 'refusals_spike' }), 1);
    assert.equal(report.occurrences, 3);
    assert.equal(report.mails, 0);
    assert.equal((await delivered()).length, 0);
    assert.ok((await auditActions(t.db)).includes('license.refusals_spiked'));
    assert.equal((await runChecks(ctx, settings)).occurrences, 0);
    assert.equal((await runChecks(ctx, settingsWith({ refusalSpikeThreshold: 4 }))).occurrences, 0);
  });

  it('the managers’ digest: one mail per manager for all their orders, each item once, their opt-outs respected', async () => {
    const settings = settingsWith({ managerDigestHour: t.clock.now().getUTCHours() });
    const sent = await sendManagerDigests(ctx, settings);
    // managerAll, operator and mixed (order A), managerB and mixed (order B); managerNone turned digests off.
    assert.equal(sent, 4);
    const mails = await delivered();
    assert.equal(mails.length, 4);
    assert.equal(to(mails, w.managerNone.email).length, 0);
    const [all] = to(mails, w.managerAll.email);
    assert.equal(all!.subject, 'Your daily summary from Northwind Licensing');
    assert.ok(all!.text!.includes('Order A-1') && !all!.text!.includes('Order B-1'));
    assert.ok(all!.text!.includes('Acme Analytics license expires on'), all!.text);
    assert.ok(all!.text!.includes('The offline license of atelier-01 (Acme Analytics) runs out on'));
    assert.ok(all!.text!.includes('3 of 7 seats are in use (42 %).'));
    assert.ok(all!.text!.includes('Floating Acme CAD license refused 3 times in 24 hours.'));
    assert.ok(all!.text!.includes(`http://${USERS}/orders/${w.orderA}`), 'the order on the portal’s bound host');
    assertNorthwind(all!);
    assertUnsubscribe(all!, 'northwind.test', 'manager_digest');
    const [mixed] = to(mails, w.mixed.email);
    assert.ok(mixed!.text!.includes('Order A-1') && mixed!.text!.includes('Order B-1'), 'both orders in one mail');
    assert.ok(!to(mails, w.operator.email)[0]!.text!.includes('seats are in use'), 'seats_high turned off');
    const [es] = to(mails, w.managerB.email);
    assert.equal(es!.subject, 'Su resumen diario de Portico');
    assert.ok(es!.text!.includes('1 de 3 puestos están en uso (33 %).'));
    assert.equal(await countRows(t.db, 'notification_digest_items', { digest_id: null }), 0, 'every item claimed');

    assert.equal(await sendManagerDigests(ctx, settings), 0, 'one digest per manager and day');
    t.clock.advance(DAY);
    assert.equal(await sendManagerDigests(ctx, settings), 0, 'nothing new: no digest');
    assert.equal((await delivered()).length, 0);
  });

  it('the staff’s weekly digest: once per admin and week, the week’s occurrences, open requests and failures', async () => {
    const now = t.clock.now();
    const settings = settingsWith({ staffDigestDay: now.getUTCDay() || 7, staffDigestHour: now.getUTCHours() });
    assert.equal(await sendStaffDigests(ctx, settings), adminCount);
    const mails = await delivered();
    assert.equal(mails.length, adminCount);
    const m = to(mails, w.admin.email)[0]!;
    assert.equal(m.subject, 'Portico: your weekly summary');
    assert.ok(m.text!.includes('2 orders with their seats nearly used up'), m.text);
    assert.ok(m.text!.includes('1 offline lease running out'));
    assert.ok(m.text!.includes('0 renewal requests waiting'));
    assert.ok(m.text!.includes('http://portico.test/admin'));
    assertUnsubscribe(m, 'portico.test', 'staff_digest');
    assert.equal(await sendStaffDigests(ctx, settings), 0, 'once per week');
    t.clock.advance(6 * DAY);
    assert.equal(await sendStaffDigests(ctx, settings), 0, 'the same week');
    t.clock.advance(DAY);
    assert.equal(await sendStaffDigests(ctx, settings), adminCount, 'the next week');
    await delivered();
  });

  it('the master switch off: no check, no digest', async () => {
    await t
      .db('licenses')
      .where({ id: w.licenseB })
      .update({ expires_at: inDays(3) });
    await saveSettings(t.db, { notificationsEnabled: false, managerDigestHour: 0 }, t.clock.now());
    assert.deepEqual(await runNotifications(ctx), { occurrences: 0, mails: 0, managerDigests: 0, staffDigests: 0 });
    await saveSettings(t.db, { notificationsEnabled: true }, t.clock.now());
    const on = await runNotifications(ctx);
    assert.equal(on.occurrences, 1);
    assert.equal(on.managerDigests, 2, 'managerB and mixed, the managers of order B');
    await delivered();
  });

  it('settings: the notification section saves; bad windows and hours are 422 with clear messages in the admin’s language', async () => {
    const { agent } = await adminAgent(t, 'de');
    const page = await agent.get('/admin/settings').expect(200);
    assert.match(page.text, /Benachrichtigungen/);
    assert.match(page.text, /name="notification_expiry_windows"[^>]*value="60, 30, 7, 1"/);
    const form = {
      default_language: 'en',
      offline_lease_days: '30',
      airgap_code_minutes: '60',
      audit_retention_days: '400',
      notifications_enabled: 'on',
      notification_expiry_windows: '7, 7',
      notification_maintenance_windows: '0',
      notification_seats_threshold: '101',
      notification_lease_days: '7',
      notification_refusal_spike: '10',
      notification_manager_digest_hour: '24',
      notification_staff_digest_day: '8',
      notification_staff_digest_hour: '7',
    };
    const before = await getSettings(t.db, settingDefaults('en'));
    const bad = await submitForm(agent, '/admin/settings', '/admin/settings', form);
    assert.equal(bad.status, 422);
    for (const field of [
      'notification_expiry_windows',
      'notification_maintenance_windows',
      'notification_seats_threshold',
      'notification_manager_digest_hour',
      'notification_staff_digest_day',
    ])
      assert.match(bad.text, new RegExp(`id="field-${field}-error"`), field);
    assert.match(bad.text, /Geben Sie ganze Tage zwischen 1 und 3650 ein/);
    assert.match(bad.text, /value="7, 7"/, 'what was typed stays');
    assert.deepEqual(await getSettings(t.db, settingDefaults('en')), before, 'nothing saved');
    const ok = await submitForm(agent, '/admin/settings', '/admin/settings', {
      ...form,
      notification_expiry_windows: '1; 90 14',
      notification_maintenance_windows: '45',
      notification_seats_threshold: '80',
      notification_manager_digest_hour: '6',
      notification_staff_digest_day: '5',
    });
    assert.equal(ok.status, 303);
    const saved = await getSettings(t.db, settingDefaults('en'));
    assert.deepEqual(saved.expiryWindowsDays, [90, 14, 1]);
    assert.deepEqual(saved.maintenanceWindowsDays, [45]);
    assert.equal(saved.staffDigestDay, 5);
  });

  it('an offline activation through the portal records the device’s lease end, capped by the license’s expiry', async () => {
    const expires = (await t.db('licenses').where({ id: w.licenseB }).first('expires_at')).expires_at;
    const device = makeDevice('HW-NOTIFY');
    const agent = request.agent(t.app);
    const res = await upload(
      agent,
      device.activationRequest({ product: 'cad', licenseKey: 'BBBB-BBBB-BBBB-BBBB-BBBB-BBBB-BBBB' }).text,
    );
    assert.equal(res.status, 200, res.text);
    await download(agent, res.text);
    const row = await t.db('devices').where({ hardware_id: 'HW-NOTIFY' }).first('lease_ends_at', 'channel');
    assert.equal(row.channel, 'offline');
    assert.equal(new Date(row.lease_ends_at).getTime(), new Date(expires).getTime(), 'the license ends before 30 days');
  });

  it('a digest shows at most MAX_DIGEST_ITEMS items and counts the rest', async () => {
    const now = t.clock.now();
    for (let i = 0; i < MAX_DIGEST_ITEMS + 5; i++) {
      const id = await notifications.insertOnce(t.db, {
        uid: `cap-${i}`,
        dedupeKey: `test:cap:${i}`,
        kind: 'seats_high',
        orderId: w.orderB,
        detail: { orderRef: 'B-1', used: i, seats: 200, percent: 0 },
        occurredAt: now,
      });
      await notifications.addDigestItem(t.db, id!, w.managerB.id, now);
    }
    t.clock.advance(DAY);
    await sendManagerDigests(ctx, settingsWith({ managerDigestHour: 0 }));
    const [m] = to(await delivered(), w.managerB.email);
    assert.equal((m!.text!.match(/^- /gm) ?? []).length, MAX_DIGEST_ITEMS);
    assert.ok(m!.text!.includes(`Hay ${MAX_DIGEST_ITEMS + 5} asuntos que revisar`));
    assert.ok(m!.text!.includes('… y 5 asuntos más: el portal los muestra todos.'));
  });
});
