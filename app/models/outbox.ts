import type { Knex } from 'knex';
import { toDate } from './normalise.ts';

/**
 * What became of a mail: `queued` waits in the outbox (no SMTP server is set up), `sending` waits for
 * the job queue to hand it to the SMTP server (retried with backoff), `failed` waits in the outbox
 * because the SMTP server refused it to the last attempt, `sent` was accepted by the SMTP server.
 */
export const MAIL_STATES = ['queued', 'sending', 'sent', 'failed'] as const;
export type MailState = (typeof MAIL_STATES)[number];

export interface OutboxMail {
  id: number;
  to: string;
  subject: string;
  text: string;
  /** What app/services/mail.ts rendered beside the text: the HTML part, the sender's name, Reply-To, extra headers. */
  html: string | null;
  fromName: string | null;
  replyTo: string | null;
  headers: Record<string, string>;
  /**
   * no_smtp | smtp_pending (its mail.send job has not succeeded yet) | smtp_failed | sent (a mail SMTP
   * accepted, kept without its text for whoever caused it).
   */
  reason: string;
  state: MailState;
  error: string | null;
  causedBy: number | null;
  createdAt: Date;
}

export type MailReason = 'no_smtp' | 'smtp_pending' | 'smtp_failed' | 'sent';

const STATE_OF_REASON: Record<string, MailState> = {
  no_smtp: 'queued',
  smtp_pending: 'sending',
  smtp_failed: 'failed',
  sent: 'sent',
};
const stateOf = (reason: string): MailState => STATE_OF_REASON[reason] ?? 'queued';

export interface NewMail {
  to: string;
  subject: string;
  text: string;
  /** The HTML part, the sender's display name (the address stays MAIL_FROM's), Reply-To, extra headers (e.g. List-Unsubscribe). */
  html?: string | null;
  fromName?: string | null;
  replyTo?: string | null;
  headers?: Record<string, string>;
  causedBy: number | null;
}

export async function insert(db: Knex, mail: NewMail, reason: MailReason, error: string | null, now: Date) {
  const [id] = await db('mail_outbox').insert({
    to_address: mail.to,
    subject: mail.subject.slice(0, 255),
    text_body: reason === 'sent' ? '' : mail.text,
    html_body: reason === 'sent' ? null : (mail.html ?? null),
    from_name: mail.fromName?.slice(0, 100) ?? null,
    reply_to: mail.replyTo ?? null,
    headers_json: mail.headers && Object.keys(mail.headers).length ? JSON.stringify(mail.headers) : null,
    reason,
    error,
    caused_by_account_id: mail.causedBy,
    created_at: now,
  });
  return Number(id);
}

/** The rows a mail.send job may still send: pending, or refused to the last attempt (an admin ran the job again). */
const unsent = (db: Knex, id: number) =>
  db('mail_outbox').where({ id }).whereIn('reason', ['smtp_pending', 'smtp_failed']);

/** A mail its mail.send job has still to send (undefined once it was sent). */
export async function findUnsent(db: Knex, id: number): Promise<OutboxMail | undefined> {
  const row = await unsent(db, id).first();
  return row ? fromRow(row) : undefined;
}

/**
 * SMTP accepted it: kept without its text (which may hold a link meant for the recipient alone) for
 * whoever caused it, so they see it was sent; otherwise not kept at all (it is no one's to read).
 */
export async function markSent(db: Knex, mail: OutboxMail): Promise<void> {
  const row = unsent(db, mail.id);
  if (mail.causedBy) await row.update({ reason: 'sent', text_body: '', html_body: null, error: null });
  else await row.delete();
}

/** An attempt failed: the error shows while it is retried; `final` keeps it in the outbox as not delivered. */
export async function markAttemptFailed(db: Knex, id: number, error: string, final: boolean): Promise<void> {
  await unsent(db, id).update({ error: error.slice(0, 1000), reason: final ? 'smtp_failed' : 'smtp_pending' });
}

function fromRow(r: Record<string, unknown>): OutboxMail {
  return {
    id: Number(r.id),
    to: String(r.to_address),
    subject: String(r.subject),
    text: String(r.text_body),
    html: (r.html_body as string | null) ?? null,
    fromName: (r.from_name as string | null) ?? null,
    replyTo: (r.reply_to as string | null) ?? null,
    headers: r.headers_json ? (JSON.parse(String(r.headers_json)) as Record<string, string>) : {},
    reason: String(r.reason),
    state: stateOf(String(r.reason)),
    error: (r.error as string | null) ?? null,
    causedBy:
      r.caused_by_account_id === null || r.caused_by_account_id === undefined ? null : Number(r.caused_by_account_id),
    createdAt: toDate(r.created_at)!,
  };
}

/** The outbox proper: mails waiting for an admin (not those SMTP accepted). */
const waiting = (db: Knex) => db('mail_outbox').whereNot('reason', 'sent');

export async function list(db: Knex, limit: number, offset: number): Promise<OutboxMail[]> {
  return (await waiting(db).orderBy('id', 'desc').limit(limit).offset(offset)).map(fromRow);
}

export async function count(db: Knex): Promise<number> {
  return Number((await waiting(db).count({ n: '*' }).first())?.n ?? 0);
}

export async function findById(db: Knex, id: number): Promise<OutboxMail | undefined> {
  const row = await waiting(db).where({ id }).first();
  return row ? fromRow(row) : undefined;
}

/** The mails one account caused, newest first. */
export async function listCausedBy(db: Knex, accountId: number, limit: number, offset: number): Promise<OutboxMail[]> {
  return (
    await db('mail_outbox').where({ caused_by_account_id: accountId }).orderBy('id', 'desc').limit(limit).offset(offset)
  ).map(fromRow);
}

export async function countCausedBy(db: Knex, accountId: number): Promise<number> {
  return Number((await db('mail_outbox').where({ caused_by_account_id: accountId }).count({ n: '*' }).first())?.n ?? 0);
}

/** One mail the account caused (undefined for anyone else's: a 404). */
export async function findCausedBy(db: Knex, accountId: number, id: number): Promise<OutboxMail | undefined> {
  const row = await db('mail_outbox').where({ id, caused_by_account_id: accountId }).first();
  return row ? fromRow(row) : undefined;
}
