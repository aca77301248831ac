import { CONSUMPTION_PERIODS, type ConsumptionPeriod } from '../models/policies.ts';
import { z } from 'zod';
import { checkbox, oneOf, optionalWholeNumber, requiredText, wholeNumber } from './fields.ts';
import { entitlementColumns, type Entitlements } from '../models/catalog.ts';
import { parseForm } from './parse.ts';

export const LICENSE_TYPES = ['perpetual', 'time-limited', 'subscription', 'consumption'] as const;

/** Every entitlement (docs/overview.md), with the rules that tie fields together. Shared by policies and license edits. */
export const entitlementFields = {
  license_type: oneOf(LICENSE_TYPES),
  is_trial: checkbox,
  trial_days: optionalWholeNumber(1, 3650),
  validity_days: optionalWholeNumber(1, 36500),
  max_activations: optionalWholeNumber(1, 1_000_000),
  unlimited_activations: checkbox,
  max_transfers: wholeNumber(-1, 1_000_000),
  allow_offline: checkbox,
  airgapped: checkbox,
  floating: checkbox,
  floating_users: optionalWholeNumber(1, 1_000_000),
  floating_timeout_minutes: optionalWholeNumber(1, 10_080),
  can_borrow: checkbox,
  max_borrow_hours: optionalWholeNumber(1, 8760),
  maintenance_days: optionalWholeNumber(1, 36500),
};

type EntitlementInput = z.infer<z.ZodObject<typeof entitlementFields>>;

export function checkEntitlements(v: EntitlementInput, ctx: z.RefinementCtx) {
  const need = (field: keyof EntitlementInput, message = 'validation.required') =>
    ctx.addIssue({ code: 'custom', path: [field], message });
  if ((v.license_type === 'time-limited' || v.license_type === 'subscription') && v.validity_days === null)
    need('validity_days');
  if (v.is_trial && v.trial_days === null) need('trial_days');
  if (!v.unlimited_activations && v.max_activations === null) need('max_activations');
  if (v.floating && v.floating_users === null) need('floating_users');
  if (v.floating && v.floating_timeout_minutes === null) need('floating_timeout_minutes');
  if (v.can_borrow && !v.floating) need('can_borrow', 'policies.borrowNeedsFloating');
  if (v.can_borrow && v.max_borrow_hours === null) need('max_borrow_hours');
  if (v.airgapped && v.floating) need('floating', 'policies.airgappedNotFloating');
}

/** Turns checked form input into the entitlements model; fields that do not apply are cleared. */
export function toEntitlements(v: EntitlementInput): Entitlements {
  return {
    licenseType: v.license_type,
    isTrial: v.is_trial,
    trialDays: v.is_trial ? v.trial_days : null,
    validityDays: v.license_type === 'perpetual' ? null : v.validity_days,
    maxActivations: v.unlimited_activations ? (v.max_activations ?? 1) : v.max_activations!,
    unlimitedActivations: v.unlimited_activations,
    maxTransfers: v.max_transfers,
    allowOffline: v.allow_offline || v.airgapped,
    airgapped: v.airgapped,
    floating: v.floating,
    floatingUsers: v.floating ? v.floating_users : null,
    floatingTimeoutMinutes: v.floating ? v.floating_timeout_minutes : null,
    canBorrow: v.floating && v.can_borrow,
    maxBorrowHours: v.floating && v.can_borrow ? v.max_borrow_hours : null,
    maintenanceDays: v.maintenance_days,
  };
}

/** The form values for an existing set of entitlements (edit pages): the fields are named like the columns. */
export const entitlementValues = entitlementColumns;

const featureIds = z.preprocess(
  (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]),
  z
    .array(
      z
        .string()
        .regex(/^\d{1,10}$/, { message: 'validation.choice' })
        .transform(Number),
    )
    .max(500),
);

export const policyForm = z
  .object({ name: requiredText(200), is_default: checkbox, ...entitlementFields, features: featureIds })
  .passthrough()
  .superRefine(checkEntitlements);

/** max_consumption_<featureId> fields of a submitted policy form. */
export function featureLimits(
  body: Record<string, unknown>,
  ids: number[],
): {
  limits: Map<number, number | null>;
  rules: Map<number, { period: ConsumptionPeriod; allowOverage: boolean; maxOverage: number | null }>;
  errors: Record<string, string>;
} {
  // Each chosen feature's limit: empty = no limit, otherwise a whole number from 1; its period, and
  // whether it allows overage (up to a cap, empty = none).
  const schema = z.object(
    Object.fromEntries(
      ids.flatMap((id) => [
        [`max_consumption_${id}`, optionalWholeNumber(1, Number.MAX_SAFE_INTEGER)],
        [
          `consumption_period_${id}`,
          z.preprocess((v) => (v === undefined || v === '' ? 'license' : v), oneOf(CONSUMPTION_PERIODS)),
        ],
        [`allow_overage_${id}`, checkbox],
        [`max_overage_${id}`, optionalWholeNumber(1, Number.MAX_SAFE_INTEGER)],
      ]),
    ),
  );
  const parsed = parseForm(schema, body);
  if (!parsed.ok) return { limits: new Map(), rules: new Map(), errors: parsed.errors };
  const data = parsed.data as Record<string, unknown>;
  return {
    limits: new Map(ids.map((id) => [id, (data[`max_consumption_${id}`] as number | null) ?? null])),
    rules: new Map(
      ids.map((id) => [
        id,
        {
          period: data[`consumption_period_${id}`] as ConsumptionPeriod,
          allowOverage: data[`allow_overage_${id}`] as boolean,
          maxOverage: (data[`max_overage_${id}`] as number | null) ?? null,
        },
      ]),
    ),
    errors: {},
  };
}
