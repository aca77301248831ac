import type { Knex } from 'knex';
import * as accounts from '../models/accounts.ts';
import type { Account } from '../models/accounts.ts';
import * as managers from '../models/managers.ts';
import * as roles from '../models/roles.ts';
import * as licenseUsers from '../models/license-users.ts';
import { scopeOrders } from './orders.ts';
import { forbidden } from '../lib/errors.ts';
import { PERMISSIONS, type Permission } from './permissions.ts';

/**
 * What an account may do in the User Portal outside any order (create orders and policies). Admins
 * (vendor staff, for support) hold every permission; managers their account permissions; end users none.
 */
export async function permissionsFor(db: Knex, account: Pick<Account, 'id' | 'role'>): Promise<Set<Permission>> {
  if (account.role === 'admin') return new Set(PERMISSIONS);
  if (account.role !== 'manager') return new Set();
  return new Set(await managers.permissionsOf(db, account.id));
}

/**
 * What an account may do on one order: its account permissions plus, for a manager, those of its role
 * on that order (docs/user-portal.md, "Roles"). Admins hold every permission on every order. `own`:
 * the account permissions when the caller has them already (the portal loads them once per request).
 */
export async function permissionsOnOrder(
  db: Knex,
  account: Pick<Account, 'id' | 'role'>,
  orderId: number,
  own?: Set<Permission>,
): Promise<Set<Permission>> {
  const mine = own ?? (await permissionsFor(db, account));
  if (account.role !== 'manager') return mine;
  return new Set([...mine, ...((await roles.permissionsOn(db, account.id, orderId)) ?? [])]);
}

/** Throws 403: call it after the object was loaded through the scope (out of scope is 404 first). */
export function authorize(permissions: Set<Permission>, code: Permission): void {
  if (!permissions.has(code)) throw forbidden();
}

/**
 * Account ownership (docs/decisions.md): of `accountIds`, the end-user accounts whose every license
 * assignment lies in an order of `manager`'s scope — only those may the manager assign directly,
 * change or unassign, and give a one-time password or reset link. An account with no assignment
 * yet qualifies (nobody else holds it). Admins' scope is every order, so for them it is every end
 * user; end users own nobody. The same two queries run whatever the accounts turn out to be.
 */
export async function ownedEndUsers(
  db: Knex,
  manager: Pick<Account, 'id' | 'role'>,
  accountIds: number[],
): Promise<Set<number>> {
  if (manager.role === 'end_user') return new Set();
  const endUsers = await accounts.endUsersAmong(db, accountIds);
  const outside = await licenseUsers.assignedOutside(db, accountIds, scopeOrders(db, manager).select('orders.id'));
  return new Set(endUsers.filter((id) => !outside.has(id)));
}

/** THE ownership rule for one account (see ownedEndUsers): every portal path over an end user's account asks it. */
export async function ownsEndUser(
  db: Knex,
  manager: Pick<Account, 'id' | 'role'>,
  accountId: number,
): Promise<boolean> {
  return (await ownedEndUsers(db, manager, [accountId])).has(accountId);
}

/**
 * Whether `accountId` is a user of the license whom `by` may act on: any user of it for the console
 * (`by` null), else one `by` owns (ownsEndUser). The portal's and the Management API's loaders ask it.
 */
export async function isManageableUserOf(
  db: Knex,
  by: Pick<Account, 'id' | 'role'> | null,
  licenseId: number,
  accountId: number,
): Promise<boolean> {
  return !!(await licenseUsers.find(db, licenseId, accountId)) && (!by || (await ownsEndUser(db, by, accountId)));
}

/**
 * The products and policies a manager may issue from: products with a quota row (null quota =
 * unlimited); policies the vendor listed for the manager, or, when none are listed, every policy of
 * those products. Admins may issue from everything.
 */
export async function issuableFor(
  db: Knex,
  account: Pick<Account, 'id' | 'role'>,
  seen: Set<number> = new Set(),
): Promise<Issuable[]> {
  const q = db('license_policies')
    .join('products', 'products.id', 'license_policies.product_id')
    .where('license_policies.archived', false)
    .where('products.archived', false)
    .orderBy('products.name')
    .orderBy('license_policies.name')
    .select(
      'license_policies.id',
      'license_policies.name',
      'license_policies.is_default',
      'products.id as product_id',
      'products.name as product_name',
      'products.authorization_method',
    );
  if (account.role !== 'admin') {
    q.whereIn('products.id', db('manager_quotas').where('account_id', account.id).select('product_id'));
    const listed = await managers.allowedPoliciesOf(db, account.id);
    if (listed.length) q.whereIn('license_policies.id', listed);
  }
  let rows: Issuable[] = (await q).map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    name: String(r.name),
    isDefault: !!Number(r.is_default),
    productId: Number(r.product_id),
    productName: String(r.product_name),
    authorizationMethod: r.authorization_method as 'key' | 'user',
  }));
  // A sub-quota reaches no further than its granter may issue (docs/user-portal.md, "Delegation").
  seen.add(account.id);
  for (const quota of account.role === 'manager' ? await managers.quotasOf(db, account.id) : []) {
    if (!quota.grantedBy) continue;
    const granter = quota.grantedBy.id;
    const theirs = seen.has(granter)
      ? new Set<number>()
      : new Set((await issuableFor(db, { id: granter, role: 'manager' }, new Set(seen))).map((p) => p.id));
    rows = rows.filter((p) => p.productId !== quota.productId || theirs.has(p.id));
  }
  return rows;
}

export interface Issuable {
  id: number;
  name: string;
  isDefault: boolean;
  productId: number;
  productName: string;
  authorizationMethod: 'key' | 'user';
}
