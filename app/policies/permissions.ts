/** The User Portal's permission codes (docs/user-portal.md) and the default set a new manager starts with. */
export const PERMISSIONS = [
  'create_order',
  'create_bundle_order',
  'issue_license',
  'manage_managers',
  'manage_license_users',
  'manage_user_credentials',
  'reset_license',
  'reset_device',
  'revoke_device',
  'borrow_license',
  'create_license_policy',
  'edit_customer',
  'edit_license',
  'manage_api_clients',
] as const;

export type Permission = (typeof PERMISSIONS)[number];

export const DEFAULT_PERMISSIONS: Permission[] = [
  'manage_license_users',
  'manage_user_credentials',
  'issue_license',
  'create_order',
  'reset_license',
  'reset_device',
];
