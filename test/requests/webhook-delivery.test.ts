import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { adminAgent, auditOf, buildTestApp, countRows, submitForm, type TestApp } from '../helpers/app.ts';
import { portalWorld } from '../helpers/portal.ts';
import { enqueuePeriodicJobs, runDueJobs } from '../../app/lib/queue.ts';
import { injectSerializationFailures, inTransaction } from '../../app/lib/transaction.ts';
import { postWebhook } from '../../app/lib/webhook-target.ts';
import { saveSettings } from '../../app/models/settings.ts';
import { systemActor } from '../../app/services/context.ts';
import { publishEvent, publishExpiringLicenses } from '../../app/services/events.ts';
import * as licenseService from '../../app/services/licenses.ts';
import {
  createEndpoint,
  DISABLE_AFTER_FAILING_MS,
  KEEP_EVENTS_MS,
  purgeOldEvents,
  RETRY_SCHEDULE_MS,
  ROTATION_OVERLAP_MS,
  rotateSecret,
  webhookDepsOf,
} from '../../app/services/webhooks.ts';

interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
}

/**
 * The webhook test of the issue: a real HTTP receiver on loopback that fails the first deliveries,
 * driven with the ManualClock and runDueJobs — retries on their schedule, signatures verified the
 * receiver's way (standardwebhooks), one de-duplication id per event, the delivery log, "send
 * again", rotation, automatic disabling with the vendor's mail, the address checks, and nothing
 * published for a change that rolled back.
 */
