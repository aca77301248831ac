import type { Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import * as tokens from '../models/tokens.ts';
import * as devices from '../models/devices.ts';
import { RateLimiter, clientOf } from '../lib/rate-limiter.ts';
import { hashToken, randomToken } from '../lib/tokens.ts';
import { normaliseLicenseKey } from '../lib/license-keys.ts';
import { notFound } from '../lib/errors.ts';
import { formData } from '../forms/parse.ts';
import { airgapActivateForm, airgapDeactivateForm } from '../forms/airgap.ts';
import { onFailure, type FailurePage } from '../middleware/errors.ts';
import { rateLimited } from '../services/auth.ts';
import { canonicalVoucherCode } from '../lib/voucher-codes.ts';
import {
  activateByCode,
  deactivateByCode,
  parseActivationInput,
  parseDeactivationInput,
  redeemByCode,
} from '../services/airgap.ts';

/**
 * Well-formed attempts: per client address (all keys), per license key and client address (what one
 * guesser runs into), and per license key from all clients together — a ceiling a single address can
 * never reach (10 per window each, so it takes 100 addresses at once) that still caps a distributed
 * guess of deactivation codes. A key holder elsewhere cannot block a site: their attempts count
 * against their own address. docs/decisions.md (Hardening) has the reasoning.
 */
export const AIRGAP_PER_CLIENT = { limit: 60, windowMs: 15 * 60_000 };
export const AIRGAP_PER_LICENSE_AND_CLIENT = { limit: 10, windowMs: 15 * 60_000 };
export const AIRGAP_PER_LICENSE = { limit: 1000, windowMs: 15 * 60_000 };
const DOWNLOAD_MINUTES = 30;

const text = (v: unknown, max: number) => (typeof v === 'string' ? v.slice(0, max) : '');

/** The Air-Gapped Activation Portal: license key + typed codes in, codes (and QR codes) out. */
export function airgapController(ctx: AppContext) {
  type Tab = 'activate' | 'deactivate';
  interface Page {
    status?: number;
    tab: Tab;
    values: Record<string, string>;
    errors?: Record<string, string>;
    refusal?: string | null;
    vars?: Record<string, unknown>;
  }
  const page = (req: Request, res: Response, p: Page) =>
    res
      .status(p.status ?? 200)
      .set('Cache-Control', 'no-store')
      .render('airgap/index', {
        title: req.t('airgap.title'),
        tab: p.tab,
        values: p.values,
        errors: p.errors ?? {},
        refusal: p.refusal ?? null,
        vars: p.vars ?? {},
      });

  /** Typos and missing fields (validation) and refusals go back to the form with the reason. */
  const failure = (req: Request, res: Response, tab: Tab, values: Record<string, string>): FailurePage => ({
    rerenderKinds: ['validation', 'refusal'],
    rerender: (err) =>
      page(
        req,
        res,
        err.kind === 'validation'
          ? { status: 422, tab, values, errors: err.fieldErrors, vars: err.vars }
          : { status: err.status === 404 ? 422 : err.status, tab, values, refusal: err.code },
      ),
  });

  /**
   * Counted only for well-formed codes: a typo never costs an attempt. `subject` is what the key
   * limits are per: the license key, or a redeemable code (which has its own per-client allowance too).
   */
  const count = async (req: Request, subject: { licenseKey: string } | { voucher: string }) => {
    const client = clientOf(req.ip);
    const license = 'voucher' in subject ? `voucher:${subject.voucher}` : normaliseLicenseKey(subject.licenseKey);
    // In this order: an address over its own limits stops before it adds to the key's ceiling.
    for (const [key, rule] of [
      [RateLimiter.key('airgap-client', client), AIRGAP_PER_CLIENT],
      [RateLimiter.key('airgap-license-client', license, client), AIRGAP_PER_LICENSE_AND_CLIENT],
      [RateLimiter.key('airgap-license', license), AIRGAP_PER_LICENSE],
    ] as const) {
      const state = await ctx.limiter.hit(key, rule);
      if (state.hits > rule.limit) throw rateLimited(state.retryAfterSeconds);
    }
  };

  // qrcode loads with the first code shown, not at start-up.
  const qr = async (content: string) =>
    (await import('qrcode')).default.toDataURL(content, { errorCorrectionLevel: 'M', margin: 2, width: 320 });

  const downloadToken = async (code: string, deviceId: number) => {
    const token = randomToken();
    const now = ctx.clock.now();
    await tokens.insertOneTimeCode(
      ctx.db,
      'airgap_download',
      hashToken(token),
      new Date(now.getTime() + DOWNLOAD_MINUTES * 60_000),
      now,
      { code, deviceId },
    );
    return token;
  };

  return {
    show(req: Request, res: Response) {
      const tab = req.query.tab === 'deactivate' ? 'deactivate' : 'activate';
      page(req, res, { tab, values: { request_code: text(req.query.code, 80) } });
    },

    async activate(req: Request, res: Response) {
      onFailure(
        res,
        failure(req, res, 'activate', {
          license_key: text(req.body?.license_key, 64).trim(),
          request_code: text(req.body?.request_code, 80).trim(),
        }),
      );
      const form = formData(airgapActivateForm, req.body);
      parseActivationInput(form.request_code);
      // One field: a redeemable code (20 symbols) or a license key (28), told apart by their form.
      const voucher = canonicalVoucherCode(form.license_key);
      await count(req, voucher ? { voucher } : { licenseKey: form.license_key });
      const result = voucher
        ? await redeemByCode(ctx, req.actor, voucher, form.request_code)
        : await activateByCode(ctx, req.actor, form.license_key, form.request_code);
      const token = await downloadToken(result.code, result.deviceId);
      res.set('Cache-Control', 'no-store').render('airgap/activated', {
        title: req.t('airgap.activated.title'),
        result,
        redeemed: voucher !== null,
        qr: await qr(result.code),
        token,
      });
    },

    async deactivate(req: Request, res: Response) {
      onFailure(
        res,
        failure(req, res, 'deactivate', {
          license_key: text(req.body?.license_key, 64).trim(),
          deactivation_code: text(req.body?.deactivation_code, 80).trim(),
        }),
      );
      const form = formData(airgapDeactivateForm, req.body);
      parseDeactivationInput(form.deactivation_code);
      await count(req, { licenseKey: form.license_key });
      const result = await deactivateByCode(ctx, req.actor, form.license_key, form.deactivation_code);
      res.set('Cache-Control', 'no-store').render('airgap/deactivated', {
        title: req.t('airgap.deactivated.title'),
        result,
        qr: await qr(result.confirmation),
      });
    },

    /** The activation code as a small file, for sites that allow files in; only while its activation lasts. */
    async download(req: Request, res: Response) {
      const code = await tokens.findUsableOneTimeCode(
        ctx.db,
        'airgap_download',
        hashToken(String(req.params.token ?? '')),
        ctx.clock.now(),
      );
      if (!code) throw notFound();
      const data = code.data as { code: string; deviceId: number };
      const device = await devices.findById(ctx.db, data.deviceId);
      if (!device?.active)
        return page(req, res, { status: 410, tab: 'activate', values: {}, refusal: 'activation_inactive' });
      res
        .set({
          'Content-Type': 'text/plain; charset=utf-8',
          'Content-Disposition': `attachment; filename="activation-code-${device.id}.txt"`,
          'Cache-Control': 'no-store',
        })
        .send(`${data.code}\n`);
    },
  };
}
