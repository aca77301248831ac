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
  reason: string;
  error: string | null;
  createdAt: Date;
}

function fromRow(r: Record<string, unknown>): OutboxMail {
  return {
    id: Number(r.id),
    to: String(r.to_address),
    subject: String(r.subject),
    text: String(r.text_body),
    reason: String(r.reason),
    error: (r.error as string | null) ?? null,
    createdAt: toDate(r.created_at)!,
  };
}

export async function list(db: Knex, limit: number, offset: number): Promise<OutboxMail[]> {
  return (await db('mail_outbox').orderBy('id', 'desc').limit(limit).offset(offset)).map(fromRow);
}

export async function count(db: Knex): Promise<number> {
  return Number((await db('mail_outbox').count({ n: '*' }).first())?.n ?? 0);
}

export async function findById(db: Knex, id: number): Promise<OutboxMail | undefined> {
  const row = await db('mail_outbox').where({ id }).first();
  return row ? fromRow(row) : undefined;
}
