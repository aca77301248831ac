import type { Request, Response } from 'express';
import { z } from 'zod';
import type { AppContext } from '../../app.ts';
import * as vouchers from '../../models/vouchers.ts';
import type { Voucher, VoucherBatch } from '../../models/vouchers.ts';
import { generateVouchersForm } from '../../forms/vouchers.ts';
import { optionalWholeNumber } from '../../forms/fields.ts';
import { AppError } from '../../lib/errors.ts';
import { canonicalVoucherCode, voucherHash } from '../../lib/voucher-codes.ts';
import { generateVouchers, voidVoucher } from '../../services/vouchers.ts';
import { FRESH_CODES_MINUTES } from '../fresh-codes.ts';
import { body, isoTime, query } from '../../api/manage/input.ts';
import { cursorPage, pageParams } from '../../api/manage/pagination.ts';
import { sealForReplay } from '../../api/manage/idempotency.ts';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** A redeemable code as the Management API shows it: its hint, never the code (which is not stored). */
export function voucherJson(v: Voucher) {
  return {
    id: v.id,
    batch_id: v.batchId,
    hint: v.hint,
    status: v.status,
    expires_at: v.expiresAt.toISOString(),
    redeemed_at: iso(v.redeemedAt),
    redeemed_by: v.redeemedBy,
    redeemed_by_email: v.redeemedByEmail,
    channel: v.redeemedChannel,
    license_id: v.licenseId,
    voided_at: iso(v.voidedAt),
  };
}

/** A batch and how many of its codes are open, redeemed, voided and expired (unused past their expiry). */
export function batchJson(b: VoucherBatch, counts: vouchers.BatchCounts | undefined) {
  const c = counts ?? { total: 0, redeemed: 0, voided: 0, expired: 0, open: 0 };
  return {
    id: b.id,
    order_id: b.orderId,
    product_id: b.productId,
    product_name: b.productName,
    policy_id: b.policyId,
    policy_name: b.policyName,
    count: b.count,
    expires_at: b.expiresAt.toISOString(),
    created_at: b.createdAt.toISOString(),
    created_by: b.createdBy,
    created_by_name: b.createdByName,
    quota_counted: b.quotaCounted,
    counts: { open: c.open, redeemed: c.redeemed, voided: c.voided, expired: c.expired },
  };
}

const listFilter = z.object({
  policy_id: optionalWholeNumber(1, 2_147_483_647),
  product_id: optionalWholeNumber(1, 2_147_483_647),
  ...pageParams,
});

/**
 * POST /orders/:id/voucher-batches: the portal's form (policy, count, the same rules), the expiry as
 * `expires_in_days` (the form's `days`) or `expires_at` — one of the two.
 */
const newBatch = generateVouchersForm.omit({ days: true }).extend({
  expires_in_days: generateVouchersForm.shape.days.optional(),
  expires_at: isoTime,
});

/** /api/manage/v1 redeemable codes: the portal's voucher services (services/vouchers.ts). */
export function manageVouchersController(ctx: AppContext) {
  /** A batch with its codes (hints and states). */
  const showBatch = async (id: number) => {
    const now = ctx.clock.now();
    const [batch, codes] = await Promise.all([
      vouchers.findBatchSummary(ctx.db, id, now),
      vouchers.listForBatches(ctx.db, [id], now),
    ]);
    return { ...batchJson(batch!, batch!.counts), vouchers: codes.map(voucherJson) };
  };

  return {
    async index(req: Request, res: Response) {
      const f = query(listFilter, req);
      const now = ctx.clock.now();
      const q = vouchers.batchesQuery(ctx.db, req.order!.id, {
        policyId: f.policy_id ?? undefined,
        productId: f.product_id ?? undefined,
      });
      res.json(
        await cursorPage(
          q,
          f,
          async (rows) => {
            const batches = rows.map(vouchers.batchFrom);
            const counts = await vouchers.countsOf(
              ctx.db,
              batches.map((b) => b.id),
              now,
            );
            return batches.map((b) => batchJson(b, counts.get(b.id)));
          },
          'b.id',
        ),
      );
    },

    show: async (req: Request, res: Response) => res.json(await showBatch(req.voucherBatch!.id)),

    /**
     * Generates a batch (services/vouchers.ts generateVouchers: a personal token only from its
     * manager's allowed policies and within their quota; an API client has none). The answer is the
     * batch with each code in plain: the only time a code is told. For an Idempotency-Key replay it
     * is kept sealed and replayed for FRESH_CODES_MINUTES only (docs/decisions.md, "Redeemable codes").
     */
    async create(req: Request, res: Response) {
      const f = body(newBatch, req);
      const days = f.expires_in_days;
      if ((days === undefined) === (f.expires_at === undefined))
        throw AppError.validation({ expires_at: 'apiVouchers.expiresOneOf' });
      const batch = await generateVouchers(ctx, req.actor, req.api!.account, req.order!.id, {
        policyId: f.policy_id,
        count: f.count,
        ...(days === undefined ? { expiresAt: f.expires_at! } : { days }),
      });
      const ids = await vouchers.idsByHash(ctx.db, batch.batchId);
      const codeOf = new Map(batch.codes.map((code) => [ids.get(voucherHash(canonicalVoucherCode(code)!)), code]));
      sealForReplay(res, {
        replayForMs: FRESH_CODES_MINUTES * 60_000,
        afterwards: {
          code: 'idempotent_replay_without_codes',
          messageKey: 'apiVouchers.replayWithoutCodes',
          vars: { batch: batch.batchId, minutes: FRESH_CODES_MINUTES },
          location: `${req.baseUrl}/voucher-batches/${batch.batchId}`,
        },
      });
      const shown = await showBatch(batch.batchId);
      res
        .status(201)
        .set('Cache-Control', 'no-store')
        .location(`${req.baseUrl}/voucher-batches/${batch.batchId}`)
        .json({ ...shown, vouchers: shown.vouchers.map((v) => ({ ...v, code: codeOf.get(v.id)! })) });
    },

    /** Voids an unredeemed code (an expired one too); its unit goes back to the quota it was counted against. */
    async void(req: Request, res: Response) {
      const v = req.voucher!;
      await voidVoucher(ctx, req.actor, v.orderId, v.id);
      const after = (await vouchers.findWithBatch(ctx.db, v.id, ctx.clock.now()))!;
      res.json({ ...voucherJson(after), quota_returned: v.quotaCounted && v.createdBy !== null });
    },
  };
}
