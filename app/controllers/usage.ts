import type { Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import { writeCsv } from '../lib/csv.ts';
import * as consumptionModel from '../models/consumption.ts';
import * as usageModel from '../models/usage.ts';
import * as service from '../services/licenses.ts';
import { CSV_HEADER, csvRow, historyOf, rangeOf, RANGES, IDLE_DAYS } from '../services/usage.ts';
import { onFailure } from '../middleware/errors.ts';
import { done } from './helpers.ts';

/**
 * The usage pages (docs/user-portal.md, docs/console.md): a license's, an order's (the User Portal
 * within the manager's order scope, the console for every order) and the console's overview of
 * everything. Each page shows the daily snapshots (services/usage.ts) over 30, 90 or 365 days as
 * charts (public/js/usage.js draws them with chart.js from the page's JSON data block) and as a
 * table with the same figures, the devices not seen for N days with a "release" action for whoever
 * may reset devices, and a CSV of the same rows. The route lines load the license or order through
 * the area's scope (404 outside it) and check the permission of the release action.
 */

type Area = 'admin' | 'portal';
type Subject = { kind: 'license' | 'order' | 'all'; id: number | null; name: string };

const fileSafe = (s: string) => s.replace(/[^\w.-]/g, '_').slice(0, 60);

export function usageController(ctx: AppContext, area: Area) {
  const now = () => ctx.clock.now();

  const subjectOf = (req: Request): Subject => {
    if (req.license)
      return {
        kind: 'license',
        id: req.license.id,
        name: req.license.licenseKey ?? req.t('admin.licenses.userBased', { id: req.license.id }),
      };
    if (req.order) return { kind: 'order', id: req.order.id, name: req.order.orderRef };
    return { kind: 'all', id: null, name: req.t('usage.everything') };
  };

  const historyFor = (s: Subject, days: number) =>
    historyOf(ctx.db, ctx.clock, s.kind === 'license' ? { licenseId: s.id! } : { orderId: s.id }, days);

  /** The licenses whose idle devices the page lists. */
  const licenseIdsOf = (s: Subject) =>
    s.kind === 'license'
      ? [s.id!]
      : s.kind === 'order'
        ? ctx.db('licenses').where({ order_id: s.id! }).select('id')
        : ctx.db('licenses').select('id');

  /** Whether the signed-in account may release (reset) a device here: the console's admins, a portal manager with reset_device on the order. */
  const mayRelease = (req: Request) => area === 'admin' || req.permissions?.has('reset_device') === true;

  async function page(req: Request, res: Response) {
    const subject = subjectOf(req);
    const { days, idle } = rangeOf(req.query);
    const history = await historyFor(subject, days);
    const idleDevices = await usageModel.idleDevices(
      ctx.db,
      licenseIdsOf(subject),
      new Date(now().getTime() - idle * usageModel.DAY_MS),
    );
    // A license's consumption features, as its license page shows them (views/partials/license/consumption.ejs).
    const consumption = subject.kind === 'license' ? await consumptionModel.usageOf(ctx.db, subject.id!, now()) : [];
    const paths = res.locals.paths.usage(area);
    const urlOf = (query: Record<string, number>) =>
      subject.kind === 'license'
        ? paths.license(subject.id!, query)
        : subject.kind === 'order'
          ? paths.order(subject.id!, query)
          : paths.overview(query);
    const csvUrl =
      subject.kind === 'license'
        ? paths.licenseCsv(subject.id!, { days })
        : subject.kind === 'order'
          ? paths.orderCsv(subject.id!, { days })
          : paths.overviewCsv({ days });
    const reasonTotals: Record<string, number> = {};
    for (const d of history)
      for (const [code, n] of Object.entries(d.refusalReasons)) reasonTotals[code] = (reasonTotals[code] ?? 0) + n;
    const chart = {
      labels: history.map((d) => d.day),
      series: {
        seatsUsed: history.map((d) => d.seatsUsed),
        seatsBought: history.map((d) => d.seatsBought),
        floatingPeak: history.map((d) => d.floatingPeak),
        refusals: history.map((d) => d.refusals),
      },
      text: {
        seatsUsed: req.t('usage.columns.seatsUsed'),
        seatsBought: req.t('usage.columns.seatsBought'),
        floatingPeak: req.t('usage.columns.floatingPeak'),
        refusals: req.t('usage.columns.refusals'),
      },
    };
    const backUrl =
      subject.kind === 'license'
        ? area === 'admin'
          ? res.locals.paths.adminLicense(subject.id!)
          : res.locals.paths.portalLicense(subject.id!)
        : subject.kind === 'order'
          ? area === 'admin'
            ? res.locals.paths.adminOrder(subject.id!)
            : res.locals.paths.portalOrder(subject.id!)
          : null;
    res.render('usage/show', {
      title: req.t('usage.title', { name: subject.name }),
      area,
      subject,
      days,
      idle,
      ranges: RANGES.map((d) => ({ days: d, url: urlOf({ days: d, idle }), current: d === days })),
      idleChoices: IDLE_DAYS.map((d) => ({ days: d, url: urlOf({ days, idle: d }), current: d === idle })),
      history,
      rows: [...history].reverse(),
      reasonTotals: Object.entries(reasonTotals).sort((a, b) => b[1] - a[1]),
      chartJson: JSON.stringify(chart),
      idleDevices,
      trueup: { consumption },
      mayRelease: mayRelease(req),
      releaseUrl: (licenseId: number, deviceId: number) => paths.release(licenseId, deviceId),
      csvUrl,
      backUrl,
      now: now(),
    });
  }

  async function csv(req: Request, res: Response) {
    const subject = subjectOf(req);
    const { days } = rangeOf(req.query);
    const history = await historyFor(subject, days);
    const name = subject.kind === 'all' ? 'all' : `${subject.kind}-${fileSafe(subject.name)}`;
    res.set({
      'Content-Type': 'text/csv; charset=utf-8',
      'Content-Disposition': `attachment; filename="usage-${name}-${days}d.csv"`,
      'Cache-Control': 'no-store',
    });
    await writeCsv(
      res,
      CSV_HEADER,
      (async function* () {
        yield history.map(csvRow);
      })(),
    );
    res.end();
  }

  return {
    page,
    csv,

    /** Releases an idle device: the device reset (the same service, permission and audit event), back to the usage page. */
    async release(req: Request, res: Response) {
      const back = res.locals.paths.usage(area).license(req.license!.id);
      onFailure(res, { back });
      await service.resetDevice(ctx, req.actor, req.license!.id, req.device!.id);
      done(req, res, back, 'usage.released', { machine: req.device!.hardwareId });
    },
  };
}
