import * as vouchers from '../models/vouchers.ts';
import * as licenses from '../models/licenses.ts';
import * as accounts from '../models/accounts.ts';
import * as policies from '../models/policies.ts';
import * as products from '../models/products.ts';
import * as assignments from '../models/license-users.ts';
import * as requestNonces from '../models/request-nonces.ts';
import type { Knex } from 'knex';
import type { Account } from '../models/accounts.ts';
import type { VoucherChannel, VoucherWithBatch } from '../models/vouchers.ts';
import { isUniqueViolation } from '../models/normalise.ts';
import { AppError, HttpError, ValidationError, notFound } from '../lib/errors.ts';
import { RateLimiter, clientOf } from '../lib/rate-limiter.ts';
import { hashPassword } from '../lib/passwords.ts';
import { inTransaction } from '../lib/transaction.ts';
import { canonicalVoucherCode, generateVoucherCode, voucherHash, voucherHint } from '../lib/voucher-codes.ts';
import { issuableFor } from '../policies/portal.ts';
import { licenseData, publishEvent } from './events.ts';
import { auditedChange } from './changes.ts';
import { recordAudit } from './audit.ts';
import { issueLicenses } from './licenses.ts';
import { consumeQuota } from './portal.ts';
import * as managers from '../models/managers.ts';
import {
  ActivationError,
  activate,
  type ActivationDeps,
  type ActivationInput,
  type ActivationResult,
} from './activation.ts';
import { checkPassword, rateLimited } from './throttles.ts';
import { mailUnlockLink } from './auth.ts';
import type { Actor, ServiceDeps } from './context.ts';
import { recordRefusal, type RefusalDeps } from './refusals.ts';

/**
 * Redeemable license codes (docs/decisions.md, "Redeemable codes"). A manager generates a batch
 * against their quota; a code is redeemed exactly once — in the User Portal, through the License
 * API, with an offline request file or on the Air-Gapped Activation Portal, all through
 * redeemVoucher — into one license of the batch's policy in the batch's order. The plain codes leave
 * this module only in generateVouchers' result.
 */

export const MAX_VOUCHERS_PER_BATCH = 500;
export const MAX_VOUCHER_DAYS = 730;
/** Redemption attempts per client address (every channel together), counted before any work. */
export const REDEEM_PER_CLIENT = { limit: 30, windowMs: 15 * 60_000 };

export const VOUCHER_REFUSALS = [
  'voucher_unknown',
  'voucher_used',
  'voucher_voided',
  'voucher_expired',
  'voucher_other_product',
] as const;
export type VoucherRefusal = (typeof VOUCHER_REFUSALS)[number];

/** Who redeems, where, and (a device channel) for which product the device asks. */
export interface Redeemer {
  accountId: number | null;
  channel: VoucherChannel;
  /** The product code of the device's request: a code for another product is refused before it is spent. */
  productCode?: string;
}

/** Why a code was not redeemed (kind `refusal`; the portals translate offline.refusals.<code>, the API returns the code). */
export class VoucherError extends AppError {
  declare readonly code: VoucherRefusal;

  constructor(code: VoucherRefusal, status: number) {
    super('refusal', code, status, `offline.refusals.${code}.why`);
  }
}

/** How long the codes live: `days` from now (the portal's form), or until `expiresAt` (the Management API). */
export type GenerateInput = { policyId: number; count: number } & ({ days: number } | { expiresAt: Date });

const DAY_MS = 86_400_000;

/** A new batch lives 1 to MAX_VOUCHER_DAYS days, however its expiry is given (one rule for every caller). */
function checkExpiry(input: GenerateInput, now: Date): void {
  if ('days' in input) {
    if (!Number.isInteger(input.days) || input.days < 1 || input.days > MAX_VOUCHER_DAYS)
      throw new ValidationError({ days: 'validation.numberRange' });
    return;
  }
  const ahead = input.expiresAt.getTime() - now.getTime();
  if (!(ahead >= DAY_MS && ahead <= MAX_VOUCHER_DAYS * DAY_MS))
    throw new ValidationError({ expires_at: 'apiVouchers.expiresAtRange' });
}

