import { z } from 'zod';
import {
  checkbox,
  email,
  language,
  oneOf,
  optionalDate,
  optionalEmail,
  optionalText,
  optionalWholeNumber,
  requiredText,
  wholeNumber,
  id,
} from './fields.ts';
import { entitlementFields, checkEntitlements } from './policies.ts';
import { ACCOUNT_PERMISSIONS, ORDER_PERMISSIONS } from '../policies/permissions.ts';

export const customerForm = z.object({
  kind: oneOf(['company', 'person'] as const),
  name: requiredText(200),
  contact_name: optionalText(200),
  email: optionalEmail,
  phone: optionalText(64),
  address: optionalText(1000),
  reference: optionalText(100),
});

export const orderForm = z.object({
  order_ref: requiredText(100),
  reference: optionalText(200),
  is_test: checkbox,
  is_trial: checkbox,
  // Empty: the installation's default branding.
  branding_id: optionalWholeNumber(1, 2_147_483_647),
});

/** Addresses separated by new lines, commas or semicolons; each must be valid. */
export const emailList = z.preprocess(
  (v) =>
    typeof v === 'string'
      ? v
          .split(/[\s,;]+/)
          .map((s) => s.trim())
          .filter(Boolean)
      : [],
  z
    .array(z.email({ message: 'licenses.emailsInvalid' }), { message: 'licenses.emailsInvalid' })
    .max(1000, { message: 'licenses.tooManyEmails' }),
);

export const issueForm = z.object({
  policy_id: id,
  quantity: optionalWholeNumber(1, 10_000),
  emails: emailList,
  start_date: optionalDate,
});

export const licenseEditForm = z
  .object({
    ...entitlementFields,
    start_date: optionalDate,
    expires_at: optionalDate,
    maintenance_until: optionalDate,
    note: optionalText(2000),
  })
  .superRefine(checkEntitlements);

export const noteForm = z.object({ note: optionalText(2000) });

export const assignUserForm = z.object({ email, name: optionalText(200), max_activations: wholeNumber(1, 1_000_000) });

export const limitForm = z.object({ max_activations: wholeNumber(1, 1_000_000) });

export const credentialsForm = z.object({ credentials: oneOf(['email', 'password'] as const) });

export const licenseUserForm = z.object({
  email,
  name: requiredText(200),
  language,
  credentials: oneOf(['email', 'password'] as const),
});

export const managerInviteForm = z.object({ email, name: requiredText(200), language });

export const managerProfileForm = z.object({ name: requiredText(200), language, disabled: checkbox });

const listOf = <T extends readonly [string, ...string[]]>(values: T) =>
  z.preprocess(
    (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]),
    z.array(z.enum(values, { message: 'validation.choice' })),
  );

/** A manager's own permissions (those outside any order), and which role they get on orders they create. */
export const permissionsForm = z.object({
  permissions: listOf(ACCOUNT_PERMISSIONS),
  own_order_role_id: optionalWholeNumber(1, 2_147_483_647),
});

export const defaultsForm = z.object({ permissions: listOf(ACCOUNT_PERMISSIONS) });

export const roleForm = z.object({ name: requiredText(80), permissions: listOf(ORDER_PERMISSIONS) });

export const assignOrderForm = z.object({ order_ref: requiredText(100), role_id: id });

export const orderRoleForm = z.object({ role_id: id });

export const quotaForm = z.object({ product_id: id, quota: optionalWholeNumber(0, 10_000_000) });

export const policiesForm = z.object({
  policy_ids: z.preprocess(
    (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]),
    z
      .array(
        z
          .string()
          .regex(/^\d{1,10}$/, { message: 'validation.choice' })
          .transform(Number),
      )
      .max(1000),
  ),
});
