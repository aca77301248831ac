import { setTimeout as sleep } from 'node:timers/promises';
import * as accounts from '../models/accounts.ts';
import { dummyPasswordHash, verifyPassword } from '../lib/passwords.ts';
import { RateLimiter, clientOf, type RateRule } from '../lib/rate-limiter.ts';
import { AppError } from '../lib/errors.ts';
import { recordAudit } from './audit.ts';
import type { Actor, ServiceDeps } from './context.ts';

/**
 * Throttles on secrets people type (passwords, second-factor codes). Every attempt is counted
 * atomically BEFORE the expensive check (hit-then-compare): however many arrive at the same instant,
 * at most the budget is checked. An attempt that turns out right gives its hit back. The limits slow
 * an attacker without locking the right person out from elsewhere (docs/decisions.md, "Throttles"):
 *
 * - per (client address, account): a wall, but only for that pair;
 * - per account from every address: a ceiling on guesses an hour; past it an unlock link is e-mailed
 *   to the account, which clears it (so does a password reset);
 * - per client address across accounts (password spraying): a growing delay, never a wall — the
 *   right password from that address still works, a little later.
 */

export const PASSWORD_FAILURES_PER_CLIENT_AND_ACCOUNT: RateRule = { limit: 5, windowMs: 15 * 60_000 };
export const PASSWORD_FAILURES_PER_ACCOUNT: RateRule = { limit: 100, windowMs: 60 * 60_000 };
export const PASSWORD_FAILURES_PER_CLIENT: RateRule = { limit: 30, windowMs: 15 * 60_000 };
/** Past the per-client budget each attempt waits this much per attempt over it, up to the maximum. */
export const SLOWDOWN_STEP_MS = 200;
export const SLOWDOWN_MAX_MS = 5_000;

export const CODE_FAILURES_PER_CLIENT_AND_ACCOUNT: RateRule = { limit: 5, windowMs: 15 * 60_000 };
export const CODE_FAILURES_PER_ACCOUNT: RateRule = { limit: 20, windowMs: 60 * 60_000 };

export const rateLimited = (retryAfterSeconds: number) => AppError.rateLimited(retryAfterSeconds);

/** The counters' keys (hashed by RateLimiter.key: no address or e-mail in clear). Accounts by e-mail, so unknown addresses are throttled alike. */
export const throttleKeys = {
  passwordPair: (ip: string, email: string) => RateLimiter.key('login-failures', ip, accounts.normaliseEmail(email)),
  passwordAccount: (email: string) => RateLimiter.key('login-failures-account', accounts.normaliseEmail(email)),
  passwordClient: (ip: string) => RateLimiter.key('login-failures-client', ip),
  codePair: (ip: string, accountId: number) => RateLimiter.key('two-factor-failures', ip, String(accountId)),
  codeAccount: (accountId: number) => RateLimiter.key('two-factor-failures-account', String(accountId)),
};

export interface ThrottleDeps extends ServiceDeps {
  limiter: RateLimiter;
}

/**
 * Another authority for some addresses (the vendor's LDAP directory, services/ldap.ts): given the
 * account the address names, it answers (an account, or a failure reason for the audit row), or
 * returns undefined to leave the address to its local password. It may throw (a page for the form).
 */
export type PasswordAuthority = (
  address: string,
  password: string,
  account: accounts.Account | undefined,
) => Promise<{ account: accounts.Account } | { failed: string } | undefined>;

/** The account-wide ceiling was just crossed: tell the owner (the hook sends the unlock link). */
export type OnAccountCeiling = (account: accounts.Account) => Promise<void>;

const ipOf = (actor: Actor) => clientOf(actor.ip);

/**
 * THE password check (login form, and end-user credentials in the offline portal and the License
 * API): throttled as above, a dummy hash for an unknown address so every answer takes the same
 * time. Returns the account when the password is right (disabled accounts included: the caller
 * decides), null otherwise; throws 429 while a budget is spent.
 */
export async function checkPassword(
  deps: ThrottleDeps,
  actor: Actor,
  email: string,
  password: string,
  onCeiling: OnAccountCeiling,
  authority?: PasswordAuthority,
): Promise<accounts.Account | null> {
  const { db, clock, limiter } = deps;
  const ip = ipOf(actor);
  const address = accounts.normaliseEmail(email);
  const who = { ...actor, label: address };
  const refuse = async (
    state: { hits: number; retryAfterSeconds: number },
    rule: RateRule,
    scope: string,
  ): Promise<never> => {
    // Only the first refusal of a window is audited: a flood writes one row.
    if (state.hits === rule.limit + 1)
      await recordAudit(db, who, clock.now(), { action: 'auth.login_rate_limited', after: { email: address, scope } });
    throw rateLimited(state.retryAfterSeconds);
  };
  const keys = {
    pair: throttleKeys.passwordPair(ip, address),
    account: throttleKeys.passwordAccount(address),
    client: throttleKeys.passwordClient(ip),
  };

  const pair = await limiter.hit(keys.pair, PASSWORD_FAILURES_PER_CLIENT_AND_ACCOUNT);
  if (pair.hits > PASSWORD_FAILURES_PER_CLIENT_AND_ACCOUNT.limit)
    return refuse(pair, PASSWORD_FAILURES_PER_CLIENT_AND_ACCOUNT, 'client_and_account');
  const whole = await limiter.hit(keys.account, PASSWORD_FAILURES_PER_ACCOUNT);
  if (whole.hits > PASSWORD_FAILURES_PER_ACCOUNT.limit) {
    if (whole.hits === PASSWORD_FAILURES_PER_ACCOUNT.limit + 1) {
      const account = await accounts.findByEmail(db, address);
      if (account && !account.disabled) await onCeiling(account);
    }
    return refuse(whole, PASSWORD_FAILURES_PER_ACCOUNT, 'account');
  }
  const client = await limiter.hit(keys.client, PASSWORD_FAILURES_PER_CLIENT);
  const over = client.hits - PASSWORD_FAILURES_PER_CLIENT.limit;
  if (over > 0) await sleep(Math.min(SLOWDOWN_MAX_MS, over * SLOWDOWN_STEP_MS));

  const found = await accounts.findByEmail(db, address);
  // Only now, with every budget counted, may the other authority (a network round trip) be asked.
  const external = authority ? await authority(address, password, found) : undefined;
  const account = external && 'account' in external ? external.account : found;
  const valid = external
    ? 'account' in external
    : await verifyPassword(found?.passwordHash ?? (await dummyPasswordHash()), password);
  if (!account || !valid) {
    await recordAudit(db, { ...who, accountId: account?.id ?? null }, clock.now(), {
      action: 'auth.login_failed',
      objectType: account ? 'account' : undefined,
      objectId: account?.id,
      after: {
        email: address,
        reason: external && 'failed' in external ? external.failed : account ? 'wrong_password' : 'unknown_email',
      },
    });
    return null;
  }
  // The right password: this attempt was no failure.
  await Promise.all([limiter.reset(keys.pair), limiter.release(keys.account), limiter.release(keys.client)]);
  return account;
}

