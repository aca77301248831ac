import type { Transporter } from 'nodemailer';
import type { Knex } from 'knex';
import type { Clock } from './clock.ts';
import type { Logger } from './logger.ts';

export interface Mail {
  to: string;
  subject: string;
  text: string;
  /** The account whose action caused the mail (a manager's dispatch or invitation): they see what became of it. */
  causedBy?: number | null;
}

/** `smtp`: the SMTP server accepted the mail; `outbox`: it waits in the outbox (no SMTP, or SMTP failed). */
export type Delivery = 'smtp' | 'outbox';

export interface Mailer {
  send(mail: Mail): Promise<Delivery>;
}

/**
 * Sends over SMTP when SMTP_URL is set; otherwise, or when SMTP fails, the mail goes to the outbox
 * table, which an admin reads in the console. A mail is never silently lost. A mail someone caused
 * and SMTP accepted is recorded too (reason `sent`, without its text, which may hold a link meant
 * for the recipient alone), so they can see it was sent.
 */
export function createMailer(opts: { smtpUrl?: string; from: string; db: Knex; clock: Clock; logger: Logger }): Mailer {
  // nodemailer loads with the first mail, not at start-up.
  let transport: Promise<Transporter> | undefined;
  const smtp = (url: string) =>
    (transport ??= import('nodemailer').then(({ default: nodemailer }) => nodemailer.createTransport(url)));
  const toOutbox = async (mail: Mail, reason: 'no_smtp' | 'smtp_failed' | 'sent', error: string | null) => {
    await opts.db('mail_outbox').insert({
      to_address: mail.to,
      subject: mail.subject.slice(0, 255),
      text_body: reason === 'sent' ? '' : mail.text,
      reason,
      error,
      caused_by_account_id: mail.causedBy ?? null,
      created_at: opts.clock.now(),
    });
  };
  return {
    async send(mail) {
      if (!opts.smtpUrl) {
        await toOutbox(mail, 'no_smtp', null);
        return 'outbox';
      }
      try {
        await (await smtp(opts.smtpUrl)).sendMail({
          from: opts.from,
          to: mail.to,
          subject: mail.subject,
          text: mail.text,
        });
        if (mail.causedBy) await toOutbox(mail, 'sent', null);
        return 'smtp';
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        opts.logger.warn({ err: message }, 'SMTP delivery failed; mail kept in the outbox');
        await toOutbox(mail, 'smtp_failed', message.slice(0, 1000));
        return 'outbox';
      }
    },
  };
}
