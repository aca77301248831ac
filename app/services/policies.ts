import type { Knex } from 'knex';
import * as policies from '../models/policies.ts';
import * as products from '../models/products.ts';
import * as catalog from '../models/catalog.ts';
import type { Entitlements } from '../models/catalog.ts';
import { HttpError, ValidationError, notFound } from '../lib/errors.ts';
import { auditedChange } from './changes.ts';
import type { Actor, ServiceDeps } from './context.ts';

/** License policies: templates for issuing. An air-gapped policy is frozen once saved. */

export interface PolicyInput {
  name: string;
  isDefault: boolean;
  entitlements: Entitlements;
  features: policies.PolicyFeature[];
}

async function checkFeatures(trx: Knex, productId: number, features: policies.PolicyFeature[]) {
  const own = new Map((await products.listFeatures(trx, productId)).map((f) => [f.id, f]));
  for (const f of features) {
    const feature = own.get(f.featureId);
    if (!feature) throw new ValidationError({ features: 'validation.choice' });
    if (feature.type !== 'consumption')
      Object.assign(f, { maxConsumption: null, period: 'license', allowOverage: false, maxOverage: null });
  }
}

export async function createPolicy(
  deps: ServiceDeps,
  actor: Actor,
  productId: number,
  input: PolicyInput,
): Promise<number> {
  return auditedChange(deps, actor, async (trx, now) => {
    const product = await products.findById(trx, productId);
    if (!product || product.archived) throw notFound();
    await checkFeatures(trx, productId, input.features);
    const first = (await policies.countForProduct(trx, productId)) === 0;
    const id = await catalog.insertPolicy(
      trx,
      { productId, name: input.name, isDefault: false, entitlements: input.entitlements, createdBy: actor.accountId },
      now,
    );
    await policies.setFeatures(trx, id, input.features);
    if (input.isDefault || first) await policies.makeDefault(trx, productId, id, now);
    const after = policies.auditView((await policies.findById(trx, id))!, input.features);
    return { result: id, audit: { action: 'policy.created', objectType: 'policy', objectId: id, after } };
  });
}

/** Refused with 409 for an air-gapped policy, whether it is air-gapped now or the edit would make it so. */
export async function updatePolicy(
  deps: ServiceDeps,
  actor: Actor,
  policyId: number,
  input: PolicyInput,
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await policies.findById(trx, policyId);
    if (!before) throw notFound();
    if (before.airgapped) throw new HttpError(409, 'policies.airgappedLocked');
    await checkFeatures(trx, before.productId, input.features);
    const beforeFeatures = await policies.listFeatures(trx, policyId);
    await policies.update(trx, policyId, { name: input.name, entitlements: input.entitlements }, now);
    await policies.setFeatures(trx, policyId, input.features);
    if (input.isDefault && !before.isDefault) await policies.makeDefault(trx, before.productId, policyId, now);
    const after = (await policies.findById(trx, policyId))!;
    return {
      result: undefined,
      audit: {
        action: 'policy.updated',
        objectType: 'policy',
        objectId: policyId,
        before: policies.auditView(before, beforeFeatures),
        after: policies.auditView(after, input.features),
      },
    };
  });
}

export async function makeDefaultPolicy(deps: ServiceDeps, actor: Actor, policyId: number): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const policy = await policies.findById(trx, policyId);
    if (!policy) throw notFound();
    if (policy.archived) throw new HttpError(409, 'policies.archivedCannotBeDefault');
    await policies.makeDefault(trx, policy.productId, policyId, now);
    return {
      result: undefined,
      audit: {
        action: 'policy.made_default',
        objectType: 'policy',
        objectId: policyId,
        before: { isDefault: policy.isDefault },
        after: { isDefault: true },
      },
    };
  });
}

export async function setPolicyArchived(
  deps: ServiceDeps,
  actor: Actor,
  policyId: number,
  archived: boolean,
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const policy = await policies.findById(trx, policyId);
    if (!policy) throw notFound();
    await policies.setArchived(trx, policyId, archived, now);
    return {
      result: undefined,
      audit: {
        action: archived ? 'policy.archived' : 'policy.unarchived',
        objectType: 'policy',
        objectId: policyId,
        before: { archived: policy.archived, isDefault: policy.isDefault },
        after: { archived },
      },
    };
  });
}
