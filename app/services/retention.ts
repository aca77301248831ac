import { setTimeout as sleep } from 'node:timers/promises';
import * as auditEvents from '../models/audit-events.ts';
import type { Settings } from '../models/settings.ts';
import { recordAudit } from './audit.ts';
import { systemActor, type ServiceDeps } from './context.ts';

/**
 * Audit retention (console → Settings, "Keep audit events for"): deletes the events older than the
 * setting in batches of `batch`, each its own short statements with a pause between them, so that
 * activations and their own audit events go on meanwhile; several processes may run it at once
 * (each batch deletes only what is still there). The purge records itself as `audit.purged`.
 */
export async function purgeOldAuditEvents(
  deps: ServiceDeps & { settings: () => Promise<Settings> },
  options: { batch?: number; pauseMs?: number } = {},
): Promise<number> {
  const { batch = 1000, pauseMs = 20 } = options;
  const days = (await deps.settings()).auditRetentionDays;
  const now = deps.clock.now();
  const cutoff = new Date(now.getTime() - days * 86_400_000);
  let total = 0;
  for (;;) {
    const deleted = await auditEvents.deleteBatchBefore(deps.db, cutoff, batch);
    total += deleted;
    if (deleted < batch) break;
    await sleep(pauseMs);
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
