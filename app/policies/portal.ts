import type { Knex } from 'knex';
import type { Account } from '../models/accounts.ts';
import * as managers from '../models/managers.ts';
import { forbidden } from '../lib/errors.ts';
import { PERMISSIONS, type Permission } from './permissions.ts';

/**
 * What an account may do in the User Portal. Admins (vendor staff, for support) hold every
 * permission over every order; managers hold theirs over their orders; end users none.
 */
export async function permissionsFor(db: Knex, account: Pick<Account, 'id' | 'role'>): Promise<Set<Permission>> {
  if (account.role === 'admin') return new Set(PERMISSIONS);
  if (account.role !== 'manager') return new Set();
  return new Set(await managers.permissionsOf(db, account.id));
}

/** Throws 403: call it after the object was loaded through the scope (out of scope is 404 first). */
export function authorize(permissions: Set<Permission>, code: Permission): void {
  if (!permissions.has(code)) throw forbidden();
}

/**
 * The products and policies a manager may issue from: products with a quota row (null quota =
 * unlimited); policies the vendor listed for the manager, or, when none are listed, every policy of
 * those products. Admins may issue from everything.
 */
export async function issuableFor(db: Knex, account: Pick<Account, 'id' | 'role'>) {
  const q = db('license_policies')
    .join('products', 'products.id', 'license_policies.product_id')
    .where('license_policies.archived', false)
    .where('products.archived', false)
    .orderBy('products.name')
    .orderBy('license_policies.name')
    .select('license_policies.id', 'license_policies.name', 'license_policies.is_default', 'products.id as product_id', 'products.name as product_name', 'products.authorization_method');
  if (account.role !== 'admin') {
    q.whereIn('products.id', db('manager_quotas').where('account_id', account.id).select('product_id'));
    const listed = await managers.allowedPoliciesOf(db, account.id);
    if (listed.length) q.whereIn('license_policies.id', listed);
  }
  return (await q).map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    name: String(r.name),
    isDefault: !!Number(r.is_default),
    productId: Number(r.product_id),
    productName: String(r.product_name),
    authorizationMethod: r.authorization_method as 'key' | 'user',
  }));
}
