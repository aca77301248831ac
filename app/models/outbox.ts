import type { Knex } from 'knex';
import { toDate } from './normalise.ts';

/**
 * What became of a mail: `queued` waits in the outbox (no SMTP server is set up), `failed` waits there
 * because the SMTP server refused it, `sent` was accepted by the SMTP server.
 */
export const MAIL_STATES = ['queued', 'sent', 'failed'] as const;
export type MailState = (typeof MAIL_STATES)[number];

export interface OutboxMail {
  id: number;
  to: string;
  subject: string;
  text: string;
  /** no_smtp | smtp_failed | sent (a mail SMTP accepted, kept without its text for whoever caused it). */
  reason: string;
  state: MailState;
  error: string | null;
  causedBy: number | null;
  createdAt: Date;
}

const stateOf = (reason: string): MailState =>
  reason === 'sent' ? 'sent' : reason === 'smtp_failed' ? 'failed' : 'queued';

function fromRow(r: Record<string, unknown>): OutboxMail {
  return {
    id: Number(r.id),
    to: String(r.to_address),
    subject: String(r.subject),
    text: String(r.text_body),
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
