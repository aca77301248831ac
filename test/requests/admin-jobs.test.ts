import assert from 'node:assert/strict';
import request from 'supertest';
import { enqueue, runDueJobs } from '../../app/lib/queue.ts';
import * as jobs from '../../app/models/jobs.ts';
import {
  adminAgent,
  auditOf,
  buildTestApp,
  createAccount,
  loginAgent,
  submitForm,
  type TestApp,
} from '../helpers/app.ts';
import { createJobRunsTable } from '../helpers/queue.ts';

/** Console → Jobs (/admin/jobs): admins only, counts and filters, run again / cancel with CSRF, audited. */
describe('console: jobs', function () {
  this.timeout(60_000);
  let t: TestApp;
  let admin: Awaited<ReturnType<typeof adminAgent>>;
  let failed: number;
  let queued: number;
  before(async () => {
    t = await buildTestApp();
    await createJobRunsTable(t.db);
    admin = await adminAgent(t);
    failed = (await enqueue(t.db, t.clock, { kind: 'test.record', payload: { failUntil: 9, mode: 'fail' } }))!;
    await runDueJobs(t.app.locals.ctx);
    queued = (await enqueue(t.db, t.clock, {
      kind: 'mail.send',
      payload: { outboxId: 0 },
      runAt: new Date(t.clock.now().getTime() + 3600_000),
    }))!;
  });
  after(async () => t.close());

  it('anonymous: the login page; a manager: 404', async () => {
    const anon = await request(t.app).get('/admin/jobs');
    assert.equal(anon.status, 303);
    assert.match(anon.headers.location!, /\/login/);
    const anonPost = await request(t.app).post(`/admin/jobs/${failed}/run-again`);
    assert.ok([303, 403].includes(anonPost.status), String(anonPost.status));
    const manager = await createAccount(t.db, { role: 'manager' });
    const agent = await loginAgent(t.app, manager.email, manager.password);
    await agent.get('/admin/jobs').expect(404);
    const res = await submitForm(agent, '/account', `/admin/jobs/${failed}/run-again`, {});
    assert.equal(res.status, 404);
    assert.equal((await jobs.findById(t.db, failed))!.state, 'failed');
  });

  it('lists counts per state, filters by state and kind, shows attempts and the last error', async () => {
    const page = (await admin.agent.get('/admin/jobs').expect(200)).text;
    assert.match(page, /href="\/admin\/jobs"[^>]*aria-current="page"/, 'in the console navigation');
    assert.match(
      page,
      /<span class="stat-value">1<\/span> <a class="stat-label" href="\/admin\/jobs\?state=failed">Failed<\/a>/,
    );
    assert.ok(page.includes('test: failed for good'));
    const onlyFailed = (await admin.agent.get('/admin/jobs?state=failed').expect(200)).text;
    assert.ok(onlyFailed.includes('test.record') && !/<td[^>]*>mail\.send<\/td>/.test(onlyFailed));
    const byKind = (await admin.agent.get('/admin/jobs?kind=mail.send').expect(200)).text;
    assert.ok(/<td[^>]*>mail\.send<\/td>/.test(byKind) && !/<td[^>]*>test\.record<\/td>/.test(byKind));
    assert.ok(byKind.includes('0 / 8'));
    // Nonsense filters filter on nothing rather than failing.
    await admin.agent.get('/admin/jobs?state=bogus&kind=%3Cscript%3E&page=x').expect(200);
  });

  it('refuses a POST without the CSRF token (403)', async () => {
    await admin.agent.post(`/admin/jobs/${failed}/run-again`).type('form').send({}).expect(403);
    await admin.agent.post(`/admin/jobs/${queued}/cancel`).type('form').send({}).expect(403);
    assert.equal((await jobs.findById(t.db, failed))!.state, 'failed');
    assert.equal((await jobs.findById(t.db, queued))!.state, 'queued');
  });

  it('unknown job: 404; an action that does not fit the state: refused with the reason', async () => {
    assert.equal((await submitForm(admin.agent, '/admin/jobs', '/admin/jobs/999999/run-again', {})).status, 404);
    assert.equal((await submitForm(admin.agent, '/admin/jobs', '/admin/jobs/abc/cancel', {})).status, 404);
    const wrong = await submitForm(admin.agent, '/admin/jobs', `/admin/jobs/${queued}/run-again`, {});
    assert.equal(wrong.status, 303);
    const back = (await admin.agent.get(wrong.headers.location!).expect(200)).text;
    assert.ok(back.includes('Only a failed job can be run again.'), back);
    assert.equal((await jobs.findById(t.db, queued))!.state, 'queued');
  });

  it('runs a failed job again (from its first attempt) and cancels a queued one, both audited', async () => {
    const again = await submitForm(admin.agent, '/admin/jobs', `/admin/jobs/${failed}/run-again`, {});
    assert.equal(again.status, 303);
    assert.ok((await admin.agent.get(again.headers.location!).expect(200)).text.includes('The job is queued again.'));
    const j = (await jobs.findById(t.db, failed))!;
    assert.equal(j.state, 'queued');
    assert.equal(j.attempts, 0);
    const cancel = await submitForm(admin.agent, '/admin/jobs', `/admin/jobs/${queued}/cancel`, {});
    assert.equal(cancel.status, 303);
    const c = (await jobs.findById(t.db, queued))!;
    assert.equal(c.state, 'failed');
    assert.match(c.lastError!, /cancelled by/);
    t.clock.advance(2 * 3600_000);
    assert.equal(await runDueJobs(t.app.locals.ctx), 1, 'the cancelled job does not run; the requeued one does');
    const [runAgain] = await auditOf(t.db, 'job', failed);
    assert.equal(runAgain!.action, 'job.run_again');
    assert.equal(runAgain!.actor, admin.admin.id);
    assert.equal(runAgain!.before.lastError, 'test: failed for good');
    const [cancelled] = await auditOf(t.db, 'job', queued);
    assert.equal(cancelled!.action, 'job.cancelled');
    assert.equal(cancelled!.after.kind, 'mail.send');
  });
});
