import type { Knex } from 'knex';
import type { Entitlements } from './catalog.ts';
import { entitlementColumns } from './catalog.ts';
import { toBool, toDate } from './normalise.ts';

export interface Policy extends Entitlements {
  id: number;
  productId: number;
  name: string;
  isDefault: boolean;
  archived: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** How a consumable feature's maximum is counted: over the whole license, or per calendar month (UTC). */
export const CONSUMPTION_PERIODS = ['license', 'month'] as const;
export type ConsumptionPeriod = (typeof CONSUMPTION_PERIODS)[number];

export interface PolicyFeature {
  featureId: number;
  maxConsumption: number | null;
  /** Consumption features only (default `license`, no overage). */
  period?: ConsumptionPeriod;
  allowOverage?: boolean;
  /** With allowOverage: how far past the maximum a period may go; null = no cap. */
  maxOverage?: number | null;
}

/** A policy_features or license_features row's consumption rule. */
export function consumptionRuleOf(r: Record<string, unknown>) {
  return {
    period: (r.consumption_period === 'month' ? 'month' : 'license') as ConsumptionPeriod,
    allowOverage: toBool(r.allow_overage),
    maxOverage: intOrNull(r.max_overage),
  };
}

/** The columns of a consumption rule, defaults filled in. */
export function consumptionColumns(f: PolicyFeature) {
  return {
    max_consumption: f.maxConsumption,
    consumption_period: f.period ?? 'license',
    allow_overage: f.allowOverage ?? false,
    max_overage: f.allowOverage ? (f.maxOverage ?? null) : null,
  };
}

const intOrNull = (v: unknown) => (v === null || v === undefined ? null : Number(v));

/** The entitlement columns of a policy or license row, normalised. */
export function entitlementsFromRow(r: Record<string, unknown>): Entitlements {
  return {
    licenseType: r.license_type as Entitlements['licenseType'],
    isTrial: toBool(r.is_trial),
    trialDays: intOrNull(r.trial_days),
    validityDays: intOrNull(r.validity_days),
    maxActivations: Number(r.max_activations),
    unlimitedActivations: toBool(r.unlimited_activations),
    maxTransfers: Number(r.max_transfers),
    allowOffline: toBool(r.allow_offline),
    airgapped: toBool(r.airgapped),
    floating: toBool(r.floating),
    floatingUsers: intOrNull(r.floating_users),
    floatingTimeoutMinutes: intOrNull(r.floating_timeout_minutes),
    canBorrow: toBool(r.can_borrow),
    maxBorrowHours: intOrNull(r.max_borrow_hours),
    maintenanceDays: intOrNull(r.maintenance_days),
  };
}

function fromRow(r: Record<string, unknown>): Policy {
  return {
    id: Number(r.id),
    productId: Number(r.product_id),
    name: String(r.name),
    isDefault: toBool(r.is_default),
    archived: toBool(r.archived),
    ...entitlementsFromRow(r),
    createdAt: toDate(r.created_at)!,
    updatedAt: toDate(r.updated_at)!,
  };
}

export async function findById(db: Knex, id: number): Promise<Policy | undefined> {
  const row = await db('license_policies').where({ id }).first();
  return row ? fromRow(row) : undefined;
}

export async function listForProduct(db: Knex, productId: number): Promise<Policy[]> {
  return (
    await db('license_policies').where({ product_id: productId }).orderBy('is_default', 'desc').orderBy('name')
  ).map(fromRow);
}

/** Policies that licenses may be issued from, with their product, for pick lists. */
export async function listIssuable(db: Knex): Promise<(Policy & { productName: string })[]> {
  const rows = await db('license_policies')
    .join('products', 'products.id', 'license_policies.product_id')
    .where('license_policies.archived', false)
    .where('products.archived', false)
    .orderBy('products.name')
    .orderBy('license_policies.name')
    .select('license_policies.*', 'products.name as product_name');
  return rows.map((r: Record<string, unknown>) => ({ ...fromRow(r), productName: String(r.product_name) }));
}

export async function listFeatures(db: Knex, policyId: number): Promise<PolicyFeature[]> {
  return (await db('policy_features').where({ policy_id: policyId })).map((r: Record<string, unknown>) => ({
    featureId: Number(r.feature_id),
    maxConsumption: intOrNull(r.max_consumption),
    ...consumptionRuleOf(r),
  }));
}

export async function update(
  db: Knex,
  id: number,
  c: { name: string; entitlements: Entitlements },
  now: Date,
): Promise<void> {
  await db('license_policies')
    .where({ id })
    .update({ name: c.name, ...entitlementColumns(c.entitlements), updated_at: now });
}

/** The features of several policies (one query), by policy id. */
export async function listFeaturesOf(db: Knex, policyIds: number[]): Promise<Map<number, PolicyFeature[]>> {
  const out = new Map<number, PolicyFeature[]>(policyIds.map((id) => [id, []]));
  if (!policyIds.length) return out;
  for (const r of (await db('policy_features').whereIn('policy_id', policyIds)) as Record<string, unknown>[])
    out.get(Number(r.policy_id))?.push({
      featureId: Number(r.feature_id),
      maxConsumption: intOrNull(r.max_consumption),
      ...consumptionRuleOf(r),
    });
  return out;
}

export async function setFeatures(db: Knex, policyId: number, features: PolicyFeature[]): Promise<void> {
  await db('policy_features').where({ policy_id: policyId }).delete();
  if (features.length)
    await db('policy_features').insert(
      features.map((f) => ({ policy_id: policyId, feature_id: f.featureId, ...consumptionColumns(f) })),
    );
}

/** Makes one policy the product's default and clears the flag on the others. */
export async function makeDefault(db: Knex, productId: number, policyId: number, now: Date): Promise<void> {
  await db('license_policies')
    .where({ product_id: productId })
    .whereNot({ id: policyId })
    .where({ is_default: true })
    .update({ is_default: false, updated_at: now });
  await db('license_policies').where({ id: policyId }).update({ is_default: true, updated_at: now });
}

export async function setArchived(db: Knex, id: number, archived: boolean, now: Date): Promise<void> {
  await db('license_policies')
    .where({ id })
    .update({ archived, ...(archived ? { is_default: false } : {}), updated_at: now });
}

export async function countForProduct(db: Knex, productId: number): Promise<number> {
  return Number((await db('license_policies').where({ product_id: productId }).count({ n: '*' }).first())?.n ?? 0);
}

export function auditView(p: Policy, features?: PolicyFeature[]) {
  const { createdAt: _c, updatedAt: _u, id: _i, ...rest } = p;
  return features ? { ...rest, features } : rest;
}

/** The Management API's policy list: all, or those with `ids`; by product, archived or not. */
export function apiQuery(
  db: Knex,
  f: { ids: number[] | null; productId?: number; archived?: boolean },
): Knex.QueryBuilder {
  const q = db('license_policies');
  if (f.ids) q.whereIn('id', f.ids);
  if (f.productId) q.where('product_id', f.productId);
  if (f.archived !== undefined) q.where('archived', f.archived);
  return q.select('license_policies.*');
}

export const fromApiRow = fromRow;
