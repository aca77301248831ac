import assert from 'node:assert/strict';
import { adminAgent, buildTestApp, submitForm, type TestApp } from '../helpers/app.ts';
import { purgeOldAuditEvents } from '../../app/services/retention.ts';
import { countRows } from '../helpers/app.ts';
import { notificationFields } from '../helpers/settings.ts';

/** Audit retention (console → Settings): older events deleted in batches, the purge itself audited. */
describe('audit retention', function () {
  this.timeout(60_000);
  let t: TestApp;
  before(async () => {
    t = await buildTestApp();
  });
  after(async () => t.close());

  const event = (daysAgo: number, i: number) => ({
    action: 'test.event',
    object_type: 'test',
    object_id: String(i),
    occurred_at: new Date(t.clock.now().getTime() - daysAgo * 86_400_000),
  });

  it('deletes in batches exactly the events older than the setting (400 days by default) and records the purge', async () => {
    const old = Array.from({ length: 25 }, (_, i) => event(401 + i, i));
    const kept = Array.from({ length: 5 }, (_, i) => event(399 - i * 50, 100 + i));
    await t.db('audit_events').insert([...old, ...kept]);
    const deleted = await purgeOldAuditEvents(t.app.locals.ctx, { batch: 7, pauseMs: 0 });
    assert.equal(deleted, 25);
    assert.equal(await countRows(t.db, 'audit_events', { action: 'test.event' }), 5);
    const purge = await t.db('audit_events').where({ action: 'audit.purged' }).first();
    assert.equal(JSON.parse(purge.after_state).deleted, 25);
    assert.equal(await purgeOldAuditEvents(t.app.locals.ctx, { batch: 7, pauseMs: 0 }), 0, 'nothing left to purge');
    assert.equal(
      await countRows(t.db, 'audit_events', { action: 'audit.purged' }),
      1,
      'an empty purge records nothing',
    );
  });

  it('follows the setting the vendor saves; out-of-range values are refused with the field named', async () => {
    const { agent } = await adminAgent(t);
    const form = {
      default_language: 'en',
      offline_lease_days: '30',
      airgap_code_minutes: '60',
      ...notificationFields,
    };
    const refused = await submitForm(agent, '/admin/settings', '/admin/settings', {
      ...form,
      audit_retention_days: '7',
    });
    assert.equal(refused.status, 422);
    assert.match(refused.text, /id="field-audit_retention_days-error"/);
    assert.equal(
      (await submitForm(agent, '/admin/settings', '/admin/settings', { ...form, audit_retention_days: '30' })).status,
      303,
    );
    await t.db('audit_events').where({ action: 'test.event' }).delete();
    await t.db('audit_events').insert([event(31, 1), event(29, 2)]);
    assert.equal(await purgeOldAuditEvents(t.app.locals.ctx, { batch: 100, pauseMs: 0 }), 1);
    assert.deepEqual(
      (await t.db('audit_events').where({ action: 'test.event' }).select('object_id')).map((r) => r.object_id),
      ['2'],
    );
  });
});
