/**
 * The User Portal's permission codes (docs/user-portal.md). Order permissions come from the role of
 * the manager's assignment to the order at hand; account permissions are the manager's own, since
 * they concern no existing order.
 */
export const ORDER_PERMISSIONS = [
  'issue_license',
  'dispatch_license',
  'manage_managers',
  'manage_license_users',
  'manage_user_credentials',
  'reset_license',
  'reset_device',
  'revoke_device',
  'borrow_license',
  'edit_customer',
  'edit_license',
] as const;

export const ACCOUNT_PERMISSIONS = [
  'create_order',
  'create_bundle_order',
  'create_license_policy',
  'manage_api_clients',
] as const;

export const PERMISSIONS = [...ACCOUNT_PERMISSIONS, ...ORDER_PERMISSIONS] as const;

export type OrderPermission = (typeof ORDER_PERMISSIONS)[number];
export type AccountPermission = (typeof ACCOUNT_PERMISSIONS)[number];
export type Permission = OrderPermission | AccountPermission;

export const isOrderPermission = (p: string): p is OrderPermission =>
  (ORDER_PERMISSIONS as readonly string[]).includes(p);

/** The built-in roles (docs/user-portal.md, "Roles"); their permissions cannot be edited. */
export const BUILT_IN_ROLES = {
  viewer: [] as OrderPermission[],
  operator: ['dispatch_license', 'manage_license_users', 'reset_device'] as OrderPermission[],
  manager: [...ORDER_PERMISSIONS],
} as const;

export type BuiltInRole = keyof typeof BUILT_IN_ROLES;

/** The account permissions a new manager starts with (the vendor changes them in the console). */
export const DEFAULT_ACCOUNT_PERMISSIONS: AccountPermission[] = ['create_order'];
