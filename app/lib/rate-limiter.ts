import crypto from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import type { Knex } from 'knex';
import { isSqlite } from '../../db/knexfile.ts';
import type { Clock } from './clock.ts';
import { retryOnConflict } from './transaction.ts';

export interface RateRule {
  limit: number;
  windowMs: number;
}

export interface RateState {
  hits: number;
  retryAfterSeconds: number;
}

function stateOf(row: { hits: unknown; window_ends_ms: unknown } | undefined, now: number): RateState {
  const ends = Number(row?.window_ends_ms ?? 0);
  if (!row || ends <= now) return { hits: 0, retryAfterSeconds: 0 };
  return { hits: Number(row.hits), retryAfterSeconds: Math.max(1, Math.ceil((ends - now) / 1000)) };
}

/**
 * The client a per-address limit counts: an IPv4 address as it is (an IPv4-mapped IPv6 address as
 * its IPv4 one), an IPv6 address by its /64 — one site or subscriber usually holds a whole /64, so
 * counting single IPv6 addresses would give an attacker billions of fresh budgets.
 */
export function clientOf(ip: string | null | undefined): string {
  if (!ip) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  const address = ip.replace(/%.*$/, '');
  if (!isIPv6(address)) return ip;
  const [head = '', tail = ''] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = address.includes('::') && tail ? tail.split(':') : [];
  const groups = address.includes('::')
    ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

/**
 * Fixed-window counters kept in the database, so every server process behind a load balancer
 * shares them. One atomic upsert per hit; no read-modify-write race.
 */
export class RateLimiter {
  constructor(
    private readonly db: Knex,
    private readonly clock: Clock,
  ) {}

  /** Keys are hashed: an e-mail address or IP in a key is not stored in clear. */
  static key(...parts: string[]): string {
    return crypto.createHash('sha256').update(parts.join('\u0000')).digest('hex');
  }

  async hit(key: string, rule: RateRule): Promise<RateState> {
    const now = this.clock.now().getTime();
    const windowEnds = now + rule.windowMs;
    if (isSqlite(this.db)) {
      // One statement: the upsert returns the counter it left (SQLite 3.35+).
      const rows = (await this.db.raw(
        `INSERT INTO rate_limits (key, hits, window_ends_ms) VALUES (?, 1, ?)
         ON CONFLICT(key) DO UPDATE SET
           hits = CASE WHEN rate_limits.window_ends_ms <= ? THEN 1 ELSE rate_limits.hits + 1 END,
           window_ends_ms = CASE WHEN rate_limits.window_ends_ms <= ? THEN excluded.window_ends_ms ELSE rate_limits.window_ends_ms END
         RETURNING hits, window_ends_ms`,
        [key, windowEnds, now, now],
      )) as { hits: number; window_ends_ms: number }[];
      return stateOf(rows[0], now);
    }
    // MySQL applies the assignments left to right: hits is computed from the old window end. There is
    // no RETURNING: LAST_INSERT_ID(expr) hands the new count back in the statement's own result
    // (insertId; 0 when the row was new, so one hit). Only a caller over its limit needs the
    // window's end (Retry-After), and reads it.
    // Retried on a conflict: on a Galera cluster, hits on one counter through two nodes at once conflict.
    const [result] = (await retryOnConflict(
      () =>
        this.db.raw(
          'INSERT INTO rate_limits (`key`, hits, window_ends_ms) VALUES (?, 1, ?) ON DUPLICATE KEY UPDATE ' +
            'hits = LAST_INSERT_ID(IF(window_ends_ms <= ?, 1, hits + 1)), window_ends_ms = IF(window_ends_ms <= ?, VALUES(window_ends_ms), window_ends_ms)',
          [key, windowEnds, now, now],
        ),
      this.db,
    )) as [{ insertId: number }];
    const hits = Number(result.insertId) || 1;
    // The count is this hit's own; the window's end is read back (others may have counted since).
    if (hits > 1 && hits >= rule.limit)
      return { hits, retryAfterSeconds: (await this.peek(key)).retryAfterSeconds || 1 };
    return { hits, retryAfterSeconds: Math.max(1, Math.ceil(rule.windowMs / 1000)) };
  }

  /** The current count, or zero when the window has passed. */
  async peek(key: string): Promise<RateState> {
    const now = this.clock.now().getTime();
    return stateOf(await this.db('rate_limits').where({ key }).first(), now);
  }

  /** Gives back one hit (an attempt counted before its check, that turned out legitimate). */
  async release(key: string): Promise<void> {
    await retryOnConflict(
      () => this.db('rate_limits').where({ key }).where('hits', '>', 0).decrement('hits', 1),
      this.db,
    );
  }

  async reset(key: string): Promise<void> {
    await this.db('rate_limits').where({ key }).delete();
  }

  /** Removes finished windows; called now and then so the table stays small. */
  async purge(): Promise<void> {
    await this.db('rate_limits').where('window_ends_ms', '<=', this.clock.now().getTime()).delete();
  }
}
