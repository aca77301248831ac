import type { Request, RequestHandler, Response } from 'express';
import { z } from 'zod';
import type { AppContext } from '../../app.ts';
import * as products from '../../models/products.ts';
import * as policies from '../../models/policies.ts';
import type { Product } from '../../models/products.ts';
import type { Policy, PolicyFeature } from '../../models/policies.ts';
import { entitlementColumns } from '../../models/catalog.ts';
import { productCreateForm, productUpdateForm } from '../../forms/products.ts';
import { policyForm, toEntitlements } from '../../forms/policies.ts';
import { id, optionalText, optionalWholeNumber } from '../../forms/fields.ts';
import { issuableFor } from '../../policies/portal.ts';
import { createProduct, updateProduct } from '../../services/products.ts';
import { createPolicy, updatePolicy } from '../../services/policies.ts';
import { ValidationError, notFound } from '../../lib/errors.ts';
import { CONSUMPTION_PERIODS } from '../../models/policies.ts';
import { bodyObject, parsed, parsedAt, query } from '../../api/manage/input.ts';
import { cursorPage, pageParams } from '../../api/manage/pagination.ts';
import { idParam, orNotFound } from '../helpers.ts';

export function productJson(p: Product) {
  return {
    id: p.id,
    name: p.name,
    code: p.code,
    authorization_method: p.authorizationMethod,
    description: p.description,
    archived: p.archived,
    created_at: p.createdAt.toISOString(),
    updated_at: p.updatedAt.toISOString(),
  };
}

export function policyJson(p: Policy, features: PolicyFeature[]) {
  return {
    id: p.id,
    product_id: p.productId,
    name: p.name,
    is_default: p.isDefault,
    archived: p.archived,
    entitlements: entitlementColumns(p),
    features: features.map(featureJson),
    created_at: p.createdAt.toISOString(),
    updated_at: p.updatedAt.toISOString(),
  };
}

const archivedFilter = z.preprocess(
  (v) => (v === 'true' ? true : v === 'false' ? false : v),
  z.boolean({ message: 'validation.invalid' }).optional(),
);

/** JSON booleans of the entitlements, as the console form's checkboxes read them. */
const flags = (body: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(body).map(([k, v]) => [k, v === false ? undefined : v]));

const policyFeature = z.object({
  feature_id: id,
  max_consumption: optionalWholeNumber(1, Number.MAX_SAFE_INTEGER),
  consumption_period: z.enum(CONSUMPTION_PERIODS, { message: 'validation.choice' }).optional(),
  allow_overage: z.boolean({ message: 'validation.invalid' }).optional(),
  max_overage: optionalWholeNumber(1, Number.MAX_SAFE_INTEGER),
});

/** A policy feature as the API shows it (the consumption rule with it). */
const featureJson = (f: policies.PolicyFeature) => ({
  feature_id: f.featureId,
  max_consumption: f.maxConsumption,
  consumption_period: f.period ?? 'license',
  allow_overage: f.allowOverage ?? false,
  max_overage: f.maxOverage ?? null,
});

/**
 * Products and license policies (docs/api.md, "Catalogue"): API clients read and write them through
 * the console's services; a manager's token reads those it may issue from (policies/portal.ts
 * issuableFor, as the portal's pick lists), anything else is 404.
 */