/**
 * Generates `count` codes for a policy of an order, reserving them against the manager's quota for
 * the policy's product (admins have none) in the same transaction. Returns the plain codes: the only
 * time they exist outside the person's hands.
 */
export async function generateVouchers(
  deps: ServiceDeps,
  actor: Actor,
  account: Account,
  orderId: number,
  input: GenerateInput,
): Promise<{ batchId: number; codes: string[]; expiresAt: Date; productName: string; policyName: string }> {
  if (!Number.isInteger(input.count) || input.count < 1 || input.count > MAX_VOUCHERS_PER_BATCH)
    throw new ValidationError({ count: 'validation.numberRange' });
  checkExpiry(input, deps.clock.now());
  if (account.role !== 'admin' && !(await issuableFor(deps.db, account)).some((p) => p.id === input.policyId))
    throw new ValidationError({ policy_id: 'portal.policyNotAllowed' });
  const codes = Array.from({ length: input.count }, generateVoucherCode);
  return auditedChange(deps, actor, async (trx, now) => {
    const policy = await policies.findById(trx, input.policyId);
    const product = policy ? await products.findById(trx, policy.productId) : undefined;
    if (!policy || !product || policy.archived || product.archived)
      throw new ValidationError({ policy_id: 'licenses.policyNotIssuable' });
    const quotaCounted = account.role !== 'admin';
    if (quotaCounted) await consumeQuota(trx, account.id, product.id, input.count, 'count');
    const expiresAt = 'days' in input ? new Date(now.getTime() + input.days * DAY_MS) : input.expiresAt;
    const batchId = await vouchers.insertBatch(
      trx,
      {
        orderId,
        policyId: policy.id,
        productId: product.id,
        // The acting person (an API client is nobody: null), whose quota a voided code goes back to.
        createdBy: actor.accountId,
        quotaCounted,
        count: input.count,
        expiresAt,
      },
      now,
    );
    await vouchers.insertVouchers(
      trx,
      batchId,
      codes.map((code) => {
        const canonical = canonicalVoucherCode(code)!;
        return { codeHash: voucherHash(canonical), hint: voucherHint(canonical) };
      }),
      expiresAt,
    );
    return {
      result: { batchId, codes, expiresAt, productName: product.name, policyName: policy.name },
      audit: {
        action: 'vouchers.generated',
        objectType: 'order',
        objectId: orderId,
        orderId,
        after: { batchId, policyId: policy.id, productId: product.id, count: input.count, expiresAt },
      },
    };
  });
}

/**
 * THE voiding of one code (voidVoucher, voidRestOfBatch): the guarded update that only a code neither
 * redeemed nor voided passes (an expired one too), then its audit event. Returns whether it voided it
 * (false: a redemption or another voiding got there first). The unit goes back to the quota by the caller.
 */
async function voidIn(trx: Knex, actor: Actor, now: Date, voucher: VoucherWithBatch): Promise<boolean> {
  if (!(await vouchers.markVoided(trx, voucher.id, actor.accountId, now))) return false;
  await recordAudit(trx, actor, now, {
    action: 'voucher.voided',
    objectType: 'voucher',
    objectId: voucher.id,
    orderId: voucher.orderId,
    before: { status: voucher.status, hint: voucher.hint },
    after: { status: 'voided', quotaReturned: voucher.quotaCounted },
  });
  return true;
}

/** Gives `count` voided codes' units back to the quota of the manager who generated their batch (if it was counted). */
async function returnUnits(trx: Knex, voucher: VoucherWithBatch, count: number): Promise<void> {
  if (count > 0 && voucher.quotaCounted && voucher.createdBy !== null)
    await managers.releaseQuota(trx, voucher.createdBy, voucher.productId, count);
}

/**
 * Voids a code that was not redeemed (an expired one too); its unit goes back to the quota it was
 * counted against. `batchId`: the code must also be of that batch (the console's batch page), else 404.
 */
