import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import request from 'supertest';
import { buildTestApp, createAccount, csrfFrom, type TestApp } from '../helpers/app.ts';
import { runDueJobs } from '../../app/lib/queue.ts';
import * as jobs from '../../app/models/jobs.ts';
import { MAIL_ATTEMPTS } from '../../app/lib/mailer.ts';

interface Received {
  to: string[];
  data: string;
}

/** A real SMTP server on loopback that keeps what it receives. */
async function startSmtp(port = 0): Promise<{ server: SMTPServer; port: number; received: Received[] }> {
  const received: Received[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData(stream, session, callback) {
      let data = '';
      stream.on('data', (c: Buffer) => (data += c.toString()));
      stream.on('end', () => {
        received.push({ to: session.envelope.rcptTo.map((r) => r.address), data });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, port: (server.server.address() as AddressInfo).port, received };
}

async function requestReset(t: TestApp, email: string) {
  const agent = request.agent(t.app);
  const page = await agent.get('/password/forgot');
  await agent
    .post('/password/forgot')
    .type('form')
    .send({ _csrf: csrfFrom(page.text), email })
    .expect(303);
}

describe('mail delivery: SMTP (through the job queue) when configured, the outbox otherwise', () => {
  it('delivers over SMTP when SMTP_URL is set, through the job queue (nothing left in the outbox)', async () => {
    const smtp = await startSmtp();
    const t = await buildTestApp({
      smtpUrl: `smtp://127.0.0.1:${smtp.port}`,
      mailFrom: 'Portico <portal@vendor.example>',
    });
    try {
      const { email } = await createAccount(t.db, { language: 'fr' });
      await requestReset(t, email);
      assert.equal(smtp.received.length, 0, 'the request does not wait on SMTP');
      assert.equal(await runDueJobs(t.app.locals.ctx), 1);
      assert.equal(smtp.received.length, 1);
      assert.deepEqual(smtp.received[0]!.to, [email]);
      assert.match(smtp.received[0]!.data, /password\/reset\//);
      assert.match(smtp.received[0]!.data, /From: Portico <portal@vendor\.example>/);
      assert.equal(Number((await t.db('mail_outbox').count({ n: '*' }).first())!.n), 0);
    } finally {
      await t.close();
      await new Promise<void>((resolve) => smtp.server.close(() => resolve()));
    }
  });

  it('keeps the mail in the outbox with the reason when SMTP fails to the last attempt', async () => {
    const smtp = await startSmtp();
    const port = smtp.port;
    await new Promise<void>((resolve) => smtp.server.close(() => resolve())); // nothing listens there now
    const t = await buildTestApp({ smtpUrl: `smtp://127.0.0.1:${port}` });
    try {
      const { email } = await createAccount(t.db);
      await requestReset(t, email);
      const ctx = t.app.locals.ctx;
      await runDueJobs(ctx);
      assert.equal((await t.db('mail_outbox').where({ to_address: email }).first()).reason, 'smtp_pending');
      for (let attempt = 2; attempt <= MAIL_ATTEMPTS; attempt++) {
        t.clock.advance(3600_000);
        await runDueJobs(ctx);
      }
      const mail = await t.db('mail_outbox').where({ to_address: email }).first();
      assert.equal(mail.reason, 'smtp_failed');
      assert.ok(mail.error);
      assert.match(mail.text_body, /password\/reset\//);
      // The relay is back; an administrator runs the failed job again (console → Jobs): the mail goes out.
      const job = await t.db('jobs').where({ kind: 'mail.send' }).first();
      assert.equal(job.state, 'failed');
      const back = await startSmtp(port);
      try {
        assert.equal(await jobs.requeueFailed(t.db, job.id, t.clock.now()), true);
        assert.equal(await runDueJobs(ctx), 1);
        assert.deepEqual(
          back.received.map((r) => r.to),
          [[email]],
        );
        assert.equal(await t.db('mail_outbox').where({ to_address: email }).first(), undefined, 'sent: no longer kept');
      } finally {
        await new Promise<void>((resolve) => back.server.close(() => resolve()));
      }
    } finally {
      await t.close();
    }
  });
});
