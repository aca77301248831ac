import type { Knex } from 'knex';
import type { Clock } from '../../app/lib/clock.ts';
import * as accounts from '../../app/models/accounts.ts';
import { systemActor } from '../../app/services/context.ts';
import { generateVouchers } from '../../app/services/vouchers.ts';
import { createAccount } from './app.ts';

/** New redeemable codes of a policy in an order, made by the one generating service as a new admin (no quota). */
export async function newCodes(
  t: { db: Knex; clock: Clock },
  orderId: number,
  policyId: number,
  count = 1,
): Promise<string[]> {
  const admin = (await accounts.findById(t.db, (await createAccount(t.db, { role: 'admin' })).id))!;
  const batch = await generateVouchers({ db: t.db, clock: t.clock }, systemActor('test'), admin, orderId, {
    policyId,
    count,
    days: 30,
  });
  return batch.codes;
}
