import type { Knex } from 'knex';
import * as auditEvents from '../models/audit-events.ts';
import type { AuditAction } from './audit-actions.ts';
import type { Actor } from './context.ts';

export interface AuditRecord {
  action: AuditAction;
  objectType?: string;
  objectId?: string | number | null;
  orderId?: number | null;
  before?: unknown;
  after?: unknown;
}

/**
 * Writes one audit event. Pass the transaction of the change it records, so the event and the change
 * commit (or roll back) together. Security events with no change (a failed login) pass the plain handle.
 */
export async function recordAudit(db: Knex, actor: Actor, now: Date, record: AuditRecord): Promise<void> {
  await auditEvents.insert(
    db,
    {
      actorAccountId: actor.accountId,
      actorLabel: actor.label,
      action: record.action,
      objectType: record.objectType,
      objectId: record.objectId,
      orderId: record.orderId,
      before: record.before,
      after: record.after,
      ip: actor.ip,
      requestId: actor.requestId,
    },
    now,
  );
}
