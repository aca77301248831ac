import { setTimeout as sleep } from 'node:timers/promises';
import { isSqlite } from '../../db/knexfile.ts';
import * as auditEvents from '../models/audit-events.ts';
import type { Settings } from '../models/settings.ts';
import { recordAudit } from './audit.ts';
import { systemActor, type ServiceDeps } from './context.ts';

/**
 * Audit retention (console → Settings, "Keep audit events for"): deletes the events older than the
 * setting in batches of up to `batch`, each its own short statements with a pause between them, so
 * that activations and their own audit events go on meanwhile; several processes may run it at once
 * (each batch deletes only what is still there). The purge records itself as `audit.purged`.
 *
 * On SQLite a batch's DELETE holds the database's one write lock while it runs, and every activation
 * and check that writes waits for it: on a log of millions of events 1,000 rows took ~200 ms and the
 * online check's p99 quadrupled (docs/performance.md, "Data at scale"). So there the batch halves
 * while a batch takes longer than `batchMs` and grows back (up to `batch`) while it is quick, and
 * each pause lasts at least three times as long as the batch before it: the purge keeps the lock for
 * short spells and for at most a quarter of the time (with equal pauses the check's p99 still tripled). MySQL/MariaDB lock only the rows deleted, old events nobody
 * writes: batches of `batch` (shrinking them there only made the purge 14 times slower).
 */
export async function purgeOldAuditEvents(
  deps: ServiceDeps & { settings: () => Promise<Settings> },
  options: { batch?: number; pauseMs?: number; batchMs?: number } = {},
): Promise<number> {
  const { batch = 1000, pauseMs = 20, batchMs = 25 } = options;
  const days = (await deps.settings()).auditRetentionDays;
  const now = deps.clock.now();
  const cutoff = new Date(now.getTime() - days * 86_400_000);
  let total = 0;
  const adaptive = isSqlite(deps.db);
  let size = adaptive ? Math.min(batch, 100) : batch;
  for (;;) {
    const started = Date.now();
    const deleted = await auditEvents.deleteBatchBefore(deps.db, cutoff, size);
    total += deleted;
    if (deleted < size) break;
    if (!adaptive) {
      await sleep(pauseMs);
      continue;
    }
    const took = Date.now() - started;
    if (took > batchMs) size = Math.max(10, Math.floor(size / 2));
    else if (took < batchMs / 4) size = Math.min(batch, size * 2);
    await sleep(Math.max(pauseMs, 3 * took));
  }
  if (total > 0)
    await recordAudit(deps.db, systemActor('audit retention'), deps.clock.now(), {
      action: 'audit.purged',
      objectType: 'settings',
      objectId: 'audit_retention',
      after: { olderThan: cutoff.toISOString(), retentionDays: days, deleted: total },
    });
  return total;
}
