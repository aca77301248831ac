import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { SMTPServer } from 'smtp-server';
import { buildTestApp, createAccount, csrfFrom, type TestApp } from '../helpers/app.ts';
import { makeDevice } from '../helpers/device.ts';
import { upload } from '../helpers/offline.ts';
import * as catalog from '../../app/models/catalog.ts';
import { runDueJobs } from '../../app/lib/queue.ts';
import { injectSerializationFailures, inTransaction } from '../../app/lib/transaction.ts';
import { saveSettings } from '../../app/models/settings.ts';
import { systemActor } from '../../app/services/context.ts';
import { createEndpoint, RETRY_SCHEDULE_MS, webhookDepsOf } from '../../app/services/webhooks.ts';
import { DATABASE_GAUGES_TTL_MS, STATIC, UNMATCHED } from '../../app/lib/metrics.ts';
import { fullPath, routeTable } from '../../app/routes.ts';
import { createAirgapRequest } from '../../sdk/src/airgap.ts';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (comments skipped). */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of m[2]?.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g) ?? []) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of one sample (the one whose labels include `labels`); undefined when there is none. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `one sample of ${name} ${JSON.stringify(labels)}, got ${found.length}`);
  return found[0]?.value;
}

const TOKEN = 'metrics-token-0123456789abcdef0123456789abcdef';
const key = (c: string) => Array(7).fill(c.repeat(4)).join('-');

