import fs from 'node:fs/promises';
import type { NextFunction, Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import * as tokens from '../models/tokens.ts';
import { RateLimiter, clientOf } from '../lib/rate-limiter.ts';
import { hashToken, randomToken } from '../lib/tokens.ts';
import { notFound } from '../lib/errors.ts';
import { refusedUnread } from '../middleware/uploads.ts';
import { onFailure, type FailurePage } from '../middleware/errors.ts';
import { formData } from '../forms/parse.ts';
import { offlineUploadForm } from '../forms/offline.ts';
import { rateLimited } from '../services/auth.ts';
import { ReportError, processUsageReport } from '../services/usage-reports.ts';
import { recordRefusal } from '../services/refusals.ts';
import {
  ArtifactError,
  MAX_REQUEST_BYTES,
  isZipFile,
  outcomeFile,
  processRequest,
  processZip,
  resultZip,
  type Outcome,
} from '../services/offline.ts';

/** Requests per client address on the public offline pages (uploads and downloads). */
export const OFFLINE_REQUESTS_PER_CLIENT = { limit: 120, windowMs: 15 * 60_000 };
const DOWNLOAD_MINUTES = 30;

type DownloadItem =
  | { name: string; kind: 'activation' | 'deactivation'; deviceId: number; nonce?: string }
  /** The renewed license answered with a usage report (kept with the link: a refresh file is issued once). */
  | { name: string; kind: 'refresh'; deviceId: number; text: string; filename: string };

/** The Offline Activation Portal: public pages, the file is the credential, rate-limited per client. */
export function offlineController(ctx: AppContext) {
  const limit = async (req: Request) => {
    const state = await ctx.limiter.hit(RateLimiter.key('offline', clientOf(req.ip)), OFFLINE_REQUESTS_PER_CLIENT);
    if (state.hits > OFFLINE_REQUESTS_PER_CLIENT.limit) throw rateLimited(state.retryAfterSeconds);
  };

  /** A link that fetches the answer files again for a while (they are regenerated, not stored). */
  const downloadToken = async (items: DownloadItem[]) => {
    const token = randomToken();
    const now = ctx.clock.now();
    await tokens.insertOneTimeCode(
      ctx.db,
      'offline_download',
      hashToken(token),
      new Date(now.getTime() + DOWNLOAD_MINUTES * 60_000),
      now,
      { items },
    );
    return token;
  };

  const uploadPage = (
    req: Request,
    res: Response,
    status = 200,
    error: { code: string; expected?: number | null; form?: 'report' } | null = null,
    values: Record<string, string> = {},
  ) =>
    res
      .status(status)
      .set('Cache-Control', 'no-store')
      .render('offline/index', { title: req.t('offline.title'), error, values, maxKb: MAX_REQUEST_BYTES / 1024 });

  /** A refused file or activation goes back to the upload page, which says why and what to do next. */
  const refusedPage = (
    req: Request,
    res: Response,
    values: Record<string, string>,
    unknownStatus: number,
  ): FailurePage => ({
    rerenderKinds: ['refusal'],
    rerender: (err) =>
      uploadPage(req, res, err.status === 404 ? unknownStatus : err.status, { code: err.code }, values),
  });

  return {
    show: (req: Request, res: Response) => uploadPage(req, res),

    /** The per-client limit as the first step of an upload: a client over it is refused before a byte of its body is read. */
    async limitPerClient(req: Request, res: Response, next: NextFunction) {
      await limit(req).catch((err: unknown) => {
        throw refusedUnread(res, err);
      });
      next();
    },

    /** After limitPerClient, a slot and streamToDisk (routes.ts): the file, if any, is on disk (req.upload). */
    async upload(req: Request, res: Response) {
      const file = req.upload?.size ? req.upload : undefined;
      const { pasted, email, credentials } = formData(offlineUploadForm, req.body ?? {});
      onFailure(res, refusedPage(req, res, { request: '', email }, 422));
      if (!file && !pasted.trim()) throw new ArtifactError('nothing', 422);
      if (file && (await isZipFile(file.path))) {
        const rows = await processZip(ctx, req.actor, file.path);
        const ok = rows
          .filter((r) => r.outcome)
          .map((r) => ({
            name: r.name,
            kind: r.outcome!.kind,
            deviceId: r.outcome!.deviceId,
            nonce: r.outcome!.kind === 'deactivation' ? r.outcome!.nonce : undefined,
          }));
        const token = ok.length ? await downloadToken(ok) : null;
        return res
          .set('Cache-Control', 'no-store')
          .render('offline/bulk', { title: req.t('offline.bulk.title'), rows, token });
      }
      if (file && file.size > MAX_REQUEST_BYTES) throw new ArtifactError('too_large', 413);
      const text = file ? await fs.readFile(file.path, 'utf8') : pasted;
      if (Buffer.byteLength(text) > MAX_REQUEST_BYTES) throw new ArtifactError('too_large', 413);
      const outcome: Outcome = await processRequest(ctx, req.actor, text, credentials);
      const token = await downloadToken([
        {
          name: 'request',
          kind: outcome.kind,
          deviceId: outcome.deviceId,
          nonce: outcome.kind === 'deactivation' ? outcome.nonce : undefined,
        },
      ]);
      res
        .set('Cache-Control', 'no-store')
        .render(outcome.kind === 'activation' ? 'offline/activated' : 'offline/deactivated', {
          title: req.t(outcome.kind === 'activation' ? 'offline.activated.title' : 'offline.deactivated.title'),
          outcome,
          token,
        });
    },

    /** A report over the upload limit, refused unread by streamToDisk (routes.ts): audited like every refused report, within the per-client allowance. */
    reportTooLarge: (req: Request) =>
      recordRefusal(
        ctx,
        req.actor,
        { action: 'usage_report.refused', channel: 'offline', requestHash: null },
        'too_large',
      ),

    /**
     * A usage report (file or pasted, the same limits and throttles as a request): accepted once, and
     * answered with the renewed license when the license changed since the device's last file.
     */
    async report(req: Request, res: Response) {
      const file = req.upload?.size ? req.upload : undefined;
      const pasted = typeof req.body?.report === 'string' ? req.body.report : '';
      onFailure(res, {
        rerenderKinds: ['refusal'],
        rerender: (err) =>
          uploadPage(req, res, err.status === 404 ? 422 : err.status, {
            code: err.code,
            expected: err instanceof ReportError ? err.expected : null,
            form: 'report',
          }),
      });
      if (!file && !pasted.trim()) throw new ArtifactError('nothing', 422);
      if ((file?.size ?? 0) > MAX_REQUEST_BYTES || Buffer.byteLength(pasted) > MAX_REQUEST_BYTES)
        throw new ArtifactError('too_large', 413);
      const text = file ? await fs.readFile(file.path, 'utf8') : pasted;
      const outcome = await processUsageReport(ctx, req.actor, text);
      const token = outcome.renewal
        ? await downloadToken([
            {
              name: 'renewal',
              kind: 'refresh',
              deviceId: outcome.deviceId,
              text: outcome.renewal.text,
              filename: outcome.renewal.filename,
            },
          ])
        : null;
      res
        .set('Cache-Control', 'no-store')
        .render('offline/reported', { title: req.t('trueup.reported.title'), outcome, token });
    },

    /** The license file (or receipt, or ZIP of them) behind a download link: attachment, never cached. */
    async download(req: Request, res: Response) {
      await limit(req);
      const code = await tokens.findUsableOneTimeCode(
        ctx.db,
        'offline_download',
        hashToken(String(req.params.token ?? '')),
        ctx.clock.now(),
      );
      if (!code) throw notFound();
      const items = (code.data as { items: DownloadItem[] }).items;
      res.set('Cache-Control', 'no-store');
      // An activation that ended after the page was shown (deactivated, reset, blacklisted) has no license file any more: the page says why.
      onFailure(res, refusedPage(req, res, {}, 410));
      if (items.length === 1) {
        const item = items[0]!;
        const file = item.kind === 'refresh' ? item : await outcomeFile(ctx, item);
        return res
          .set({
            'Content-Type': 'application/x-portico-license; charset=utf-8',
            'Content-Disposition': `attachment; filename="${file.filename}"`,
          })
          .send(file.text);
      }
      res
        .set({
          'Content-Type': 'application/zip',
          'Content-Disposition': 'attachment; filename="portico-licenses.zip"',
        })
        .send(
          await resultZip(
            ctx,
            items.filter((i) => i.kind !== 'refresh'),
          ),
        );
    },
  };
}
