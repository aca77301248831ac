import * as products from '../models/products.ts';
import * as catalog from '../models/catalog.ts';
import { isUniqueViolation } from '../models/normalise.ts';
import { HttpError, ValidationError, notFound } from '../lib/errors.ts';
import { auditedChange } from './changes.ts';
import type { Actor, ServiceDeps } from './context.ts';

/** Products and their features. Codes are immutable; a product with licenses is archived, not deleted. */

export interface ProductInput {
  name: string;
  code: string;
  authorization_method: 'key' | 'user';
  description: string | null;
}

async function mustFind(db: ServiceDeps['db'], id: number) {
  const p = await products.findById(db, id);
  if (!p) throw notFound();
  return p;
}

export async function createProduct(deps: ServiceDeps, actor: Actor, input: ProductInput): Promise<number> {
  try {
    return await auditedChange(deps, actor, async (trx, now) => {
      const id = await catalog.insertProduct(
        trx,
        {
          name: input.name,
          code: input.code,
          authorizationMethod: input.authorization_method,
          description: input.description ?? undefined,
        },
        now,
      );
      const after = products.auditView((await products.findById(trx, id))!);
      return { result: id, audit: { action: 'product.created', objectType: 'product', objectId: id, after } };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new ValidationError({ code: 'validation.codeTaken' });
    throw err;
  }
}

export async function updateProduct(
  deps: ServiceDeps,
  actor: Actor,
  id: number,
  input: Omit<ProductInput, 'code'>,
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await mustFind(trx, id);
    if (input.authorization_method !== before.authorizationMethod && (await products.hasLicenses(trx, id))) {
      throw new ValidationError({ authorization_method: 'products.authorizationLocked' });
    }
    await products.update(
      trx,
      id,
      { name: input.name, description: input.description, authorizationMethod: input.authorization_method },
      now,
    );
    const after = await mustFind(trx, id);
    return {
      result: undefined,
      audit: {
        action: 'product.updated',
        objectType: 'product',
        objectId: id,
        before: products.auditView(before),
        after: products.auditView(after),
      },
    };
  });
}

export async function setProductArchived(
  deps: ServiceDeps,
  actor: Actor,
  id: number,
  archived: boolean,
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await mustFind(trx, id);
    await products.update(trx, id, { archived }, now);
    return {
      result: undefined,
      audit: {
        action: archived ? 'product.archived' : 'product.unarchived',
        objectType: 'product',
        objectId: id,
        before: { archived: before.archived },
        after: { archived },
      },
    };
  });
}

/** Deletes a product that never had a license; otherwise 409 (archive it instead). */
export async function deleteProduct(deps: ServiceDeps, actor: Actor, id: number): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    const before = await mustFind(trx, id);
    if (await products.hasLicenses(trx, id)) throw new HttpError(409, 'products.hasLicenses');
    await products.remove(trx, id);
    return {
      result: undefined,
      audit: { action: 'product.deleted', objectType: 'product', objectId: id, before: products.auditView(before) },
    };
  });
}

export async function addFeature(
  deps: ServiceDeps,
  actor: Actor,
  productId: number,
  input: { code: string; name: string; type: 'activation' | 'consumption' },
): Promise<number> {
  try {
    return await auditedChange(deps, actor, async (trx, now) => {
      await mustFind(trx, productId);
      const id = await catalog.insertFeature(trx, { productId, ...input }, now);
      return {
        result: id,
        audit: { action: 'feature.created', objectType: 'feature', objectId: id, after: { productId, ...input } },
      };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new ValidationError({ code: 'validation.codeTaken' });
    throw err;
  }
}

export async function renameFeature(
  deps: ServiceDeps,
  actor: Actor,
  productId: number,
  featureId: number,
  name: string,
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await products.findFeature(trx, productId, featureId);
    if (!before) throw notFound();
    await products.updateFeature(trx, featureId, { name }, now);
    return {
      result: undefined,
      audit: {
        action: 'feature.updated',
        objectType: 'feature',
        objectId: featureId,
        before: { name: before.name },
        after: { name },
      },
    };
  });
}

/** A feature that licenses carry cannot be deleted (their entitlements would change). */
export async function deleteFeature(
  deps: ServiceDeps,
  actor: Actor,
  productId: number,
  featureId: number,
): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    const before = await products.findFeature(trx, productId, featureId);
    if (!before) throw notFound();
    if (await products.featureInUse(trx, featureId)) throw new HttpError(409, 'products.featureInUse');
    await products.removeFeature(trx, featureId);
    return {
      result: undefined,
      audit: { action: 'feature.deleted', objectType: 'feature', objectId: featureId, before },
    };
  });
}
