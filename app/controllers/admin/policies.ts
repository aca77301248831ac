import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import * as products from '../../models/products.ts';
import * as policies from '../../models/policies.ts';
import { DEFAULT_ENTITLEMENTS } from '../../models/catalog.ts';
import { parseForm } from '../../forms/parse.ts';
import { entitlementValues, featureLimits, policyForm, toEntitlements } from '../../forms/policies.ts';
import * as service from '../../services/policies.ts';
import { done, refuse, onPage } from '../helpers.ts';
import { onFailure } from '../../middleware/errors.ts';

export function adminPoliciesController(ctx: AppContext) {
  interface PolicyPage {
    status: number;
    product: products.Product;
    policy: policies.Policy | null;
    values: Record<string, unknown>;
    errors?: object;
  }
  const render = async (req: Request, res: Response, { status, product, policy, values, errors = {} }: PolicyPage) => {
    const features = await products.listFeatures(ctx.db, product.id);
    res.status(status).render(policy ? 'admin/policies/edit' : 'admin/policies/new', {
      title: req.t(policy ? 'admin.policies.edit' : 'admin.policies.new'),
      product,
      policy,
      features,
      values,
      errors,
    });
  };

  /** Parses the form into service input, or re-renders it with 422. */
  const parse = async (req: Request, res: Response, product: products.Product, policy: policies.Policy | null) => {
    const form = parseForm(policyForm, req.body);
    const ids = form.ok ? form.data.features : [];
    const { limits, rules, errors: limitErrors } = featureLimits(req.body ?? {}, ids);
    if (!form.ok || Object.keys(limitErrors).length) {
      await render(req, res, {
        status: 422,
        product,
        policy,
        values: { ...req.body, features: [].concat(req.body?.features ?? []).map(Number) },
        errors: { ...(form.ok ? {} : form.errors), ...limitErrors },
      });
      return undefined;
    }
    return {
      name: form.data.name,
      isDefault: form.data.is_default,
      entitlements: toEntitlements(form.data),
      features: ids.map((featureId) => ({
        featureId,
        maxConsumption: limits.get(featureId) ?? null,
        ...rules.get(featureId),
      })),
    };
  };

  const valuesOf = (p: policies.Policy, features: policies.PolicyFeature[]) => ({
    name: p.name,
    is_default: p.isDefault,
    ...entitlementValues(p),
    features: features.map((f) => f.featureId),
    ...Object.fromEntries(
      features.flatMap((f) => [
        [`max_consumption_${f.featureId}`, f.maxConsumption],
        [`consumption_period_${f.featureId}`, f.period ?? 'license'],
        [`allow_overage_${f.featureId}`, f.allowOverage ?? false],
        [`max_overage_${f.featureId}`, f.maxOverage ?? null],
      ]),
    ),
  });

  return {
    async new(req: Request, res: Response) {
      const product = req.product!;
      await render(req, res, {
        status: 200,
        product,
        policy: null,
        values: { ...entitlementValues(DEFAULT_ENTITLEMENTS), features: [] },
      });
    },

    async create(req: Request, res: Response) {
      const product = req.product!;
      const input = await parse(req, res, product, null);
      if (!input) return;
      onFailure(res, {
        back: res.locals.paths.adminProduct(product.id),
        rerender: ({ fieldErrors: errors }) =>
          void render(req, res, { status: 422, product, policy: null, values: req.body, errors }),
      });
      const policyId = await service.createPolicy(ctx, req.actor, product.id, input);
      done(req, res, res.locals.paths.adminPolicy(policyId), 'admin.policies.created');
    },

    async show(req: Request, res: Response) {
      const policy = req.policy!;
      const [product, features, policyFeatures] = await Promise.all([
        products.findById(ctx.db, policy.productId),
        products.listFeatures(ctx.db, policy.productId),
        policies.listFeatures(ctx.db, policy.id),
      ]);
      res.render('admin/policies/show', { title: policy.name, policy, product, features, policyFeatures });
    },

    async edit(req: Request, res: Response) {
      const policy = req.policy!;
      const product = (await products.findById(ctx.db, policy.productId))!;
      if (policy.airgapped)
        return refuse(req, res, res.locals.paths.adminPolicy(policy.id), 'policies.airgappedLocked');
      await render(req, res, {
        status: 200,
        product,
        policy,
        values: valuesOf(policy, await policies.listFeatures(ctx.db, policy.id)),
      });
    },

    async update(req: Request, res: Response) {
      const policy = req.policy!;
      const product = (await products.findById(ctx.db, policy.productId))!;
      const back = res.locals.paths.adminPolicy(policy.id);
      // Checked before the form so a frozen policy never shows field errors as if it could be saved.
      if (policy.airgapped) return refuse(req, res, back, 'policies.airgappedLocked');
      const input = await parse(req, res, product, policy);
      if (!input) return;
      onFailure(res, {
        back,
        rerender: ({ fieldErrors: errors }) =>
          void render(req, res, { status: 422, product, policy, values: req.body, errors }),
      });
      await service.updatePolicy(ctx, req.actor, policy.id, input);
      done(req, res, back, 'admin.policies.updated');
    },

    async makeDefault(req: Request, res: Response) {
      const saved = onPage(req, res, res.locals.paths.adminPolicy(req.policy!.id));
      await service.makeDefaultPolicy(ctx, req.actor, req.policy!.id);
      saved('admin.policies.madeDefault');
    },

    async archive(req: Request, res: Response) {
      const saved = onPage(req, res, res.locals.paths.adminPolicy(req.policy!.id));
      await service.setPolicyArchived(ctx, req.actor, req.policy!.id, true);
      saved('admin.policies.archived');
    },

    async unarchive(req: Request, res: Response) {
      const saved = onPage(req, res, res.locals.paths.adminPolicy(req.policy!.id));
      await service.setPolicyArchived(ctx, req.actor, req.policy!.id, false);
      saved('admin.policies.unarchived');
    },
  };
}
