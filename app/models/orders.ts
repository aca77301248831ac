import type { Knex } from 'knex';
import { toDate } from './normalise.ts';

export interface OrderSummary {
  id: number;
  orderRef: string;
  customerName: string;
  createdAt: Date;
  licenseCount: number;
}

/** A page of orders from a scope (see policies/orders.ts), newest first, with customer and license count. */
export async function listSummaries(db: Knex, scope: Knex.QueryBuilder, limit: number, offset = 0): Promise<OrderSummary[]> {
  const rows = await scope
    .clone()
    .join('customers', 'customers.id', 'orders.customer_id')
    .orderBy('orders.id', 'desc')
    .limit(limit)
    .offset(offset)
    .select('orders.id', 'orders.order_ref', 'orders.created_at', 'customers.name as customer_name', {
      license_count: db('licenses').count('*').whereRaw('licenses.order_id = orders.id'),
    });
  return rows.map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    orderRef: String(r.order_ref),
    customerName: String(r.customer_name),
    createdAt: toDate(r.created_at)!,
    licenseCount: Number(r.license_count),
  }));
}