export function manageCatalogueController(ctx: AppContext) {
  /** null: every one (API clients). */
  const issuable = async (req: Request) =>
    req.api!.token.kind === 'client' ? null : await issuableFor(ctx.db, req.api!.account);
  const productIds = async (req: Request) => {
    const list = await issuable(req);
    return list ? [...new Set(list.map((p) => p.productId))] : null;
  };
  const policyIds = async (req: Request) => (await issuable(req))?.map((p) => p.id) ?? null;

  /** The policy's entitlements and features from the API's body, checked by the console's policy form. */
  const policyInput = (body: Record<string, unknown>) => {
    const features = z.array(z.unknown()).max(500).default([]).safeParse(body.features);
    if (!features.success) throw new ValidationError({ features: 'validation.invalid' });
    const lines = features.data.map((f, i) => parsedAt(`features[${i}]`, policyFeature, f));
    const { features: _f, entitlements, ...rest } = body;
    const form = parsed(policyForm, {
      ...flags(rest),
      ...flags((entitlements as Record<string, unknown>) ?? {}),
      features: lines.map((l) => String(l.feature_id)),
    });
    return {
      name: form.name,
      isDefault: form.is_default,
      entitlements: toEntitlements(form),
      features: lines.map((l) => ({
        featureId: l.feature_id,
        maxConsumption: l.max_consumption,
        period: l.consumption_period,
        allowOverage: l.allow_overage,
        maxOverage: l.max_overage,
      })),
    };
  };
  const showPolicy = async (res: Response, policyId: number, status = 200) => {
    const p = (await policies.findById(ctx.db, policyId))!;
    res.status(status).json(policyJson(p, await policies.listFeatures(ctx.db, policyId)));
  };

  const loadProduct: RequestHandler = async (req, _res, next) => {
    const ids = await productIds(req);
    const product = orNotFound(await products.findById(ctx.db, idParam(req)));
    if (ids && !ids.includes(product.id)) throw notFound();
    req.product = product;
    next();
  };
  const loadPolicy: RequestHandler = async (req, _res, next) => {
    const ids = await policyIds(req);
    const policy = orNotFound(await policies.findById(ctx.db, idParam(req)));
    if (ids && !ids.includes(policy.id)) throw notFound();
    req.policy = policy;
    next();
  };

  return {
    loadProduct,
    loadPolicy,

    async products(req: Request, res: Response) {
      const f = query(z.object({ q: optionalText(200), archived: archivedFilter, ...pageParams }), req);
      const q = products.apiQuery(ctx.db, { ids: await productIds(req), q: f.q ?? undefined, archived: f.archived });
      res.json(await cursorPage(q, f, (rows) => rows.map((r) => productJson(products.fromApiRow(r)))));
    },

    product(req: Request, res: Response) {
      res.json(productJson(req.product!));
    },

    async createProduct(req: Request, res: Response) {
      const productId = await createProduct(ctx, req.actor, parsed(productCreateForm, bodyObject(req)));
      res.status(201).json(productJson((await products.findById(ctx.db, productId))!));
    },

    /** PATCH: name, description, authorization method (the code never changes). */
    async updateProduct(req: Request, res: Response) {
      const p = req.product!;
      const current = { name: p.name, authorization_method: p.authorizationMethod, description: p.description };
      await updateProduct(ctx, req.actor, p.id, parsed(productUpdateForm, { ...current, ...bodyObject(req) }));
      res.json(productJson((await products.findById(ctx.db, p.id))!));
    },

    async policies(req: Request, res: Response) {
      const f = query(
        z.object({ product_id: optionalWholeNumber(1, 2_147_483_647), archived: archivedFilter, ...pageParams }),
        req,
      );
      const q = policies.apiQuery(ctx.db, {
        ids: await policyIds(req),
        productId: f.product_id ?? undefined,
        archived: f.archived,
      });
      res.json(
        await cursorPage(q, f, async (rows) => {
          const list = rows.map((r) => policies.fromApiRow(r));
          const features = await policies.listFeaturesOf(
            ctx.db,
            list.map((p) => p.id),
          );
          return list.map((p) => policyJson(p, features.get(p.id) ?? []));
        }),
      );
    },

    policy: (req: Request, res: Response) => showPolicy(res, req.policy!.id),

    async createPolicy(req: Request, res: Response) {
      const body = bodyObject(req);
      const { product_id } = parsed(z.object({ product_id: id }), body);
      if (!(await products.findById(ctx.db, product_id)))
        throw new ValidationError({ product_id: 'validation.choice' });
      const policyId = await createPolicy(ctx, req.actor, product_id, policyInput(body));
      await showPolicy(res, policyId, 201);
    },

    /** PATCH: the fields sent replace the policy's (entitlements and features as a whole when sent). */
    async updatePolicy(req: Request, res: Response) {
      const p = req.policy!;
      const features = await policies.listFeatures(ctx.db, p.id);
      const current: Record<string, unknown> = {
        name: p.name,
        is_default: p.isDefault,
        entitlements: entitlementColumns(p),
        features: features.map(featureJson),
      };
      const body = bodyObject(req);
      const merged = {
        ...current,
        ...body,
        entitlements: { ...(current.entitlements as object), ...((body.entitlements as object) ?? {}) },
      };
      await updatePolicy(ctx, req.actor, p.id, policyInput(merged));
      await showPolicy(res, p.id);
    },
  };
}
