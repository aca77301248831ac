import type { Knex } from 'knex';
import { recordAudit, type AuditRecord } from './audit.ts';
import type { Actor, ServiceDeps } from './context.ts';
import { inTransaction } from '../lib/transaction.ts';

/**
 * Runs one change in a transaction and writes its audit event in the same transaction.
 * `change` returns the audit record (with before/after) and a result for the caller.
 */
export async function auditedChange<T>(
  { db, clock }: ServiceDeps,
  actor: Actor,
  change: (trx: Knex, now: Date) => Promise<{ audit: AuditRecord; result: T }>,
): Promise<T> {
  const now = clock.now();
  return inTransaction(db, async (trx) => {
    const { audit, result } = await change(trx, now);
    await recordAudit(trx, actor, now, audit);
    return result;
  });
}