describe('/metrics (Prometheus)', function () {
  this.timeout(60_000);

  it('is off by default: 404, with or without a token, and nothing counted', async () => {
    const t = await buildTestApp();
    try {
      assert.equal(t.config.metrics, null);
      await request(t.app).get('/metrics').expect(404);
      await request(t.app).get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(404);
      assert.equal(t.app.locals.ctx.metrics.enabled, false);
    } finally {
      await t.close();
    }
  });

  describe('with METRICS_TOKEN, after activations, refusals, mail and webhooks', () => {
    let t: TestApp;
    let smtp: SMTPServer;
    let receiver: http.Server;
    let receiverAnswers: number[];
    let product: number;
    let order: number;
    const scrape = async () => {
      const res = await request(t.app).get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(200);
      assert.equal(res.headers['set-cookie'], undefined, 'no session cookie');
      assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      return { text: res.text, samples: parse(res.text) };
    };
    const addLicense = (licenseKey: string, over: Partial<typeof catalog.DEFAULT_ENTITLEMENTS> = {}) =>
      catalog.insertLicense(
        t.db,
        {
          orderId: order,
          productId: product,
          policyId: null,
          licenseKey,
          entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, maxActivations: 5, ...over },
          startDate: t.clock.now(),
        },
        t.clock.now(),
      );

    before(async () => {
      smtp = new SMTPServer({
        authOptional: true,
        disabledCommands: ['STARTTLS'],
        onData(stream, _session, callback) {
          stream.resume();
          stream.on('end', () => callback());
        },
      });
      await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
      receiverAnswers = [];
      receiver = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => res.writeHead(receiverAnswers.shift() ?? 200).end('ok'));
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      t = await buildTestApp({
        metrics: { token: TOKEN, allow: [] },
        smtpUrl: `smtp://127.0.0.1:${(smtp.server.address() as AddressInfo).port}`,
      });
      const now = t.clock.now();
      product = await catalog.insertProduct(
        t.db,
        { name: 'Metrics App', code: 'metrics-app', authorizationMethod: 'key' },
        now,
      );
      const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Globex' }, now);
      order = await catalog.insertOrder(t.db, { orderRef: 'MET-1', customerId: customer }, now);
      await inTransaction(t.db, (trx) => saveSettings(trx, { webhookPrivateTargets: true }, t.clock.now()));
      await createEndpoint(webhookDepsOf(t.app.locals.ctx), systemActor('test'), null, {
        url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`,
        description: 'metrics test',
        events: ['activation.granted'],
      });
    });
    after(async () => {
      await t.close();
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
      receiver.closeAllConnections();
      await new Promise((resolve) => receiver.close(resolve));
    });

    it('401 without the bearer token or with a wrong one (logged); the answered scrape is not in the access log', async () => {
      const none = await request(t.app).get('/metrics').expect(401);
      assert.match(String(none.headers['www-authenticate']), /^Bearer/);
      await request(t.app).get('/metrics').set('Authorization', `Bearer ${TOKEN}x`).expect(401);
      await request(t.app)
        .get('/metrics')
        .set('Authorization', `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`)
        .expect(401);
      await request(t.app).get('/metrics').set('Authorization', TOKEN).expect(401);
      await scrape();
      const lines = t.logs.filter((l) => (l.req as { url?: string } | undefined)?.url === '/metrics');
      assert.deepEqual(
        lines.map((l) => (l.res as { statusCode: number }).statusCode),
        [401, 401, 401, 401],
        'the refused scrapes are logged, the answered one is not',
      );
      assert.equal(Number((await t.db('sessions').count({ n: '*' }).first())!.n), 0, 'no session row');
    });

    it('counts activations per channel, refusals per code and channel, requests per route pattern, retries, jobs, mail and webhooks — and no key, address, hardware id or raw URL in any label', async () => {
      const before = (await scrape()).samples;
      const seatsBefore = value(before, 'portico_seats_in_use');
      assert.equal(seatsBefore, 0);

      const online = key('M');
      const offline = key('N');
      const disabled = key('P');
      const unknown = key('Q');
      const airgapped = key('R');
      await addLicense(online);
      await addLicense(offline, { allowOffline: true });
      const disabledId = await addLicense(disabled, { allowOffline: true });
      await t.db('licenses').where({ id: disabledId }).update({ enabled: false });
      await addLicense(airgapped, { airgapped: true });

      // online: granted, the same request again (repeated), a granted one that met two deadlocks, a refusal
      const api = (body: object) =>
        request(t.app).post('/api/v1/activate').set('Accept', 'application/json').send(body);
      const hw1 = makeDevice('HW-METRICS-ONLINE-1');
      const req1 = hw1.activationRequest({ product: 'metrics-app', licenseKey: online });
      await api({ request: req1.text }).expect(200);
      assert.equal((await api({ request: req1.text }).expect(200)).body.repeated, true);
      const deadlocks = injectSerializationFailures(t.db, 2);
      try {
        await api({
          request: makeDevice('HW-METRICS-ONLINE-2').activationRequest({ product: 'metrics-app', licenseKey: online })
            .text,
        }).expect(200);
      } finally {
        deadlocks.stop();
      }
      assert.equal(deadlocks.failures(), 2);
      const refused = await api({
        request: makeDevice('HW-METRICS-ONLINE-3').activationRequest({ product: 'metrics-app', licenseKey: unknown })
          .text,
      });
      assert.equal(refused.status, 404);
      assert.equal(refused.body.error.code, 'license_unknown');

      // offline: granted, and a refusal (disabled license)
      const browser = request.agent(t.app);
      const granted = await upload(
        browser,
        makeDevice('HW-METRICS-OFFLINE-1').activationRequest({ product: 'metrics-app', licenseKey: offline }).text,
      );
      assert.equal(granted.status, 200);
      const off = await upload(
        browser,
        makeDevice('HW-METRICS-OFFLINE-2').activationRequest({ product: 'metrics-app', licenseKey: disabled }).text,
      );
      assert.equal(off.status, 403);

      // air-gapped: granted, and a refusal (a license that is not air-gapped)
      const airgap = async (licenseKey: string, hardwareId: string) => {
        const page = await browser.get('/airgap').expect(200);
        const { code } = createAirgapRequest({ product: 'metrics-app', hardwareId, now: t.clock.now() });
        return browser
          .post('/airgap/activate')
          .type('form')
          .send({ _csrf: csrfFrom(page.text), license_key: licenseKey, request_code: code });
      };
      assert.equal((await airgap(airgapped, 'AG-METRICS-SITE-1')).status, 200);
      assert.equal((await airgap(online, 'AG-METRICS-SITE-2')).status, 403);

      // a page behind a login with an id in its URL, and an unknown URL with one
      await request(t.app).get('/portal/orders/987654').expect(303);
      await request(t.app).get('/no-such-page/555666').expect(404);

      // a mail (SMTP through the queue) and the webhooks of the granted activations, one retried once
      const account = await createAccount(t.db, { email: 'metrics-person@example.com' });
      const forgot = await browser.get('/password/forgot').expect(200);
      await browser
        .post('/password/forgot')
        .type('form')
        .send({ _csrf: csrfFrom(forgot.text), email: account.email })
        .expect(303);
      t.clock.advance(DATABASE_GAUGES_TTL_MS);
      const queued = (await scrape()).samples;
      assert.equal(value(queued, 'portico_jobs', { kind: 'mail.send', state: 'queued' }), 1);
      assert.equal(value(queued, 'portico_jobs', { kind: 'webhook.deliver', state: 'queued' }), 4);
      assert.equal(value(queued, 'portico_jobs', { kind: 'webhook.deliver', state: 'failed' }), 0);
      receiverAnswers.push(500);
      assert.equal(await runDueJobs(t.app.locals.ctx), 5);
      t.clock.advance(RETRY_SCHEDULE_MS[0]!);
      assert.equal(await runDueJobs(t.app.locals.ctx), 1);

      const { text, samples } = await scrape();
      // The database gauges are read at most every DATABASE_GAUGES_TTL_MS: the mail is still queued in them.
      assert.equal(
        await t
          .db('jobs')
          .where({ kind: 'mail.send', state: 'queued' })
          .count({ n: '*' })
          .first()
          .then((r) => Number(r!.n)),
        0,
      );
      assert.equal(value(samples, 'portico_jobs', { kind: 'mail.send', state: 'queued' }), 1, 'the value read before');
      t.clock.advance(DATABASE_GAUGES_TTL_MS);
      const fresh = (await scrape()).samples;
      assert.equal(value(fresh, 'portico_jobs', { kind: 'mail.send', state: 'queued' }), 0);
      assert.equal(value(fresh, 'portico_jobs', { kind: 'webhook.deliver', state: 'queued' }), 0);
      // Seats in use: what the licenses hold (two online, one offline, one air-gapped).
      const seats = Number((await t.db('licenses').sum({ n: 'times_activated' }).first())!.n);
      assert.equal(seats, 4);
      assert.equal(value(queued, 'portico_seats_in_use'), seats);
      assert.equal(value(fresh, 'portico_seats_in_use'), seats);

      assert.equal(value(samples, 'portico_activations_total', { channel: 'online', result: 'granted' }), 2);
      assert.equal(value(samples, 'portico_activations_total', { channel: 'online', result: 'repeated' }), 1);
      assert.equal(value(samples, 'portico_activations_total', { channel: 'offline', result: 'granted' }), 1);
      assert.equal(value(samples, 'portico_activations_total', { channel: 'airgap', result: 'granted' }), 1);
      const refusal = (reason: string, channel: string) =>
        value(samples, 'portico_refusals_total', { action: 'activation', reason, channel });
      assert.equal(refusal('license_unknown', 'online'), 1);
      assert.equal(refusal('license_disabled', 'offline'), 1);
      assert.equal(refusal('airgap_required', 'airgap'), 1);
      assert.equal(samples.filter((s) => s.name === 'portico_refusals_total').length, 3, 'no other refusal');

      const requests = (route: string, method: string, status_class: string) =>
        value(samples, 'portico_http_requests_total', { route, method, status_class });
      assert.equal(requests('/api/v1/activate', 'POST', '2xx'), 3);
      assert.equal(requests('/api/v1/activate', 'POST', '4xx'), 1);
      assert.equal(requests('/offline/requests', 'POST', '2xx'), 1);
      assert.equal(requests('/offline/requests', 'POST', '4xx'), 1);
      assert.equal(requests('/portal/orders/:id', 'GET', '3xx'), 1);
      assert.equal(requests(UNMATCHED, 'GET', '4xx'), 1);
      assert.equal(requests('/metrics', 'GET', '4xx'), 4, 'the four refused scrapes');
      assert.equal(
        value(samples, 'portico_http_request_duration_seconds_count', {
          route: '/api/v1/activate',
          method: 'POST',
          status_class: '2xx',
        }),
        3,
      );
      assert.equal(value(samples, 'portico_db_transaction_retries_total', { reason: 'deadlock' }), 2);
      assert.equal(value(samples, 'portico_mail_deliveries_total', { outcome: 'sent' }), 1);
      assert.equal(value(samples, 'portico_webhook_deliveries_total', { outcome: 'delivered' }), 4);
      assert.equal(value(samples, 'portico_webhook_deliveries_total', { outcome: 'retried' }), 1);
      assert.equal(value(samples, 'portico_jobs_finished_total', { kind: 'mail.send', outcome: 'done' }), 1);
      assert.equal(value(samples, 'portico_jobs_finished_total', { kind: 'webhook.deliver', outcome: 'retried' }), 1);
      assert.equal(value(samples, 'portico_jobs_finished_total', { kind: 'webhook.deliver', outcome: 'done' }), 4);
      assert.ok(value(samples, 'portico_db_pool_max_connections')! >= 1);
      assert.ok(value(samples, 'portico_db_pool_connections', { state: 'used' })! >= 0);
      assert.ok(value(samples, 'process_resident_memory_bytes')! > 0);
      assert.ok(value(samples, 'nodejs_eventloop_lag_seconds')! >= 0);

      // Every route label is a pattern of the route table (or one of the two fixed labels).
      const patterns = new Set([...routeTable(t.app.locals.ctx).map(fullPath), UNMATCHED, STATIC]);
      for (const s of samples.filter((x) => 'route' in x.labels))
        assert.ok(patterns.has(s.labels.route!), `a route pattern: ${s.labels.route}`);
      // No license key, e-mail address, hardware id or raw URL anywhere in a label (nor anywhere in the text).
      const labelValues = samples.flatMap((s) => Object.values(s.labels));
      const secrets = [online, offline, disabled, unknown, airgapped, 'MMMM', 'NNNN', 'QQQQ', 'RRRR'];
      const personal = [
        '@',
        'metrics-person',
        'HW-METRICS',
        'AG-METRICS',
        'hw-metrics',
        '987654',
        '555666',
        'no-such-page',
      ];
      for (const v of labelValues)
        for (const s of [...secrets, ...personal])
          assert.ok(!v.toLowerCase().includes(s.toLowerCase()), `label value ${JSON.stringify(v)} contains ${s}`);
      for (const s of [...secrets, ...personal.slice(1)]) assert.ok(!text.includes(s), `the text contains ${s}`);
    });
  });

  describe('with METRICS_ALLOW (and TRUST_PROXY)', () => {
    const scrapeFrom = (t: TestApp, forwardedFor?: string, token?: string) => {
      const r = request(t.app).get('/metrics');
      if (forwardedFor) r.set('X-Forwarded-For', forwardedFor);
      if (token) r.set('Authorization', `Bearer ${token}`);
      return r;
    };

    it('403 from an address off the list; a forged X-Forwarded-For does not help without a trusted proxy', async () => {
      const t = await buildTestApp({ metrics: { token: null, allow: ['10.0.0.0/8', '192.0.2.7'] } });
      try {
        await scrapeFrom(t).expect(403);
        await scrapeFrom(t, '10.1.2.3').expect(403);
        await scrapeFrom(t, '192.0.2.7').expect(403);
      } finally {
        await t.close();
      }
      const local = await buildTestApp({ metrics: { token: null, allow: ['127.0.0.1', '::1'] } });
      try {
        const res = await scrapeFrom(local).expect(200);
        assert.match(res.text, /^# HELP /m);
      } finally {
        await local.close();
      }
    });

    it('behind a trusted proxy the forwarded address decides; with a token as well, both must hold', async () => {
      const t = await buildTestApp({ trustProxy: 'loopback', metrics: { token: null, allow: ['10.0.0.0/8'] } });
      try {
        await scrapeFrom(t, '10.1.2.3').expect(200);
        await scrapeFrom(t, '192.0.2.7').expect(403);
        await scrapeFrom(t).expect(403);
      } finally {
        await t.close();
      }
      const both = await buildTestApp({ trustProxy: 'loopback', metrics: { token: TOKEN, allow: ['10.0.0.0/8'] } });
      try {
        await scrapeFrom(both, '10.1.2.3').expect(401);
        await scrapeFrom(both, '192.0.2.7', TOKEN).expect(403);
        await scrapeFrom(both, '10.1.2.3', TOKEN).expect(200);
      } finally {
        await both.close();
      }
    });
  });
});
