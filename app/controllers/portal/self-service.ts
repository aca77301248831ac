import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import * as licenses from '../../models/licenses.ts';
import * as devices from '../../models/devices.ts';
import * as products from '../../models/products.ts';
import * as auditEvents from '../../models/audit-events.ts';
import * as vouchers from '../../models/vouchers.ts';
import * as renewals from '../../models/renewal-requests.ts';
import { parseForm } from '../../forms/parse.ts';
import { policyForm, featureLimits, toEntitlements, entitlementValues } from '../../forms/policies.ts';
import { DEFAULT_ENTITLEMENTS } from '../../models/catalog.ts';
import { scopeOrders } from '../../policies/orders.ts';
import { RateLimiter } from '../../lib/rate-limiter.ts';
import { notFound } from '../../lib/errors.ts';
import { rateLimited } from '../../services/auth.ts';
import { createPolicyAsManager, releaseOwnDevice } from '../../services/portal.ts';
import { managerDashboard, statusCounts } from '../../services/dashboards.ts';
import { done, idParam } from '../helpers.ts';
import { onFailure } from '../../middleware/errors.ts';

/** Devices an end user may release per hour (self-service must not become a free-transfer loophole). */
export const RELEASES_PER_HOUR = { limit: 5, windowMs: 3600_000 };

export function portalHomeController(ctx: AppContext) {
  const settings = ctx.settings;

  const myLicenses = async (accountId: number) => {
    const now = ctx.clock.now();
    const [mine, active] = await Promise.all([
      licenses.listForLicenseUser(ctx.db, accountId, now),
      devices.activeForLicenseUser(ctx.db, accountId),
    ]);
    return mine.map((l) => ({ ...l, devices: active.filter((d) => d.licenseId === l.id) }));
  };

  const policyPage = async (
    req: Request,
    res: Response,
    status: number,
    values: Record<string, unknown>,
    errors: object,
  ) => {
    const allowed =
      req.user!.role === 'admin'
        ? await products.listActive(ctx.db)
        : await ctx
            .db('products')
            .whereIn('id', ctx.db('manager_quotas').where('account_id', req.user!.id).select('product_id'))
            .where('archived', false)
            .orderBy('name')
            .select('id', 'name');
    const productId = Number(values.product_id ?? allowed[0]?.id ?? 0);
    const features = productId ? await products.listFeatures(ctx.db, productId) : [];
    res.status(status).render('portal/policies/new', {
      title: req.t('admin.policies.new'),
      products: allowed,
      features,
      values: { product_id: productId, ...values },
      errors,
    });
  };

  return {
    async dashboard(req: Request, res: Response) {
      const account = req.user!;
      const now = ctx.clock.now();
      if (account.role === 'end_user') {
        const enabled = (await settings()).endUserSelfService;
        return res.render('portal/dashboard', {
          title: req.t('portal.dashboard.title'),
          selfService: enabled,
          myLicenses: enabled ? await myLicenses(account.id) : [],
          redeemedKeys: enabled ? await vouchers.licensesRedeemedBy(ctx.db, account.id) : [],
          myRenewals: enabled ? await renewals.listByRequester(ctx.db, account.id) : [],
          orders: [],
          counts: null,
          activity: [],
        });
      }
      const scope = scopeOrders(ctx.db, account);
      const [overview, counts, activity] = await Promise.all([
        managerDashboard(ctx.db, account, now),
        statusCounts(ctx.db, account, now),
        auditEvents.listForOrders(ctx.db, scope.clone().select('orders.id'), 10),
      ]);
      res.render('portal/dashboard', {
        title: req.t('portal.dashboard.title'),
        orders: overview.orders,
        overview,
        counts,
        activity,
        myLicenses: null,
        redeemedKeys: [],
        selfService: false,
        can: req.permissions,
      });
    },

    /** An end user releases one of their own devices: rate-limited per account, audited. */
    async release(req: Request, res: Response) {
      if (!(await settings()).endUserSelfService) throw notFound();
      const deviceId = idParam(req, 'deviceId');
      const state = await ctx.limiter.hit(RateLimiter.key('self-release', String(req.user!.id)), RELEASES_PER_HOUR);
      if (state.hits > RELEASES_PER_HOUR.limit) throw rateLimited(state.retryAfterSeconds);
      onFailure(res, { back: res.locals.paths.portal() });
      await releaseOwnDevice(ctx, req.actor, req.user!.id, deviceId);
      done(req, res, res.locals.paths.portal(), 'portal.self.released');
    },

    async newPolicy(req: Request, res: Response) {
      await policyPage(
        req,
        res,
        200,
        { ...entitlementValues(DEFAULT_ENTITLEMENTS), product_id: req.query.product, features: [] },
        {},
      );
    },

    async createPolicy(req: Request, res: Response) {
      const form = parseForm(policyForm, req.body);
      const productId = /^\d{1,10}$/.test(String(req.body?.product_id ?? '')) ? Number(req.body.product_id) : 0;
      const ids = form.ok ? form.data.features : [];
      const { limits, rules, errors: limitErrors } = featureLimits(req.body ?? {}, ids);
      if (!form.ok || !productId || Object.keys(limitErrors).length)
        return policyPage(req, res, 422, req.body, {
          ...(form.ok ? {} : form.errors),
          ...limitErrors,
          ...(productId ? {} : { product_id: 'validation.choice' }),
        });
      const input = {
        name: form.data.name,
        isDefault: false,
        entitlements: toEntitlements(form.data),
        features: ids.map((featureId) => ({
          featureId,
          maxConsumption: limits.get(featureId) ?? null,
          ...rules.get(featureId),
        })),
      };
      onFailure(res, {
        back: res.locals.paths.portal(),
        rerender: ({ fieldErrors: errors }) => void policyPage(req, res, 422, req.body, errors),
      });
      await createPolicyAsManager(ctx, req.actor, req.user!, productId, input);
      done(req, res, res.locals.paths.portal(), 'admin.policies.created');
    },
  };
}
