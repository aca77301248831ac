import type { Knex } from 'knex';
import { isUniqueViolation } from './normalise.ts';

/** Turned-off notification kinds per e-mail address (stored lower-cased). */

export async function kindsOff(db: Knex, email: string): Promise<Set<string>> {
  const rows: { kind: string }[] = await db('notification_optouts')
    .where({ email: email.toLowerCase() })
    .select('kind');
  return new Set(rows.map((r) => r.kind));
}

/** The addresses among `emails` that turned `kind` off (one query for a batch of recipients). */
export async function addressesWithKindOff(db: Knex, kind: string, emails: string[]): Promise<Set<string>> {
  if (!emails.length) return new Set();
  const rows: { email: string }[] = await db('notification_optouts')
    .where({ kind })
    .whereIn(
      'email',
      emails.map((e) => e.toLowerCase()),
    )
    .select('email');
  return new Set(rows.map((r) => r.email));
}

/**
 * Turns a kind off; true when it was on (a second click changes nothing and says so). Two clicks at
 * the same instant: the primary key keeps one row, and only the click whose row went in is told it
 * changed something (so only it is audited).
 */
export async function turnOff(db: Knex, email: string, kind: string, now: Date): Promise<boolean> {
  const key = { email: email.toLowerCase(), kind };
  if (await db('notification_optouts').where(key).first('kind')) return false;
  try {
    await db('notification_optouts').insert({ ...key, created_at: now });
    return true;
  } catch (err) {
    if (isUniqueViolation(err)) return false;
    throw err;
  }
}

/** Turns a kind back on; true when it was off. */
export async function turnOn(db: Knex, email: string, kind: string): Promise<boolean> {
  return (await db('notification_optouts').where({ email: email.toLowerCase(), kind }).delete()) > 0;
}
