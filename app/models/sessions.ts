import type { Knex } from 'knex';
import { isSqlite } from '../../db/knexfile.ts';
import { toDate } from './normalise.ts';

/**
 * The sessions table (express-session's store, lib/session-store.ts) seen as the account's sign-ins:
 * whose each session is, listing them, and ending them when credentials change.
 */

export interface SessionRow {
  sid: string;
  sess: string | Record<string, unknown>;
  expired: Date | number | string;
  account_id: number | null;
}

/** Where a signed-in session was first used from (middleware/session-client.ts). */
export interface SessionClient {
  ip: string | null;
  agent: string | null;
}

export interface AccountSession {
  sid: string;
  client: SessionClient | null;
  /** When its login happened (the session's `loginAt`). */
  since: Date | null;
  expiresAt: Date;
}

const table = (db: Knex) => db<SessionRow>('sessions');

/** `expired` in connect-session-knex's own format (it reads and touches the rows too): ISO text on SQLite, DATETIME text on MySQL. */
const stamp = (db: Knex, at: Date) =>
  isSqlite(db) ? at.toISOString() : at.toISOString().slice(0, 19).replace('T', ' ');

/** Writes a session (insert or update), with the account it belongs to. */
export async function save(
  db: Knex,
  sid: string,
  sess: string,
  expiresAt: Date,
  accountId: number | null,
): Promise<void> {
  await table(db)
    .insert({ sid, sess, expired: stamp(db, expiresAt), account_id: accountId })
    .onConflict('sid')
    .merge(['sess', 'expired', 'account_id']);
}

/** The account's live sessions, the most recently used first. */
export async function listForAccount(db: Knex, accountId: number, now: Date, limit = 50): Promise<AccountSession[]> {
  const rows = await table(db)
    .where({ account_id: accountId })
    .where('expired', '>', stamp(db, now))
    .orderBy('expired', 'desc')
    .limit(limit);
  return rows.map((r) => {
    const sess = typeof r.sess === 'string' ? (JSON.parse(r.sess) as Record<string, unknown>) : r.sess;
    return {
      sid: r.sid,
      client: (sess.client as SessionClient | undefined) ?? null,
      since: typeof sess.loginAt === 'number' ? new Date(sess.loginAt) : null,
      expiresAt: toDate(r.expired)!,
    };
  });
}

/** Ends every session of the account but `keepSid` (the one making the change); the number ended. */
export async function endForAccount(db: Knex, accountId: number, keepSid: string | null): Promise<number> {
  const q = table(db).where({ account_id: accountId });
  if (keepSid) q.whereNot({ sid: keepSid });
  return Number(await q.delete());
}

/** Ends one session of the account (the account page's "sign out" of another device). */
export async function endOne(db: Knex, accountId: number, sid: string): Promise<boolean> {
  return Number(await table(db).where({ account_id: accountId, sid }).delete()) === 1;
}

/** Removes sessions past their expiry (housekeeping; the store never returns them anyway). */
export async function purgeExpired(db: Knex, now: Date): Promise<number> {
  return Number(await table(db).where('expired', '<', stamp(db, now)).delete());
}
