import type { Request, Response } from 'express';
import QRCode from 'qrcode';
import type { AppContext } from '../app.ts';
import * as tokens from '../models/tokens.ts';
import * as devices from '../models/devices.ts';
import { RateLimiter } from '../lib/rate-limiter.ts';
import { hashToken, randomToken } from '../lib/tokens.ts';
import { normaliseLicenseKey } from '../lib/license-keys.ts';
import { notFound } from '../lib/errors.ts';
import { rateLimited } from '../services/auth.ts';
import { ActivationError } from '../services/activation.ts';
import { TypoError, activateByCode, deactivateByCode, parseActivationInput, parseDeactivationInput } from '../services/airgap.ts';

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
  const deps = { ...ctx, defaultLanguage: ctx.config.defaultLanguage };

  const page = (req: Request, res: Response, status: number, tab: 'activate' | 'deactivate', values: Record<string, string>, errors: Record<string, string> = {}, refusal: string | null = null, vars: Record<string, unknown> = {}) =>
    res.status(status).set('Cache-Control', 'no-store').render('airgap/index', { title: req.t('airgap.title'), tab, values, errors, refusal, vars });

  /** Counted only for well-formed codes: a typo never costs an attempt. */
  const count = async (req: Request, licenseKey: string) => {
    const client = req.ip ?? 'unknown';
    const license = normaliseLicenseKey(licenseKey);
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

  const qr = (content: string) => QRCode.toDataURL(content, { errorCorrectionLevel: 'M', margin: 2, width: 320 });

  const downloadToken = async (code: string, deviceId: number) => {
    const token = randomToken();
    const now = ctx.clock.now();
    await tokens.insertOneTimeCode(ctx.db, 'airgap_download', hashToken(token), new Date(now.getTime() + DOWNLOAD_MINUTES * 60_000), now, { code, deviceId });
    return token;
  };

  /** Runs one attempt; typos and refusals go back to the form with the reason. */
  const attemptWith = async (req: Request, res: Response, tab: 'activate' | 'deactivate', values: Record<string, string>, field: string, run: () => Promise<void>) => {
    try {
      await run();
    } catch (err) {
      if (err instanceof TypoError) return page(req, res, 422, tab, values, { [field]: err.group ? 'airgap.typoGroup' : 'airgap.typo' }, null, { group: err.group });
      if (err instanceof ActivationError) return page(req, res, err.status === 404 ? 422 : err.status, tab, values, {}, err.code);
      throw err;
    }
  };

  return {
    show(req: Request, res: Response) {
      const tab = req.query.tab === 'deactivate' ? 'deactivate' : 'activate';
      page(req, res, 200, tab, { request_code: text(req.query.code, 80) });
    },

    async activate(req: Request, res: Response) {
      const values = { license_key: text(req.body?.license_key, 64).trim(), request_code: text(req.body?.request_code, 80).trim() };
      const errors: Record<string, string> = {};
      if (!values.license_key) errors.license_key = 'validation.required';
      if (!values.request_code) errors.request_code = 'validation.required';
      if (Object.keys(errors).length) return page(req, res, 422, 'activate', values, errors);
      await attemptWith(req, res, 'activate', values, 'request_code', async () => {
        parseActivationInput(values.request_code);
        await count(req, values.license_key);
        const result = await activateByCode(deps, req.actor, values.license_key, values.request_code);
        const token = await downloadToken(result.code, result.deviceId);
        res.set('Cache-Control', 'no-store').render('airgap/activated', { title: req.t('airgap.activated.title'), result, qr: await qr(result.code), token });
      });
    },

    async deactivate(req: Request, res: Response) {
      const values = { license_key: text(req.body?.license_key, 64).trim(), deactivation_code: text(req.body?.deactivation_code, 80).trim() };
      const errors: Record<string, string> = {};
      if (!values.license_key) errors.license_key = 'validation.required';
      if (!values.deactivation_code) errors.deactivation_code = 'validation.required';
      if (Object.keys(errors).length) return page(req, res, 422, 'deactivate', values, errors);
      await attemptWith(req, res, 'deactivate', values, 'deactivation_code', async () => {
        parseDeactivationInput(values.deactivation_code);
        await count(req, values.license_key);
        const result = await deactivateByCode(deps, req.actor, values.license_key, values.deactivation_code);
        res.set('Cache-Control', 'no-store').render('airgap/deactivated', { title: req.t('airgap.deactivated.title'), result, qr: await qr(result.confirmation) });
      });
    },

    /** The activation code as a small file, for sites that allow files in; only while its activation lasts. */
    async download(req: Request, res: Response) {
      const code = await tokens.findUsableOneTimeCode(ctx.db, 'airgap_download', hashToken(String(req.params.token ?? '')), ctx.clock.now());
      if (!code) throw notFound();
      const data = code.data as { code: string; deviceId: number };
      const device = await devices.findById(ctx.db, data.deviceId);
      if (!device?.active) return page(req, res, 410, 'activate', {}, {}, 'activation_inactive');
      res.set({ 'Content-Type': 'text/plain; charset=utf-8', 'Content-Disposition': `attachment; filename="activation-code-${device.id}.txt"`, 'Cache-Control': 'no-store' }).send(`${data.code}\n`);
    },
  };
}