/**
 * Counts a second-factor attempt before it is checked; `check` returns whether it was right.
 * A wrong one keeps its hits; a right one gives them back.
 */
export async function throttledCode<T extends { ok: boolean }>(
  deps: ThrottleDeps,
  actor: Actor,
  account: accounts.Account,
  purpose: string,
  check: () => Promise<T>,
): Promise<T> {
  const { db, clock, limiter } = deps;
  const keys = { pair: throttleKeys.codePair(ipOf(actor), account.id), account: throttleKeys.codeAccount(account.id) };
  for (const [key, rule] of [
    [keys.pair, CODE_FAILURES_PER_CLIENT_AND_ACCOUNT],
    [keys.account, CODE_FAILURES_PER_ACCOUNT],
  ] as const) {
    const state = await limiter.hit(key, rule);
    if (state.hits > rule.limit) {
      if (state.hits === rule.limit + 1)
        await recordAudit(db, { ...actor, accountId: account.id, label: account.email }, clock.now(), {
          action: 'auth.two_factor_rate_limited',
          objectType: 'account',
          objectId: account.id,
          after: { purpose },
        });
      throw rateLimited(state.retryAfterSeconds);
    }
  }
  const outcome = await check();
  if (outcome.ok) await Promise.all([limiter.reset(keys.pair), limiter.release(keys.account)]);
  return outcome;
}

export interface ThrottleState {
  label: 'passwordAccount' | 'codeAccount' | 'passwordClient' | 'passwordPair' | 'codePair';
  hits: number;
  limit: number;
  retryAfterSeconds: number;
}

type Counter = { label: ThrottleState['label']; key: string; rule: RateRule };

/** Every counter that applies to an e-mail address and/or a client address. */
async function countersFor(deps: ThrottleDeps, input: { email: string | null; ip: string | null }): Promise<Counter[]> {
  const rows: Counter[] = [];
  const account = input.email ? await accounts.findByEmail(deps.db, input.email) : undefined;
  if (input.email)
    rows.push({
      label: 'passwordAccount',
      key: throttleKeys.passwordAccount(input.email),
      rule: PASSWORD_FAILURES_PER_ACCOUNT,
    });
  if (account)
    rows.push({ label: 'codeAccount', key: throttleKeys.codeAccount(account.id), rule: CODE_FAILURES_PER_ACCOUNT });
  if (input.ip)
    rows.push({
      label: 'passwordClient',
      key: throttleKeys.passwordClient(clientOf(input.ip)),
      rule: PASSWORD_FAILURES_PER_CLIENT,
    });
  if (input.ip && input.email)
    rows.push({
      label: 'passwordPair',
      key: throttleKeys.passwordPair(clientOf(input.ip), input.email),
      rule: PASSWORD_FAILURES_PER_CLIENT_AND_ACCOUNT,
    });
  if (input.ip && account)
    rows.push({
      label: 'codePair',
      key: throttleKeys.codePair(clientOf(input.ip), account.id),
      rule: CODE_FAILURES_PER_CLIENT_AND_ACCOUNT,
    });
  return rows;
}

/** What the console shows for an e-mail address and/or a client address: each counter's state. */
export async function inspect(
  deps: ThrottleDeps,
  input: { email: string | null; ip: string | null },
): Promise<ThrottleState[]> {
  return Promise.all(
    (await countersFor(deps, input)).map(async (r) => ({
      label: r.label,
      limit: r.rule.limit,
      ...(await deps.limiter.peek(r.key)),
    })),
  );
}

/** The console clears them (audited): for a person locked out by someone else's guesses. */
export async function clear(
  deps: ThrottleDeps,
  actor: Actor,
  input: { email: string | null; ip: string | null },
): Promise<number> {
  const counters = await countersFor(deps, input);
  await Promise.all(counters.map((c) => deps.limiter.reset(c.key)));
  await recordAudit(deps.db, actor, deps.clock.now(), {
    action: 'security.throttles_cleared',
    after: {
      email: input.email ? accounts.normaliseEmail(input.email) : null,
      ip: input.ip,
      counters: counters.map((c) => c.label),
    },
  });
  return counters.length;
}
