import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import { pageCount, pageFrom } from '../../lib/pagination.ts';
import * as jobs from '../../models/jobs.ts';
import * as service from '../../services/jobs.ts';
import { idParam, listQuery, onPage } from '../helpers.ts';

/** Console → Jobs: the job queue's counts per state, its jobs by state and kind, run again / cancel. */
export function adminJobsController(ctx: AppContext) {
  /** The filter as asked; an unknown state or kind filters on nothing rather than failing. */
  const filterOf = (query: Record<string, string>): jobs.JobFilter => ({
    state: (jobs.JOB_STATES as readonly string[]).includes(query.state ?? '')
      ? (query.state as jobs.JobState)
      : undefined,
    kind: query.kind && /^[\w.:-]{1,64}$/.test(query.kind) ? query.kind : undefined,
  });

  return {
    async index(req: Request, res: Response) {
      const query = listQuery(req, ['state', 'kind']);
      const filter = filterOf(query);
      const { page, limit, offset } = pageFrom(req.query);
      const [list, total, counts, kinds] = await Promise.all([
        jobs.list(ctx.db, filter, limit, offset),
        jobs.count(ctx.db, filter),
        jobs.countsByState(ctx.db),
        jobs.kinds(ctx.db),
      ]);
      res.render('admin/jobs', {
        title: req.t('admin.jobs.title'),
        jobs: list,
        counts,
        kinds,
        states: jobs.JOB_STATES,
        query: { state: filter.state ?? '', kind: filter.kind ?? '' },
        page,
        pages: pageCount(total),
        total,
      });
    },

    async runAgain(req: Request, res: Response) {
      const saved = onPage(req, res, res.locals.paths.adminJobs({ state: 'failed' }));
      await service.runAgain(ctx, req.actor, idParam(req));
      saved('admin.jobs.queuedAgain');
    },

    async cancel(req: Request, res: Response) {
      const saved = onPage(req, res, res.locals.paths.adminJobs({ state: 'queued' }));
      await service.cancel(ctx, req.actor, idParam(req));
      saved('admin.jobs.cancelled');
    },
  };
}
