import type { AppContext } from './app.ts';
import { FailJob, type JobHandler, RetryJobAt } from './lib/queue.ts';
import { sendQueuedMail } from './lib/mailer.ts';
import { publishExpiringLicenses } from './services/events.ts';
import { checkDirectoryAccounts, DIRECTORY_CHECK_EVERY_MS, directoryInUse } from './services/ldap.ts';
import { runNotifications } from './services/notifications.ts';
import { snapshotPreviousDay } from './services/usage.ts';
import { deliverWebhook, purgeOldEvents, webhookDepsOf } from './services/webhooks.ts';

/**
 * THE registry of job kinds (app/lib/queue.ts runs them): one line per kind, like the route table.
 * A payload carries ids, never secrets in clear; the handler loads the rest.
 */
export const JOBS: Record<string, JobHandler> = {
  'mail.send': sendQueuedMail, // one recorded mail over SMTP (payload: outboxId)
  'webhook.deliver': (ctx, job) => deliverWebhook(webhookDepsOf(ctx), job), // one attempt of one delivery, retried on its own schedule (payload: deliveryId)
  'webhook.expiring': async (ctx) => void (await publishExpiringLicenses(ctx.db, ctx.clock)), // license.expiring, once per license, window and expiry date
  'webhook.purge': async (ctx) => void (await purgeOldEvents(ctx)), // events, deliveries and their log after 30 days
  'notifications.run': async (ctx) => void (await runNotifications(ctx)), // the checks, then the digests due (docs/notifications.md)
  'usage.snapshot': async (ctx, job) => void (await snapshotPreviousDay(ctx.db, ctx.clock, job.payload)), // one usage row per license for the day that ended (services/usage.ts)
  'ldap.check': async (ctx) => void (await checkDirectoryAccounts(ctx)), // staff who left the directory's admin group are disabled, their sessions ended (services/ldap.ts)
};

/**
 * Jobs the runners enqueue once per period across all processes (payload: { periodStart }); one with
 * `when` only in periods where it answers true (so an installation without LDAP keeps no job rows of it).
 */
export const PERIODIC_JOBS: { kind: string; everyMs: number; when?: (ctx: AppContext) => Promise<boolean> }[] = [
  { kind: 'webhook.expiring', everyMs: 86_400_000 },
  { kind: 'webhook.purge', everyMs: 86_400_000 },
  { kind: 'notifications.run', everyMs: 3_600_000 },
  { kind: 'usage.snapshot', everyMs: 86_400_000 },
  { kind: 'ldap.check', everyMs: DIRECTORY_CHECK_EVERY_MS, when: directoryInUse },
];

/**
 * Kinds that exist only when NODE_ENV=test (the queue tests drive the queue with them):
 * `test.record` writes one row per run into `test_job_runs` (a table the test makes itself), then
 * fails as its payload asks while `attempt <= failUntil`: `error` (an ordinary error: backoff),
 * `retryAt` (RetryJobAt the payload's `at`) or `fail` (FailJob).
 */
const TEST_JOBS: Record<string, JobHandler> = {
  'test.record': async (ctx, job) => {
    await ctx.db('test_job_runs').insert({ job_id: job.id, attempt: job.attempt, runner: String(process.pid) });
    const { failUntil = 0, mode = 'error', at } = job.payload as { failUntil?: number; mode?: string; at?: string };
    if (job.attempt > failUntil) return;
    if (mode === 'retryAt') throw new RetryJobAt(new Date(String(at)), `test: retry at ${at}`);
    if (mode === 'fail') throw new FailJob('test: failed for good');
    throw new Error(`test: attempt ${job.attempt} failed`);
  },
};

export function handlerFor(ctx: AppContext, kind: string): JobHandler | undefined {
  if (Object.hasOwn(JOBS, kind)) return JOBS[kind];
  return ctx.config.env === 'test' && Object.hasOwn(TEST_JOBS, kind) ? TEST_JOBS[kind] : undefined;
}