export async function voidVoucher(
  deps: ServiceDeps,
  actor: Actor,
  orderId: number,
  voucherId: number,
  batchId?: number,
): Promise<void> {
  await inTransaction(deps.db, async (trx) => {
    const now = deps.clock.now();
    const voucher = await vouchers.findInOrder(trx, orderId, voucherId, now);
    if (!voucher || (batchId !== undefined && voucher.batchId !== batchId)) throw notFound();
    if (!(await voidIn(trx, actor, now, voucher)))
      throw new HttpError(409, voucher.redeemedAt ? 'vouchers.alreadyRedeemed' : 'vouchers.alreadyVoided');
    await returnUnits(trx, voucher, 1);
  });
}

/**
 * Voids every code of a batch that is neither redeemed nor voided (the console's "void the rest"), in
 * one transaction: one guarded update per code (a code a racing redemption or voiding got first is
 * skipped), one `voucher.voided` event per code voided, and the units of exactly the codes this call
 * voided back to the quota in one guarded update at the end (so two racing calls return them once).
 * Returns how many it voided.
 */
export async function voidRestOfBatch(deps: ServiceDeps, actor: Actor, batchId: number): Promise<number> {
  return inTransaction(deps.db, async (trx) => {
    const now = deps.clock.now();
    const rest = await vouchers.unusedInBatch(trx, batchId, now);
    let voided = 0;
    for (const voucher of rest) if (await voidIn(trx, actor, now, voucher)) voided++;
    if (rest[0]) await returnUnits(trx, rest[0], voided);
    return voided;
  });
}

/** The per-client budget of redemption attempts, hit before anything else is done (hit-then-compare). */
export async function limitRedemption(deps: { limiter: RateLimiter }, actor: Actor): Promise<void> {
  const state = await deps.limiter.hit(RateLimiter.key('voucher-redeem', clientOf(actor.ip)), REDEEM_PER_CLIENT);
  if (state.hits > REDEEM_PER_CLIENT.limit) throw rateLimited(state.retryAfterSeconds);
}

export interface Redemption {
  voucherId: number;
  licenseId: number;
  orderId: number;
  licenseKey: string | null;
  productName: string;
  authorizationMethod: 'key' | 'user';
}

/**
 * THE redemption (every channel): in one transaction, the guarded update that only one of any number
 * of racing redemptions passes, then one license of the batch's policy issued into the batch's order
 * (the quota was counted at generation), assigned to the redeeming account when user-based, and the
 * audit event (never the code). `accountId` is the redeeming end user (null: an anonymous device,
 * key-based policies only); `channel` a device channel checks the policy allows it before the code is spent.
 * A refused code is recorded as a refusal (refusals.ts: per-client allowance, never the code).
 */
export async function redeemVoucher(deps: RefusalDeps, actor: Actor, code: string, by: Redeemer): Promise<Redemption> {
  return refusalsRecorded(deps, actor, by.channel, () =>
    inTransaction(deps.db, (trx) => redeemIn({ ...deps, db: trx }, actor, code, by)),
  );
}

/**
 * Runs a redemption; a refused code (a VoucherError, or what the policy forbids for the channel) is
 * recorded once the transaction is over, then thrown, marked `recorded` so no caller records it again.
 */
async function refusalsRecorded<T>(
  deps: RefusalDeps,
  actor: Actor,
  channel: VoucherChannel,
  run: () => Promise<T>,
): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if ((err instanceof VoucherError || err instanceof ActivationError) && !(err as { recorded?: boolean }).recorded) {
      await recordRefusal(deps, actor, { action: 'voucher.refused', channel, requestHash: null }, err.code);
      Object.assign(err, { recorded: true });
    }
    throw err;
  }
}

