import { ConnectSessionKnexStore } from 'connect-session-knex';
import type { SessionData } from 'express-session';
import type { Knex } from 'knex';
import * as sessions from '../models/sessions.ts';
import { retryOnConflict } from './transaction.ts';

/** How long a session's stored expiry may lag behind its cookie's (rolling sessions). */
export const TOUCH_INTERVAL_MS = 60_000;
const REMEMBERED_LIMIT = 50_000;

/**
 * Sessions in the database (every process sees them), with rolling expiry written at most once a
 * minute per session: express-session touches the session on every request, which would make every
 * page view and upload a write. The stored expiry is the idle limit (SESSION_MAX_AGE_MINUTES) and may
 * run up to TOUCH_INTERVAL_MS early, never late. A failed touch reaches the callback instead of
 * becoming an unhandled rejection.
 */
export class SessionStore extends ConnectSessionKnexStore {
  private readonly touchedAt = new Map<string, number>();
  constructor(private readonly db: Knex) {
    super({ knex: db, tableName: 'sessions', createTable: false, cleanupInterval: 0 });
  }

  /**
   * One upsert that also records whose session it is (`sessions.account_id`, passport's user id), so
   * a change of credentials can end the account's other sessions and the account page can list them.
   * (connect-session-knex's own SQLite statement is INSERT OR REPLACE, which would drop the owner.)
   */
  override async set(sid: string, session: SessionData, callback?: (err?: unknown) => void): Promise<void> {
    this.remember(sid);
    const owner = Number((session as { passport?: { user?: unknown } }).passport?.user) || null;
    try {
      // Retried on a conflict: on a Galera cluster, two requests of one browser saving its session
      // through two nodes at once conflict at commit (1213); the last write wins, as on one server.
      await retryOnConflict(
        () =>
          sessions.save(
            this.db,
            sid,
            JSON.stringify(session),
            new Date(Date.now() + (session.cookie?.maxAge ?? 86_400_000)),
            owner,
          ),
        this.db,
      );
    } catch (err) {
      callback?.(err);
      return;
    }
    callback?.();
  }

  override async touch(sid: string, session: SessionData, callback?: () => void): Promise<void> {
    const last = this.touchedAt.get(sid);
    if (last !== undefined && Date.now() - last < TOUCH_INTERVAL_MS) {
      callback?.();
      return;
    }
    this.remember(sid);
    try {
      await retryOnConflict(() => super.touch(sid, session), this.db);
    } catch (err) {
      this.touchedAt.delete(sid);
      (callback as ((err?: unknown) => void) | undefined)?.(err);
      return;
    }
    callback?.();
  }

  override async destroy(sid: string, callback?: (err?: unknown) => void): Promise<number> {
    this.touchedAt.delete(sid);
    return super.destroy(sid, callback);
  }

  private remember(sid: string) {
    if (this.touchedAt.size >= REMEMBERED_LIMIT) {
      const stale = Date.now() - TOUCH_INTERVAL_MS;
      for (const [k, at] of this.touchedAt) if (at < stale) this.touchedAt.delete(k);
      if (this.touchedAt.size >= REMEMBERED_LIMIT) this.touchedAt.clear();
    }
    this.touchedAt.set(sid, Date.now());
  }
}