describe('webhook delivery to a real receiver', function () {
  this.timeout(60_000);
  let t: TestApp;
  let w: Awaited<ReturnType<typeof portalWorld>>;
  let server: http.Server;
  let base: string;
  const received: Received[] = [];
  /** Status codes the receiver answers per path, in turn (then 200). */
  const plan = new Map<string, number[]>();
  const ctx = () => t.app.locals.ctx;
  const deps = () => webhookDepsOf(ctx());
  const actor = systemActor('test');

  const allowPrivate = (on: boolean) =>
    inTransaction(t.db, (trx) => saveSettings(trx, { webhookPrivateTargets: on }, t.clock.now()));
  const onPath = (path: string) => received.filter((r) => r.path === path);
  /** Verifies as a receiver does, at the time the request says it was sent (the test's clock is not the real one). */
  const verify = (secret: string, r: Received, body = r.body) => {
    const realNow = Date.now;
    Date.now = () => Number(r.headers['webhook-timestamp']) * 1000;
    try {
      return new Webhook(secret).verify(body, r.headers);
    } finally {
      Date.now = realNow;
    }
  };
  const deliveryOf = async (endpointId: number) =>
    t.db('webhook_deliveries').where({ endpoint_id: endpointId }).orderBy('id', 'desc').first();

  before(async () => {
    t = await buildTestApp();
    w = await portalWorld(t.db);
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = req.url ?? '/';
        received.push({ path, headers: req.headers as Record<string, string>, body: Buffer.concat(chunks).toString() });
        const status = plan.get(path)?.shift() ?? 200;
        res.writeHead(status, { 'content-type': 'text/plain' }).end(`receiver says ${status}`);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await allowPrivate(true);
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await t.close();
  });

  let crm: { id: number; secret: string };

  it('retries a failing receiver on the schedule until it answers 2xx, with one webhook-id and valid signatures', async () => {
    crm = await createEndpoint(deps(), actor, null, {
      url: `${base}/crm`,
      description: 'CRM',
      events: ['license.disabled', 'license.changed', 'device.reset'],
    });
    plan.set('/crm', [500, 502]);
    await licenseService.setLicenseEnabled(t.app.locals.ctx, actor, w.licenseA, false);
    assert.equal(await countRows(t.db, 'webhook_events'), 1);
    assert.equal(await countRows(t.db, 'jobs', { kind: 'webhook.deliver' }), 1);

    const start = t.clock.now().getTime();
    assert.equal(await runDueJobs(ctx()), 1);
    let d = await deliveryOf(crm.id);
    assert.equal(d.state, 'pending');
    assert.equal(Number(d.attempts), 1);
    assert.equal(await runDueJobs(ctx()), 0, 'the retry is not due yet');
    t.clock.advance(RETRY_SCHEDULE_MS[0]! - 1);
    assert.equal(await runDueJobs(ctx()), 0);
    t.clock.advance(1);
    assert.equal(await runDueJobs(ctx()), 1);
    d = await deliveryOf(crm.id);
    assert.equal(Number(d.attempts), 2);
    t.clock.advance(RETRY_SCHEDULE_MS[1]!);
    assert.equal(await runDueJobs(ctx()), 1);
    d = await deliveryOf(crm.id);
    assert.equal(d.state, 'delivered');
    assert.equal(Number(d.attempts), 3);

    const got = onPath('/crm');
    assert.equal(got.length, 3);
    assert.deepEqual(
      got.map((r) => Number(r.headers['webhook-timestamp']) * 1000 - Math.floor(start / 1000) * 1000),
      [0, RETRY_SCHEDULE_MS[0], RETRY_SCHEDULE_MS[0]! + RETRY_SCHEDULE_MS[1]!],
    );
    assert.equal(new Set(got.map((r) => r.headers['webhook-id'])).size, 1, 'the same id on every retry');
    assert.match(got[0]!.headers['webhook-id']!, /^msg_/);
    for (const r of got) {
      const payload = verify(crm.secret, r) as { type: string; data: Record<string, unknown> };
      assert.equal(payload.type, 'license.disabled');
      assert.equal(payload.data.license_id, w.licenseA);
      assert.equal(payload.data.license_key, 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA');
      assert.equal(payload.data.enabled, false);
      assert.equal(r.headers['content-type'], 'application/json');
    }
    assert.throws(() => verify(crm.secret, got[0]!, got[0]!.body.replace('"enabled":false', '"enabled":true')));
    assert.throws(
      () => verify(`whsec_${Buffer.alloc(32, 1).toString('base64')}`, got[0]!),
      'another secret does not verify',
    );

    // The delivery log: every attempt with its status, duration and the start of the response.
    const log = await t.db('webhook_attempts').where({ endpoint_id: crm.id }).orderBy('id');
    assert.deepEqual(
      log.map((a) => [Number(a.attempt), Number(a.status_code)]),
      [
        [1, 500],
        [2, 502],
        [3, 200],
      ],
    );
    assert.equal(log[0].response_excerpt, 'receiver says 500');
    assert.equal(log[0].error, 'HTTP 500');
    assert.equal(log[2].error, null);
    assert.ok(log.every((a) => Number(a.duration_ms) >= 0));
    const { agent } = await adminAgent(t);
    const page = await agent.get(`/admin/webhooks/${crm.id}`).expect(200);
    assert.match(page.text, /receiver says 502/);
    assert.match(page.text, new RegExp(got[0]!.headers['webhook-id']!));
  });

  it('another event has another id; "send again" re-sends the same id and logs it as by hand', async () => {
    await licenseService.setLicenseEnabled(t.app.locals.ctx, actor, w.licenseA, true);
    await runDueJobs(ctx());
    const got = onPath('/crm');
    const [first, second] = [got[0]!, got.at(-1)!];
    assert.notEqual(second.headers['webhook-id'], first.headers['webhook-id']);
    assert.equal((verify(crm.secret, second) as { type: string }).type, 'license.changed');

    const firstDelivery = await t.db('webhook_deliveries').where({ endpoint_id: crm.id }).orderBy('id').first();
    const { agent } = await adminAgent(t);
    const showUrl = `/admin/webhooks/${crm.id}`;
    const res = await submitForm(agent, showUrl, `${showUrl}/deliveries/${firstDelivery.id}/resend`, {});
    assert.equal(res.status, 303);
    assert.equal(await runDueJobs(ctx()), 1);
    const again = onPath('/crm').at(-1)!;
    assert.equal(again.headers['webhook-id'], first.headers['webhook-id']);
    assert.equal(again.body, first.body);
    const manual = await t
      .db('webhook_attempts')
      .where({ delivery_id: firstDelivery.id })
      .orderBy('id', 'desc')
      .first();
    assert.equal(Boolean(manual.manual), true);
    assert.ok((await auditOf(t.db, 'webhook_endpoint', crm.id)).some((e) => e.action === 'webhook_delivery.resent'));
    // Another endpoint's delivery is not found through this one.
    const other = await createEndpoint(deps(), actor, null, {
      url: `${base}/other`,
      description: null,
      events: ['order.created'],
    });
    const wrong = await submitForm(
      agent,
      showUrl,
      `/admin/webhooks/${other.id}/deliveries/${firstDelivery.id}/resend`,
      {},
    );
    assert.equal(wrong.status, 404);
  });

  it('after a rotation both secrets verify during the overlap; afterwards only the new one', async () => {
    const fresh = await rotateSecret(deps(), actor, null, crm.id);
    assert.notEqual(fresh, crm.secret);
    await licenseService.setLicenseEnabled(t.app.locals.ctx, actor, w.licenseA, false);
    await runDueJobs(ctx());
    const during = onPath('/crm').at(-1)!;
    assert.equal(during.headers['webhook-signature']!.split(' ').length, 2);
    assert.ok(verify(fresh, during));
    assert.ok(verify(crm.secret, during));

    t.clock.advance(ROTATION_OVERLAP_MS + 1000);
    await licenseService.setLicenseEnabled(t.app.locals.ctx, actor, w.licenseA, true);
    await runDueJobs(ctx());
    const afterwards = onPath('/crm').at(-1)!;
    assert.notEqual(afterwards.headers['webhook-id'], during.headers['webhook-id']);
    assert.equal(afterwards.headers['webhook-signature']!.split(' ').length, 1);
    assert.ok(verify(fresh, afterwards));
    assert.throws(() => verify(crm.secret, afterwards));
    crm.secret = fresh;
  });

  it('an endpoint failing every delivery for 24 hours is disabled, audited, and the vendor is told by mail', async () => {
    const broken = await createEndpoint(deps(), actor, null, {
      url: `${base}/broken`,
      description: null,
      events: ['device.reset'],
    });
    plan.set('/broken', Array(20).fill(503));
    await licenseService.resetDevice(t.app.locals.ctx, actor, w.licenseA, w.deviceA);
    const mailsBefore = await countRows(t.db, 'mail_outbox');
    const started = t.clock.now().getTime();
    for (const wait of [0, ...RETRY_SCHEDULE_MS]) {
      t.clock.advance(wait);
      await runDueJobs(ctx());
    }
    const log = await t.db('webhook_attempts').where({ endpoint_id: broken.id }).orderBy('id');
    assert.equal(log.length, RETRY_SCHEDULE_MS.length + 1, 'eight attempts');
    assert.ok(RETRY_SCHEDULE_MS.reduce((a, b) => a + b) >= DISABLE_AFTER_FAILING_MS, 'retried for at least 24 h');
    assert.equal(
      onPath('/crm').filter((r) => JSON.parse(r.body).type === 'device.reset').length,
      1,
      'the healthy endpoint got it once',
    );

    const endpoint = await t.db('webhook_endpoints').where({ id: broken.id }).first();
    assert.equal(Boolean(endpoint.enabled), false);
    assert.equal(endpoint.disabled_reason, 'failing');
    assert.equal((await deliveryOf(broken.id)).state, 'failed');
    const job = await t.db('jobs').where({ kind: 'webhook.deliver' }).orderBy('id', 'desc').first();
    assert.equal(job.state, 'failed');
    assert.match(String(job.last_error ?? job.error ?? ''), /failed after 8 attempts|HTTP 503/);
    assert.ok(t.clock.now().getTime() - started >= DISABLE_AFTER_FAILING_MS);
    assert.deepEqual(
      (await auditOf(t.db, 'webhook_endpoint', broken.id)).map((e) => e.action),
      ['webhook_endpoint.created', 'webhook_endpoint.disabled_failing'],
    );
    const mails = await t.db('mail_outbox').orderBy('id').offset(mailsBefore);
    assert.ok(mails.length >= 1);
    assert.equal(mails[0].subject, 'A webhook endpoint was disabled');
    assert.match(mails[0].text_body, new RegExp(`/admin/webhooks/${broken.id}`));
    assert.match(mails[0].text_body, /\/broken/);
    const admins = (await t.db('accounts').where({ role: 'admin' }).select('email')).map((a) => a.email).sort();
    assert.deepEqual(mails.map((m) => m.to_address).sort(), admins);

    // Disabled: further events are not sent to it.
    const sent = onPath('/broken').length;
    await licenseService.resetDevice(t.app.locals.ctx, actor, w.licenseB, w.deviceB);
    await runDueJobs(ctx());
    assert.equal(onPath('/broken').length, sent);
  });

  it('refuses metadata and link-local targets always, loopback when the setting is off — checked at the connected address', async () => {
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://[fe80::1]/', 'http://100.100.100.200/'])
      await assert.rejects(createEndpoint(deps(), actor, null, { url, description: null, events: ['order.created'] }), {
        kind: 'validation',
      });
    // Registered by name while allowed; the operator then turns private targets off.
    const byName = await createEndpoint(deps(), actor, null, {
      url: `${base.replace('127.0.0.1', 'localhost')}/by-name`,
      description: null,
      events: ['order.created'],
    });
    await allowPrivate(false);
    try {
      await assert.rejects(
        createEndpoint(deps(), actor, null, { url: `${base}/x`, description: null, events: ['order.created'] }),
        { kind: 'validation' },
      );
      const { createOrder } = await import('../../app/services/customers.ts');
      await createOrder(t.app.locals.ctx, actor, w.customer, {
        order_ref: 'SSRF-1',
        reference: null,
        is_test: false,
        is_trial: false,
      });
      await runDueJobs(ctx());
      assert.equal(onPath('/by-name').length, 0, 'the receiver was never reached');
      const attempt = await t.db('webhook_attempts').where({ endpoint_id: byName.id }).first();
      assert.equal(attempt.status_code, null);
      assert.equal(attempt.error, 'target address not allowed');
    } finally {
      await allowPrivate(true);
    }
  });

  it('a change that rolled back publishes nothing; one retried after a conflict publishes once', async () => {
    const events = await countRows(t.db, 'webhook_events');
    const jobs = await countRows(t.db, 'jobs');
    await assert.rejects(
      inTransaction(t.db, async (trx) => {
        await publishEvent(trx, t.clock, {
          type: 'license.disabled',
          orderId: w.orderA,
          data: { licenseId: w.licenseA },
        });
        throw new Error('the change failed after publishing');
      }),
      /the change failed/,
    );
    await assert.rejects(licenseService.setLicenseEnabled(t.app.locals.ctx, actor, 999_999, false), {
      kind: 'not_found',
    });
    assert.equal(await countRows(t.db, 'webhook_events'), events);
    assert.equal(await countRows(t.db, 'jobs'), jobs);

    const injected = injectSerializationFailures(t.db, 2);
    try {
      await licenseService.setLicenseEnabled(t.app.locals.ctx, actor, w.licenseA, false);
    } finally {
      injected.stop();
    }
    assert.equal(injected.failures(), 2);
    assert.equal(await countRows(t.db, 'webhook_events'), events + 1);
    assert.equal(await countRows(t.db, 'jobs'), jobs + 1);
  });

  it("a manager's endpoint receives its orders' events only, checked again at delivery", async () => {
    const mine = await createEndpoint(deps(), actor, w.managerAll.id, {
      url: `${base}/manager`,
      description: null,
      events: ['license.changed'],
    });
    await licenseService.setLicenseEnabled(t.app.locals.ctx, actor, w.licenseB, false);
    await licenseService.setLicenseEnabled(t.app.locals.ctx, actor, w.licenseB, true);
    assert.equal(await countRows(t.db, 'webhook_deliveries', { endpoint_id: mine.id }), 0, 'order B is not theirs');
    await licenseService.setLicenseEnabled(t.app.locals.ctx, actor, w.licenseA, true);
    await runDueJobs(ctx());
    assert.equal(onPath('/manager').length, 1);
    assert.equal(JSON.parse(onPath('/manager')[0]!.body).data.order_id, w.orderA);

    // The manager loses order A between the event and its delivery: it is not sent.
    await licenseService.setLicenseEnabled(t.app.locals.ctx, actor, w.licenseA, false);
    await licenseService.setLicenseEnabled(t.app.locals.ctx, actor, w.licenseA, true);
    await t.db('manager_orders').where({ account_id: w.managerAll.id, order_id: w.orderA }).delete();
    await runDueJobs(ctx());
    assert.equal(onPath('/manager').length, 1);
    assert.equal((await deliveryOf(mine.id)).state, 'skipped');
  });

  it('license.expiring: the daily job publishes once per license and window', async () => {
    const soon = await createEndpoint(deps(), actor, null, {
      url: `${base}/expiring`,
      description: null,
      events: ['license.expiring'],
    });
    const expiresAt = new Date(t.clock.now().getTime() + 20 * 86_400_000);
    await t.db('licenses').where({ id: w.licenseB }).update({ expires_at: expiresAt });
    await enqueuePeriodicJobs(ctx());
    await runDueJobs(ctx());
    assert.equal(await publishExpiringLicenses(t.db, t.clock), 0, 'a second run publishes nothing');
    await runDueJobs(ctx());
    let got = onPath('/expiring').map((r) => JSON.parse(r.body));
    assert.deepEqual(
      got.map((p) => [p.type, p.data.license_id, p.data.window_days]),
      [['license.expiring', w.licenseB, 30]],
    );
    t.clock.advance(14 * 86_400_000);
    assert.equal(await publishExpiringLicenses(t.db, t.clock), 1, 'the 7-day window');
    assert.equal(await publishExpiringLicenses(t.db, t.clock), 0);
    await runDueJobs(ctx());
    got = onPath('/expiring').map((r) => JSON.parse(r.body));
    assert.deepEqual(
      got.map((p) => p.data.window_days),
      [30, 7],
    );
    assert.equal(await countRows(t.db, 'webhook_deliveries', { endpoint_id: soon.id }), 2);
  });

  it('the daily housekeeping deletes events after 30 days, with their deliveries and log', async () => {
    const events = await countRows(t.db, 'webhook_events');
    assert.ok(events > 0 && (await countRows(t.db, 'webhook_attempts')) > 0);
    assert.equal(await purgeOldEvents(ctx()), 0, 'nothing is old yet');
    t.clock.advance(KEEP_EVENTS_MS + 1);
    await licenseService.setLicenseEnabled(t.app.locals.ctx, actor, w.licenseA, false);
    assert.equal(await purgeOldEvents(ctx()), events);
    assert.equal(await countRows(t.db, 'webhook_events'), 1, 'the new one stays');
    assert.equal(await countRows(t.db, 'webhook_deliveries'), 1);
    assert.equal(await countRows(t.db, 'webhook_attempts'), 0);
  });

  it('a slow receiver times out, a redirect is not followed, and only the first KB of a response is kept', async () => {
    const slow = http.createServer((req, res) => {
      if (req.url === '/slow') return; // never answers
      if (req.url === '/redirect') return res.writeHead(302, { location: `${base}/crm` }).end();
      res.writeHead(200).end('x'.repeat(100_000));
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
    try {
      const opts = { allowPrivate: true, timeoutMs: 300, now: () => performance.now() };
      const timedOut = await postWebhook(`${url}/slow`, '{}', {}, opts);
      assert.equal(timedOut.statusCode, null);
      assert.match(timedOut.error!, /timed out after 300 ms/);
      assert.ok(timedOut.durationMs >= 250);
      const before = onPath('/crm').length;
      const redirected = await postWebhook(`${url}/redirect`, '{}', {}, opts);
      assert.equal(redirected.statusCode, 302);
      assert.equal(onPath('/crm').length, before);
      const big = await postWebhook(`${url}/big`, '{}', {}, opts);
      assert.equal(big.statusCode, 200);
      assert.equal(big.excerpt!.length, 1024);
      const refused = await postWebhook(`${url}/big`, '{}', {}, { ...opts, allowPrivate: false });
      assert.equal(refused.error, 'target address not allowed');
    } finally {
      slow.closeAllConnections();
      await new Promise((resolve) => slow.close(resolve));
    }
  });
});
