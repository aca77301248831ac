import type { Knex } from 'knex';
import type { Account } from '../models/accounts.ts';

/**
 * The orders an account may see: admins all, managers those assigned to them, end users none.
 * Every order-scoped query starts from here, so an id outside the scope simply finds nothing (404).
 */
export function scopeOrders(db: Knex, account: Pick<Account, 'id' | 'role'>): Knex.QueryBuilder {
  const q = db('orders');
  if (account.role === 'admin') return q;
  if (account.role === 'manager')
    return q.whereIn('orders.id', db('manager_orders').select('order_id').where('account_id', account.id));
  return q.whereRaw('1 = 0');
}
