import type { Knex } from 'knex';
import * as catalog from '../../app/models/catalog.ts';

export interface KeyedOrder {
  productId: number;
  customerId: number;
  orderId: number;
  /**
   * A license of the product in the order, no policy: the default entitlements with `over`, starting
   * now; `columns` are then set on its row as they are (a state no request makes at once: disabled, expired …).
   */
  license(licenseKey: string, over?: Partial<catalog.Entitlements>, columns?: Record<string, unknown>): Promise<number>;
}

/**
 * What most device tests start from: a key-based product (Acme CAD, `acme-cad`, unless `product`
 * says otherwise), a company customer (Globex) and an order of it, with a way to add licenses. The
 * clock dates every row when it is written (a test clock moves between licenses); licenses start
 * then, or `startedDaysAgo` days before.
 */
export async function keyedOrder(
  db: Knex,
  clock: { now(): Date },
  options: { product?: { name: string; code: string }; orderRef?: string; startedDaysAgo?: number } = {},
): Promise<KeyedOrder> {
  const { name, code } = options.product ?? { name: 'Acme CAD', code: 'acme-cad' };
  const productId = await catalog.insertProduct(db, { name, code, authorizationMethod: 'key' }, clock.now());
  const customerId = await catalog.insertCustomer(db, { kind: 'company', name: 'Globex' }, clock.now());
  const orderId = await catalog.insertOrder(db, { orderRef: options.orderRef ?? 'O-1', customerId }, clock.now());
  return {
    productId,
    customerId,
    orderId,
    license: async (licenseKey, over = {}, columns = {}) => {
      const now = clock.now();
      const id = await catalog.insertLicense(
        db,
        {
          orderId,
          productId,
          policyId: null,
          licenseKey,
          entitlements: { ...catalog.DEFAULT_ENTITLEMENTS, ...over },
          startDate: new Date(now.getTime() - (options.startedDaysAgo ?? 0) * 86_400_000),
        },
        now,
      );
      if (Object.keys(columns).length) await db('licenses').where({ id }).update(columns);
      return id;
    },
  };
}
