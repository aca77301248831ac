import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import * as vouchers from '../../models/vouchers.ts';
import * as managers from '../../models/managers.ts';
import { dataDirSecretBox } from '../../crypto/secret-box.ts';
import { formData } from '../../forms/parse.ts';
import { generateVouchersForm } from '../../forms/vouchers.ts';
import { csvLine } from '../../lib/csv.ts';
import { qrCodeDataUrl } from '../../lib/totp.ts';
import { issuableFor } from '../../policies/portal.ts';
import { generateVouchers, voidVoucher } from '../../services/vouchers.ts';
import { onFailure } from '../../middleware/errors.ts';
import { done, idParam, refuse } from '../helpers.ts';

declare module 'express-session' {
  interface SessionData {
    /**
     * The codes of the batch just generated, sealed (docs/decisions.md, "Redeemable codes"): shown,
     * downloaded and printed from here until the manager dismisses them, generates another batch,
     * signs out or FRESH_CODES_MINUTES pass. Never stored anywhere else in plain form.
     */
    freshVouchers?: { orderId: number; batchId: number; sealed: string; until: number };
  }
}

/** How long freshly generated codes stay in the session for showing, downloading and printing. */
export const FRESH_CODES_MINUTES = 30;

interface FreshCodes {
  batchId: number;
  codes: string[];
  expiresAt: string;
  productName: string;
  policyName: string;
}

/** Redeemable codes of an order (User Portal): generate, list, void; the new batch's codes once. */
export function portalVouchersController(ctx: AppContext) {
  const secretBox = dataDirSecretBox(ctx.config.dataDir);
  const sealContext = (req: Request, orderId: number) => `vouchers:${req.user!.id}:${orderId}`;

  /** The codes just generated for this order in this session, or undefined (none, another order, or too old). */
  const freshCodes = (req: Request): FreshCodes | undefined => {
    const fresh = req.session.freshVouchers;
    if (!fresh || fresh.orderId !== req.order!.id) return undefined;
    if (fresh.until <= ctx.clock.now().getTime()) {
      delete req.session.freshVouchers;
      return undefined;
    }
    const plain = secretBox.open(fresh.sealed, sealContext(req, fresh.orderId));
    return plain ? (JSON.parse(plain) as FreshCodes) : undefined;
  };
  /** The fresh codes, or (none left to show) back to the list saying so: undefined then. */
  const freshOrBack = (req: Request, res: Response) => {
    const fresh = freshCodes(req);
    if (!fresh) refuse(req, res, res.locals.paths.portalOrderVouchers(req.order!.id), 'vouchers.fresh.gone');
    return fresh;
  };

  const listPage = async (req: Request, res: Response, status = 200, values: object = {}, errors: object = {}) => {
    const order = req.order!;
    const now = ctx.clock.now();
    const canIssue = req.permissions.has('issue_license');
    const batches = await vouchers.listBatches(ctx.db, order.id);
    const [codes, issuable, quotas] = await Promise.all([
      vouchers.listForBatches(
        ctx.db,
        batches.map((b) => b.id),
        now,
      ),
      canIssue ? issuableFor(ctx.db, req.user!) : Promise.resolve([]),
      req.user!.role === 'manager' ? managers.quotasOf(ctx.db, req.user!.id) : Promise.resolve([]),
    ]);
    res
      .status(status)
      .set('Cache-Control', 'no-store')
      .render('portal/vouchers/index', {
        title: req.t('vouchers.title'),
        order,
        batches: batches.map((b) => ({ ...b, vouchers: codes.filter((c) => c.batchId === b.id) })),
        fresh: freshCodes(req),
        issuable,
        quotas,
        values: { count: 10, days: 90, ...values },
        errors,
        can: req.permissions,
      });
  };

  const filename = (req: Request, fresh: FreshCodes) =>
    `order-${req.order!.orderRef.replace(/[^\w.-]/g, '_')}-codes-${fresh.batchId}`;

  return {
    index: (req: Request, res: Response) => listPage(req, res),

    async generate(req: Request, res: Response) {
      onFailure(res, {
        back: res.locals.paths.portalOrderVouchers(req.order!.id),
        rerender: (err) => listPage(req, res, 422, req.body, err.fieldErrors),
      });
      const form = formData(generateVouchersForm, req.body);
      const batch = await generateVouchers(ctx, req.actor, req.user!, req.order!.id, {
        policyId: form.policy_id,
        count: form.count,
        days: form.days,
      });
      const fresh: FreshCodes = {
        batchId: batch.batchId,
        codes: batch.codes,
        expiresAt: batch.expiresAt.toISOString(),
        productName: batch.productName,
        policyName: batch.policyName,
      };
      req.session.freshVouchers = {
        orderId: req.order!.id,
        batchId: batch.batchId,
        sealed: secretBox.seal(JSON.stringify(fresh), sealContext(req, req.order!.id)),
        until: ctx.clock.now().getTime() + FRESH_CODES_MINUTES * 60_000,
      };
      done(req, res, res.locals.paths.portalOrderVouchers(req.order!.id), 'counts.codesGenerated', {
        count: batch.codes.length,
      });
    },

    /** The new batch's codes as CSV (code, product, policy, expires). */
    csv(req: Request, res: Response) {
      const fresh = freshOrBack(req, res);
      if (!fresh) return;
      res.set({
        'Content-Type': 'text/csv; charset=utf-8',
        'Content-Disposition': `attachment; filename="${filename(req, fresh)}.csv"`,
        'Cache-Control': 'no-store',
      });
      res.send(
        csvLine(['code', 'product', 'policy', 'expires_at']) +
          fresh.codes.map((c) => csvLine([c, fresh.productName, fresh.policyName, fresh.expiresAt])).join(''),
      );
    },

    /** A printable page: each code with a QR code of the redeem page's address with the code filled in. */
    async print(req: Request, res: Response) {
      const fresh = freshOrBack(req, res);
      if (!fresh) return;
      const cards = await Promise.all(
        fresh.codes.map(async (code) => {
          const url = `${ctx.config.baseUrl}${res.locals.paths.redeem({ code })}`;
          return { code, url, qr: await qrCodeDataUrl(url) };
        }),
      );
      res.set('Cache-Control', 'no-store').render('portal/vouchers/print', {
        title: req.t('vouchers.print.title'),
        order: req.order!,
        fresh,
        cards,
      });
    },

    dismiss(req: Request, res: Response) {
      if (req.session.freshVouchers?.orderId === req.order!.id) delete req.session.freshVouchers;
      done(req, res, res.locals.paths.portalOrderVouchers(req.order!.id), 'vouchers.dismissed');
    },

    async void(req: Request, res: Response) {
      onFailure(res, { back: res.locals.paths.portalOrderVouchers(req.order!.id) });
      await voidVoucher(ctx, req.actor, req.order!.id, idParam(req, 'voucherId'));
      done(req, res, res.locals.paths.portalOrderVouchers(req.order!.id), 'vouchers.voided');
    },
  };
}
