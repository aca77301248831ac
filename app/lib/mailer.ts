import type { Transporter } from 'nodemailer';
import type { Knex } from 'knex';
import type { AppContext } from '../app.ts';
import * as outbox from '../models/outbox.ts';
import type { Clock } from './clock.ts';
import type { Logger } from './logger.ts';
import { enqueue, FailJob, type JobRun } from './queue.ts';
import { inTransaction } from './transaction.ts';

/** What the SMTP server is handed: a recorded mail (models/outbox.ts) as app/services/mail.ts rendered it. */
export type OutgoingMail = Omit<outbox.NewMail, 'causedBy'>;

export interface Mail extends OutgoingMail {
  /** The account whose action caused the mail (a manager's dispatch or invitation): they see what became of it. */
  causedBy?: number | null;
}

/**
 * `sending`: SMTP is set up and the mail waits for the job queue to hand it over (retried with
 * backoff); `outbox`: no SMTP is set up, the mail waits in the outbox for an administrator.
 */
export type Delivery = 'sending' | 'outbox';

export interface Mailer {
  /** Records the mail and, with SMTP, enqueues its sending — in `db`'s transaction when given one. Never waits on SMTP. */
  send(mail: Mail, db?: Knex): Promise<Delivery>;
  /** Hands one mail to the SMTP server (the mail.send job); throws when it refuses. */
  deliver(mail: OutgoingMail): Promise<void>;
}

/** Attempts of one mail.send job: with the queue's backoff (30 s doubling, at most 1 h) about 2 hours in all. */
export const MAIL_ATTEMPTS = 8;

/**
 * Without SMTP_URL the mail goes to the outbox table, which an admin reads in the console. With it,
 * the mail is recorded (reason smtp_pending) and a mail.send job sends it; the job's payload is the
 * row's id only, so the mail's text (which may hold a personal link) never appears in the queue or
 * its logs. A mail SMTP refused to the last attempt stays in the outbox (smtp_failed). A mail is never
 * silently lost.
 */
export function createMailer(opts: { smtpUrl?: string; from: string; db: Knex; clock: Clock; logger: Logger }): Mailer {
  // nodemailer loads with the first mail, not at start-up.
  let transport: Promise<Transporter> | undefined;
  // MAIL_FROM may be "Name <address>": a branding's sender name replaces the name, never the address.
  const fromAddress = /<([^<>]+)>\s*$/.exec(opts.from)?.[1] ?? opts.from.trim();
  const smtp = (url: string) =>
    (transport ??= import('nodemailer').then(({ default: nodemailer }) => nodemailer.createTransport(url)));
  return {
    async send(mail, db = opts.db) {
      const row = { ...mail, causedBy: mail.causedBy ?? null };
      const now = opts.clock.now();
      if (!opts.smtpUrl) {
        await outbox.insert(db, row, 'no_smtp', null, now);
        return 'outbox';
      }
      await inTransaction(db, async (trx) => {
        const id = await outbox.insert(trx, row, 'smtp_pending', null, now);
        await enqueue(trx, opts.clock, { kind: 'mail.send', payload: { outboxId: id }, maxAttempts: MAIL_ATTEMPTS });
      });
      return 'sending';
    },
    async deliver(mail) {
      if (!opts.smtpUrl) throw new FailJob('SMTP is no longer configured (SMTP_URL)');
      await (await smtp(opts.smtpUrl)).sendMail({
        from: mail.fromName ? { name: mail.fromName, address: fromAddress } : opts.from,
        to: mail.to,
        subject: mail.subject,
        text: mail.text,
        ...(mail.html ? { html: mail.html } : {}),
        ...(mail.replyTo ? { replyTo: mail.replyTo } : {}),
        ...(mail.headers && Object.keys(mail.headers).length ? { headers: mail.headers } : {}),
      });
    },
  };
}

/** The mail.send job (app/jobs.ts): sends one recorded mail; a refusal is retried, and kept in the outbox after the last attempt. */
export async function sendQueuedMail(ctx: AppContext, job: JobRun): Promise<void> {
  const mail = await outbox.findUnsent(ctx.db, Number(job.payload.outboxId));
  if (!mail) return; // sent already
  try {
    await ctx.mailer.deliver(mail);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const final = err instanceof FailJob || job.attempt >= MAIL_ATTEMPTS;
    ctx.logger.warn({ err: message, mail: mail.id, attempt: job.attempt, final }, 'SMTP delivery failed');
    await outbox.markAttemptFailed(ctx.db, mail.id, message, final);
    ctx.metrics.mail(final ? 'failed' : 'retried');
    throw err;
  }
  ctx.metrics.mail('sent');
  await outbox.markSent(ctx.db, mail);
}
