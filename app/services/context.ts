import type { Knex } from 'knex';
import type { Clock } from '../lib/clock.ts';
import type { Metrics } from '../lib/metrics.ts';

/** Who is acting, from where: every service call carries it so audit rows can name the actor. */
export interface Actor {
  accountId: number | null;
  label: string | null;
  ip: string | null;
  requestId: string | null;
  /** The session the request came with (a change of credentials keeps it and ends the account's others). */
  sessionId?: string | null;
}

/** What a service needs from the outside world. */
export interface ServiceDeps {
  db: Knex;
  clock: Clock;
  /** Counters for /metrics (app/lib/metrics.ts): an app's context carries them; absent, nothing is counted. */
  metrics?: Metrics;
}

export const systemActor = (label = 'system'): Actor => ({ accountId: null, label, ip: null, requestId: null });
