import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { adminAgent, buildTestApp, submitForm, type TestApp } from '../helpers/app.ts';
import { createApp, type PorticoApp } from '../../app/app.ts';
import { openDatabase } from '../../db/index.ts';
import { createLogger } from '../../app/lib/logger.ts';
import { Writable } from 'node:stream';
import type { Knex } from 'knex';
import { notificationFields } from '../helpers/settings.ts';

/**
 * The per-process caches (app/lib/generation-cache.ts): a console change is seen by the process that
 * made it at once, and by another process within the interval. "Another process" is a second app on
 * its own knex instance (its own pool, its own caches) over the same database, with an interval of
 * 300 ms; the first keeps the default second.
 */
describe('caches: settings, brandings and keys across processes', function () {
  this.timeout(60_000);
  const INTERVAL_MS = 300;
  let t: TestApp;
  let otherDb: Knex;
  let other: PorticoApp;
  let admin: Awaited<ReturnType<typeof adminAgent>>['agent'];

  before(async () => {
    t = await buildTestApp();
    otherDb = openDatabase(t.config.databaseUrl);
    const quiet = new Writable({ write: (_c, _e, done) => done() });
    other = createApp({
      db: otherDb,
      config: t.config,
      logger: createLogger('error', quiet),
      clock: t.clock,
      cacheCheckMs: INTERVAL_MS,
    });
    admin = (await adminAgent(t)).agent;
  });
  after(async () => {
    await otherDb.destroy();
    await t.close();
  });

  /** Polls `probe` on `app` until it answers `status`, and how long that took. */
  const until = async (app: PorticoApp, probe: string, status: number, limitMs: number) => {
    const start = performance.now();
    for (;;) {
      const res = await request(app).get(probe);
      if (res.status === status) return performance.now() - start;
      assert.ok(performance.now() - start < limitMs, `${probe} still ${res.status} after ${limitMs} ms`);
      await sleep(25);
    }
  };

  it('between two looks at the generation, a page reads settings and branding from the cache: no SQL for them', async () => {
    const steadyDb = openDatabase(t.config.databaseUrl);
    try {
      const quiet = new Writable({ write: (_c, _e, done) => done() });
      const steady = createApp({
        db: steadyDb,
        config: t.config,
        logger: createLogger('error', quiet),
        clock: t.clock,
        cacheCheckMs: 60_000,
      });
      await request(steady).get('/login').expect(200);
      await request(steady).get('/redeem').expect(404);
      const seen: string[] = [];
      steadyDb.on('query', (q: { sql: string }) => seen.push(q.sql));
      await request(steady).get('/login').expect(200);
      await request(steady).get('/redeem').expect(404);
      assert.deepEqual(
        seen.filter((sql) => /settings|brandings|cache_generation/.test(sql)),
        [],
      );
    } finally {
      await steadyDb.destroy();
    }
  });

  it('a settings change: the process that made it at once, the other within its interval', async () => {
    // Self-service off: /redeem is 404 on both, and both have cached the settings.
    await request(t.app).get('/redeem').expect(404);
    await request(other).get('/redeem').expect(404);
    const saved = await submitForm(admin, '/admin/settings', '/admin/settings', {
      end_user_self_service: 'on',
      default_language: 'en',
      offline_lease_days: '30',
      airgap_code_minutes: '60',
      audit_retention_days: '400',
      ...notificationFields,
    });
    assert.equal(saved.status, 303, saved.text);
    await request(t.app).get('/redeem').expect(200);
    const took = await until(other, '/redeem', 200, INTERVAL_MS + 1000);
    assert.ok(took <= INTERVAL_MS + 1000);
  });

  it('a branding change: the new name on both, the other within its interval', async () => {
    await request(other).get('/login').expect(200);
    const created = await submitForm(admin, '/admin/brandings/new', '/admin/brandings', {
      name: 'acme',
      display_name: 'Acme Licensing',
      primary_color: '#123456',
      accent_color: '#654321',
      support_email: '',
      default_language: 'en',
    });
    assert.equal(created.status, 303, created.text);
    const id = Number(created.headers.location.split('/').pop());
    assert.equal(
      (
        await submitForm(admin, `/admin/brandings/${id}`, `/admin/brandings/${id}/hosts`, {
          hostname: 'licensing.acme.example',
          portal: '',
        })
      ).status,
      303,
    );
    const css = (app: PorticoApp) => request(app).get('/branding.css').set('Host', 'licensing.acme.example');
    assert.match((await css(t.app)).text, /#123456/, 'at once in the process that made it');
    const start = performance.now();
    while (!/#123456/.test((await css(other)).text)) {
      assert.ok(performance.now() - start < INTERVAL_MS + 1000, 'the other process sees it within its interval');
      await sleep(25);
    }
  });

  it('a key rotation: the other process signs with the new key within its interval', async () => {
    const keysPage = await admin.get('/admin/keys').expect(200);
    assert.ok(keysPage.status === 200);
    const before = (await request(other).get('/.well-known/portico-keys.json')).body;
    const generated = await submitForm(admin, '/admin/keys', '/admin/keys', {});
    assert.equal(generated.status, 303, generated.text);
    const kids = async (app: PorticoApp) =>
      ((await request(app).get('/.well-known/portico-keys.json')).body.keys as { kid: string }[]).map((k) => k.kid);
    const mine = await kids(t.app);
    assert.ok(mine.length > before.keys.length, 'the new key is published at once by its own process');
    const start = performance.now();
    while ((await kids(other)).length !== mine.length) {
      assert.ok(performance.now() - start < INTERVAL_MS + 1000);
      await sleep(25);
    }
  });
});