async function redeemIn(deps: ServiceDeps, actor: Actor, code: string, by: Redeemer): Promise<Redemption> {
  const canonical = canonicalVoucherCode(code);
  if (!canonical) throw new VoucherError('voucher_unknown', 404);
  const codeHash = voucherHash(canonical);
  const trx = deps.db;
  const now = deps.clock.now();
  const voucher = await vouchers.findByHash(trx, codeHash, now);
  if (!voucher) throw new VoucherError('voucher_unknown', 404);
  if (voucher.status === 'redeemed') throw new VoucherError('voucher_used', 409);
  if (voucher.status === 'voided') throw new VoucherError('voucher_voided', 410);
  if (voucher.status === 'expired') throw new VoucherError('voucher_expired', 410);
  const policy = (await policies.findById(trx, voucher.policyId))!;
  const product = (await products.findById(trx, voucher.productId))!;
  // The vendor archived what the code was for: withdrawn like a voided code.
  if (policy.archived || product.archived) throw new VoucherError('voucher_voided', 410);
  // Refused before the code is spent: what the device could not then activate.
  if (by.productCode !== undefined && by.productCode !== product.code)
    throw new VoucherError('voucher_other_product', 409);
  if (by.channel !== 'portal' && by.channel !== 'airgap' && policy.airgapped)
    throw new ActivationError('airgap_only', 403);
  if (by.channel === 'airgap' && !policy.airgapped) throw new ActivationError('airgap_required', 403);
  if (by.channel === 'offline' && !policy.allowOffline) throw new ActivationError('offline_not_allowed', 403);
  const redeemer = by.accountId === null ? undefined : await accounts.findById(trx, by.accountId);
  if (product.authorizationMethod === 'user' && !redeemer) throw new ActivationError('user_credentials', 401);
  if (!(await vouchers.markRedeemed(trx, codeHash, { accountId: by.accountId, channel: by.channel }, now)))
    throw new VoucherError('voucher_used', 409);
  const issued = await issueLicenses(
    deps,
    actor,
    voucher.orderId,
    {
      policyId: voucher.policyId,
      ...(product.authorizationMethod === 'key' ? { quantity: 1 } : { emails: [redeemer!.email] }),
    },
    {
      assignUser: async (t, licenseId, _email, maxActivations, at) => {
        await assignments.insert(t, licenseId, redeemer!.id, maxActivations, at);
        return { accountId: redeemer!.id, created: false };
      },
    },
  );
  const licenseId = issued.licenseIds[0]!;
  await vouchers.setLicense(trx, voucher.id, licenseId);
  await recordAudit(trx, actor, now, {
    action: 'voucher.redeemed',
    objectType: 'voucher',
    objectId: voucher.id,
    orderId: voucher.orderId,
    before: { status: 'open', hint: voucher.hint },
    after: { status: 'redeemed', licenseId, accountId: by.accountId, channel: by.channel },
  });
  const license = (await licenses.findById(trx, licenseId, now))!;
  await publishEvent(trx, deps.clock, {
    type: 'voucher.redeemed',
    orderId: voucher.orderId,
    data: {
      ...licenseData(license),
      voucherId: voucher.id,
      voucherBatchId: voucher.batchId,
      voucherHint: voucher.hint,
      channel: by.channel,
    },
  });
  return {
    voucherId: voucher.id,
    licenseId,
    orderId: voucher.orderId,
    licenseKey: license.licenseKey,
    productName: product.name,
    authorizationMethod: product.authorizationMethod,
  };
}

export interface SignUp {
  email: string;
  name: string;
  password: string;
  language: string;
}

/**
 * An anonymous visitor redeems a code and gets an end-user account in one step (one transaction:
 * a refused code leaves no account behind). The code is looked at first, so only someone holding a
 * valid code learns that an address has an account already (they are asked to sign in instead).
 */
