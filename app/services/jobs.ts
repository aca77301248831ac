import { AppError, notFound } from '../lib/errors.ts';
import * as jobs from '../models/jobs.ts';
import { auditedChange } from './changes.ts';
import type { Actor, ServiceDeps } from './context.ts';

/** Console → Jobs: an administrator runs a failed job again, or cancels one still queued. Both audited. */

export async function runAgain(deps: ServiceDeps, actor: Actor, id: number): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const job = (await jobs.findById(trx, id)) ?? null;
    if (!job) throw notFound();
    if (!(await jobs.requeueFailed(trx, id, now))) throw AppError.conflict('admin.jobs.notFailed');
    return {
      result: undefined,
      audit: {
        action: 'job.run_again',
        objectType: 'job',
        objectId: id,
        before: { state: job.state, attempts: job.attempts, lastError: job.lastError },
        after: { state: 'queued', kind: job.kind },
      },
    };
  });
}

export async function cancel(deps: ServiceDeps, actor: Actor, id: number): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const job = (await jobs.findById(trx, id)) ?? null;
    if (!job) throw notFound();
    if (!(await jobs.cancelQueued(trx, id, now, `cancelled by ${actor.label ?? 'an administrator'}`)))
      throw AppError.conflict('admin.jobs.notQueued');
    return {
      result: undefined,
      audit: {
        action: 'job.cancelled',
        objectType: 'job',
        objectId: id,
        before: { state: job.state, attempts: job.attempts },
        after: { state: 'failed', kind: job.kind },
      },
    };
  });
}
