import type { Knex } from 'knex';
import type { Clock } from '../../app/lib/clock.ts';
import * as accounts from '../../app/models/accounts.ts';
import * as catalog from '../../app/models/catalog.ts';
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

/**
 * A key-based product "Pump Control" (code `pump`) with an air-gapped policy of one seat, an order of
 * its own, and one redeemable code of that policy: what a site without network is handed.
 */
export async function airgappedCode(t: { db: Knex; clock: Clock }, orderRef: string): Promise<string> {
  const now = t.clock.now();
  const product = await catalog.insertProduct(
    t.db,
    { name: 'Pump Control', code: 'pump', authorizationMethod: 'key' },
    now,
  );
  const policyId = await catalog.insertPolicy(
    t.db,
    {
      productId: product,
      name: 'Isolated',
      isDefault: true,
      entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, airgapped: true, maxActivations: 1 },
    },
    now,
  );
  const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Initech' }, now);
  const order = await catalog.insertOrder(t.db, { orderRef, customerId: customer }, now);
  const [code] = await newCodes(t, order, policyId);
  return code!;
}
