import { AppError } from '../lib/errors.ts';
import type { TFunction } from '../lib/i18n.ts';
import type { Delivery, Mailer } from '../lib/mailer.ts';
import { RateLimiter } from '../lib/rate-limiter.ts';
import { isUniqueViolation } from '../models/normalise.ts';
import * as accounts from '../models/accounts.ts';
import type { License } from '../models/licenses.ts';
import type { Order } from '../models/orders.ts';
import * as renewals from '../models/renewal-requests.ts';
import { rateLimited } from './throttles.ts';
import { auditedChange } from './changes.ts';
import type { Actor, ServiceDeps } from './context.ts';
import { publishEvent } from './events.ts';
import { sendMail } from './mail.ts';

/** Requests an account may make per day (docs/decisions.md, "Renewal requests"): counted before any work. */
export const RENEWAL_BUDGET = { limit: 10, windowMs: 86_400_000 };
/** The most seats one request may ask for. */
export const MAX_SEATS_REQUESTED = 100_000;

export interface RenewalDeps extends ServiceDeps {
  limiter: RateLimiter;
  mailer: Mailer;
  translatorFor: (lng: string) => TFunction;
  baseUrl: string;
}

/** Spends one request of the account's daily budget (hit-then-compare): 429 once it is used up. */
export async function spendRenewalBudget(deps: Pick<RenewalDeps, 'limiter'>, accountId: number): Promise<void> {
  const state = await deps.limiter.hit(RateLimiter.key('renewal-request', String(accountId)), RENEWAL_BUDGET);
  if (state.hits > RENEWAL_BUDGET.limit) throw rateLimited(state.retryAfterSeconds);
}

export interface RenewalInput {
  kind: renewals.RenewalKind;
  seats: number | null;
  message: string;
}

/**
 * Records a renewal request for an order (license null) or one of its licenses, and publishes
 * `renewal.requested` in the same transaction. One open request of a kind per order or license: the
 * unique open key refuses a second one (409), also when two arrive at the same instant.
 */
export async function requestRenewal(
  deps: RenewalDeps,
  actor: Actor,
  requester: Pick<accounts.Account, 'id' | 'email'>,
  target: { order: Pick<Order, 'id' | 'orderRef'>; license: Pick<License, 'id' | 'licenseKey'> | null },
  input: RenewalInput,
): Promise<number> {
  const seats = input.kind === 'more_seats' ? input.seats : null;
  return auditedChange(deps, actor, async (trx, now) => {
    let id: number;
    try {
      id = await renewals.insert(
        trx,
        {
          orderId: target.order.id,
          licenseId: target.license?.id ?? null,
          kind: input.kind,
          seats,
          message: input.message,
          requesterId: requester.id,
        },
        now,
      );
    } catch (err) {
      if (isUniqueViolation(err)) throw AppError.conflict('renewals.errors.alreadyOpen');
      throw err;
    }
    await publishEvent(trx, deps.clock, {
      type: 'renewal.requested',
      orderId: target.order.id,
      data: {
        renewalRequestId: id,
        kind: input.kind,
        seats,
        orderId: target.order.id,
        orderRef: target.order.orderRef,
        licenseId: target.license?.id ?? null,
        licenseKey: target.license?.licenseKey ?? null,
        requesterEmail: requester.email,
        message: input.message,
      },
    });
    return {
      result: id,
      audit: {
        action: 'renewal.requested',
        objectType: 'renewal_request',
        objectId: id,
        orderId: target.order.id,
        after: { kind: input.kind, seats, licenseId: target.license?.id ?? null },
      },
    };
  });
}

/** The states the vendor may move an open request to; done and declined are final. */
export const HANDLING_STATES = ['in_progress', 'done', 'declined'] as const;

/**
 * The vendor moves a request on (in progress, done, declined) with a note; the requester gets a mail in
 * their language saying so. A closed request stays closed (409), so its open key never comes back.
 */
export async function handleRenewal(
  deps: RenewalDeps,
  actor: Actor,
  id: number,
  change: { state: (typeof HANDLING_STATES)[number]; note: string | null },
): Promise<{ delivery: Delivery | null; email: string | null }> {
  const request = await auditedChange(deps, actor, async (trx, now) => {
    const before = await renewals.findById(trx, id);
    if (!before) throw AppError.notFound();
    if (!renewals.OPEN_STATES.includes(before.state) || before.state === change.state)
      throw AppError.conflict('renewals.errors.notOpen');
    if (!(await renewals.setState(trx, id, before.state, { ...change, handledBy: actor.accountId }, now)))
      throw AppError.conflict('renewals.errors.notOpen');
    return {
      result: before,
      audit: {
        action: 'renewal.state_changed',
        objectType: 'renewal_request',
        objectId: id,
        orderId: before.orderId,
        before: { state: before.state },
        after: { state: change.state, note: change.note },
      },
    };
  });
  return mailRequester(deps, request, change);
}

async function mailRequester(
  deps: RenewalDeps,
  request: renewals.RenewalRequest,
  change: { state: string; note: string | null },
): Promise<{ delivery: Delivery | null; email: string | null }> {
  const account = request.requesterId === null ? undefined : await accounts.findById(deps.db, request.requesterId);
  if (!account || account.disabled) return { delivery: null, email: null };
  const delivery = await sendMail(deps, 'renewal-state', {
    to: account.email,
    language: account.language,
    data: (url) => ({
      name: account.name,
      kind: request.kind,
      order: request.orderRef,
      state: change.state,
      note: change.note,
      link: url('portal', (p) => (account.role === 'end_user' ? p.portal() : p.portalOrder(request.orderId))),
    }),
  });
  return { delivery, email: account.email };
}
