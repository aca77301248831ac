import type { Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import { dataDirSecretBox } from '../crypto/secret-box.ts';
import { formData } from '../forms/parse.ts';
import { generateVouchersForm } from '../forms/vouchers.ts';
import type { FieldErrors } from '../forms/parse.ts';
import { csvLine } from '../lib/csv.ts';
import { qrCodeDataUrl } from '../lib/totp.ts';
import { onFailure } from '../middleware/errors.ts';
import { generateVouchers } from '../services/vouchers.ts';
import { done, refuse } from './helpers.ts';

declare module 'express-session' {
  interface SessionData {
    /**
     * The codes of the batch just generated, sealed (docs/decisions.md, "Redeemable codes"): shown,
     * downloaded and printed from here until the person dismisses them, generates another batch,
     * signs out or FRESH_CODES_MINUTES pass. Never stored anywhere else in plain form.
     */
    freshVouchers?: { orderId: number; batchId: number; sealed: string; until: number };
  }
}

/** How long freshly generated codes stay in the session for showing, downloading and printing. */
export const FRESH_CODES_MINUTES = 30;

export interface FreshCodes {
  batchId: number;
  codes: string[];
  expiresAt: string;
  productName: string;
  policyName: string;
}

/**
 * Generating a batch of codes for the order a route loaded (`req.order`) and showing its codes once,
 * the same way in the User Portal and the console: the one service (generateVouchers), the codes
 * sealed in the generating person's session, the CSV and the printable page with QR codes read from
 * there. `codesPage` is the page of the order's codes in the area (where they are shown and where
 * every action goes back to).
 */
export function freshCodesFlow(ctx: AppContext, codesPage: (res: Response, orderId: number) => string) {
  const secretBox = dataDirSecretBox(ctx.config.dataDir);
  const sealContext = (req: Request, orderId: number) => `vouchers:${req.user!.id}:${orderId}`;

  /** The codes just generated for this order in this session, or undefined (none, another order, or too old). */
  const read = (req: Request): FreshCodes | undefined => {
    const fresh = req.session.freshVouchers;
    if (!fresh || fresh.orderId !== req.order!.id) return undefined;
    if (fresh.until <= ctx.clock.now().getTime()) {
      delete req.session.freshVouchers;
      return undefined;
    }
    const plain = secretBox.open(fresh.sealed, sealContext(req, fresh.orderId));
    return plain ? (JSON.parse(plain) as FreshCodes) : undefined;
  };
  /** The fresh codes, or (none left to show) back to the codes page saying so: undefined then. */
  const readOrBack = (req: Request, res: Response) => {
    const fresh = read(req);
    if (!fresh) refuse(req, res, codesPage(res, req.order!.id), 'vouchers.fresh.gone');
    return fresh;
  };
  const filename = (req: Request, fresh: FreshCodes) =>
    `order-${req.order!.orderRef.replace(/[^\w.-]/g, '_')}-codes-${fresh.batchId}`;

  return {
    read,

    /** Generates a batch (the form's policy, count, days) as the signed-in person; a refused form is shown again by `rerender`. */
    async generate(
      req: Request,
      res: Response,
      rerender: (status: number, values: object, errors: FieldErrors) => Promise<void>,
    ) {
      const orderId = req.order!.id;
      onFailure(res, {
        back: codesPage(res, orderId),
        rerender: (err) => rerender(422, req.body, err.fieldErrors),
      });
      const form = formData(generateVouchersForm, req.body);
      const batch = await generateVouchers(ctx, req.actor, req.user!, orderId, {
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
        orderId,
        batchId: batch.batchId,
        sealed: secretBox.seal(JSON.stringify(fresh), sealContext(req, orderId)),
        until: ctx.clock.now().getTime() + FRESH_CODES_MINUTES * 60_000,
      };
      done(req, res, codesPage(res, orderId), 'counts.codesGenerated', { count: batch.codes.length });
    },

    /** The new batch's codes as CSV (code, product, policy, expires). */
    csv(req: Request, res: Response) {
      const fresh = readOrBack(req, res);
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
      const fresh = readOrBack(req, res);
      if (!fresh) return;
      const cards = await Promise.all(
        fresh.codes.map(async (code) => {
          const url = `${ctx.config.baseUrl}${res.locals.paths.redeem({ code })}`;
          return { code, url, qr: await qrCodeDataUrl(url) };
        }),
      );
      res.set('Cache-Control', 'no-store').render('vouchers/print', {
        title: req.t('vouchers.print.title'),
        order: req.order!,
        back: codesPage(res, req.order!.id),
        fresh,
        cards,
      });
    },

    dismiss(req: Request, res: Response) {
      if (req.session.freshVouchers?.orderId === req.order!.id) delete req.session.freshVouchers;
      done(req, res, codesPage(res, req.order!.id), 'vouchers.dismissed');
    },
  };
}