export async function signUpAndRedeem(
  deps: RefusalDeps,
  actor: Actor,
  input: SignUp,
  code: string,
): Promise<{ account: Account; redemption: Redemption }> {
  const canonical = canonicalVoucherCode(code);
  if (!canonical) throw new VoucherError('voucher_unknown', 404);
  const passwordHash = await hashPassword(input.password);
  return refusalsRecorded(deps, actor, 'portal', () =>
    inTransaction(deps.db, async (trx) => {
      const now = deps.clock.now();
      const voucher = await vouchers.findByHash(trx, voucherHash(canonical), now);
      if (voucher?.status === 'open' && (await accounts.findByEmail(trx, input.email)))
        throw new ValidationError({ email: 'vouchers.redeem.emailTaken' });
      const id =
        voucher?.status === 'open'
          ? await accounts.insert(
              trx,
              { email: input.email, name: input.name, passwordHash, role: 'end_user', language: input.language },
              now,
            )
          : null;
      const redemption = await redeemIn({ ...deps, db: trx }, { ...actor, accountId: id }, code, {
        accountId: id,
        channel: 'portal',
      });
      const account = (await accounts.findById(trx, id!))!;
      await recordAudit(trx, { ...actor, accountId: account.id, label: account.email }, now, {
        action: 'account.created_by_redemption',
        objectType: 'account',
        objectId: account.id,
        orderId: redemption.orderId,
        after: accounts.auditView(account),
      });
      return { account, redemption };
    }).catch((err: unknown) => {
      // The same address signing up at the same moment: the unique key decides, the loser is asked to sign in.
      if (isUniqueViolation(err)) throw new ValidationError({ email: 'vouchers.redeem.emailTaken' });
      throw err;
    }),
  );
}

/** The license of an earlier activation of this very request (a repeated upload or call), if any. */
async function repeatedLicense(deps: ServiceDeps, nonce: string) {
  const seen = await requestNonces.find(deps.db, nonce);
  return seen?.licenseId ? licenses.findById(deps.db, seen.licenseId, deps.clock.now()) : undefined;
}

/** Whether `code` is the code whose redemption made license `licenseId`. */
async function redeemedInto(deps: ServiceDeps, code: string, licenseId: number): Promise<boolean> {
  const canonical = canonicalVoucherCode(code);
  const voucher = canonical ? await vouchers.findByHash(deps.db, voucherHash(canonical), deps.clock.now()) : undefined;
  return voucher?.licenseId === licenseId;
}

/**
 * An activation request that carries a code (License API `redeem`, offline upload, a request code
 * typed with a code on the air-gap portal):
 * the code is redeemed, then the new license activated on that device through the one activation
 * service. A user-based license is redeemed for the license user whose credentials come with the
 * request (never inside it). The same request again is answered like a repeated activation and
 * redeems nothing — only with the code that made its license: an air-gap request code is no secret,
 * so it must not hand out the license of a code someone else typed (`nonce_reused`, nothing spent).
 * One transaction: the redemption runs inside the activation's (activation.ts, LicenseSource), so a
 * code is spent only with the activation it pays for; whatever refuses or breaks the activation of
 * the new license rolls the redemption back and leaves the code redeemable. The redemption still
 * refuses first what the policy forbids for the channel, so that refusal names the code's problem.
 */
export async function redeemAndActivate(
  deps: ActivationDeps,
  actor: Actor,
  input: ActivationInput,
  code: string,
): Promise<ActivationResult> {
  const repeat = await repeatedLicense(deps, input.nonce);
  if (repeat) {
    await refusalsRecorded(deps, actor, input.channel, async () => {
      if (!(await redeemedInto(deps, code, repeat.id))) throw new ActivationError('nonce_reused');
    });
    return activate(deps, actor, { ...input, licenseKey: repeat.licenseKey });
  }
  await limitRedemption(deps, actor);
  let accountId: number | null = null;
  if (input.user) {
    const account = await checkPassword(deps, actor, input.user.email, input.user.password, mailUnlockLink(deps));
    if (account?.role !== 'end_user' || account.disabled) throw new ActivationError('user_credentials', 401);
    accountId = account.id;
  }
  const by: Redeemer = { accountId, channel: input.channel, productCode: input.productCode };
  return activate(deps, actor, input, {
    keyIn: async (trx) => (await redeemIn({ ...deps, db: trx }, actor, code, by)).licenseKey,
    refusal: { action: 'voucher.refused', channel: input.channel, requestHash: null },
  });
}
