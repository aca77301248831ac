import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import * as products from '../../models/products.ts';
import * as policies from '../../models/policies.ts';
import { formData, parseForm } from '../../forms/parse.ts';
import { featureCreateForm, featureUpdateForm, productCreateForm, productUpdateForm } from '../../forms/products.ts';
import { pageCount, pageFrom } from '../../lib/pagination.ts';
import * as service from '../../services/products.ts';
import { done, idParam, listQuery, orNotFound, onPage } from '../helpers.ts';
import { onFailure } from '../../middleware/errors.ts';

export function adminProductsController(ctx: AppContext) {
  interface FormPage {
    status: number;
    view: 'new' | 'edit';
    values: object;
    errors?: object;
    product?: products.Product;
  }
  const formView = (req: Request, res: Response, { status, view, values, errors = {}, product }: FormPage) =>
    res.status(status).render(`admin/products/${view}`, {
      title: req.t(view === 'new' ? 'admin.products.new' : 'admin.products.edit'),
      values,
      errors,
      product,
    });

  const showView = async (
    res: Response,
    product: products.Product,
    status = 200,
    featureValues: object = {},
    featureErrors: object = {},
  ) => {
    const [features, productPolicies] = await Promise.all([
      products.listFeatures(ctx.db, product.id),
      policies.listForProduct(ctx.db, product.id),
    ]);
    res.status(status).render('admin/products/show', {
      title: product.name,
      product,
      features,
      policies: productPolicies,
      featureValues,
      featureErrors,
      hasLicenses: await products.hasLicenses(ctx.db, product.id),
    });
  };

  return {
    async index(req: Request, res: Response) {
      const query = listQuery(req, ['q', 'archived']);
      const filter = {
        q: query.q,
        archived: query.archived === 'yes' ? true : query.archived === 'all' ? undefined : false,
      };
      const { page, limit, offset } = pageFrom(req.query);
      const [rows, total] = await Promise.all([
        products.list(ctx.db, filter, limit, offset),
        products.count(ctx.db, filter),
      ]);
      res.render('admin/products/index', {
        title: req.t('admin.products.title'),
        products: rows,
        query,
        page,
        pages: pageCount(total),
        total,
      });
    },

    new(req: Request, res: Response) {
      formView(req, res, { status: 200, view: 'new', values: { authorization_method: 'key' } });
    },

    async create(req: Request, res: Response) {
      onFailure(res, {
        back: res.locals.paths.adminProducts(),
        rerender: (err) => formView(req, res, { status: 422, view: 'new', values: req.body, errors: err.fieldErrors }),
      });
      const form = formData(productCreateForm, req.body);
      const productId = await service.createProduct(ctx, req.actor, form);
      done(req, res, res.locals.paths.adminProduct(productId), 'admin.products.created');
    },

    async show(req: Request, res: Response) {
      await showView(res, req.product!);
    },

    async edit(req: Request, res: Response) {
      const product = req.product!;
      formView(req, res, {
        status: 200,
        view: 'edit',
        values: {
          name: product.name,
          description: product.description,
          authorization_method: product.authorizationMethod,
        },
        product,
      });
    },

    async update(req: Request, res: Response) {
      const product = req.product!;
      onFailure(res, {
        back: res.locals.paths.adminProduct(product.id),
        rerender: (err) =>
          formView(req, res, { status: 422, view: 'edit', values: req.body, errors: err.fieldErrors, product }),
      });
      const form = formData(productUpdateForm, req.body);
      await service.updateProduct(ctx, req.actor, product.id, form);
      done(req, res, res.locals.paths.adminProduct(product.id), 'admin.products.updated');
    },

    async archive(req: Request, res: Response) {
      const saved = onPage(req, res, res.locals.paths.adminProduct(req.product!.id));
      await service.setProductArchived(ctx, req.actor, req.product!.id, true);
      saved('admin.products.archived');
    },

    async unarchive(req: Request, res: Response) {
      const saved = onPage(req, res, res.locals.paths.adminProduct(req.product!.id));
      await service.setProductArchived(ctx, req.actor, req.product!.id, false);
      saved('admin.products.unarchived');
    },

    async destroy(req: Request, res: Response) {
      onPage(req, res, res.locals.paths.adminProduct(req.product!.id));
      await service.deleteProduct(ctx, req.actor, req.product!.id);
      done(req, res, res.locals.paths.adminProducts(), 'admin.products.deleted');
    },

    async createFeature(req: Request, res: Response) {
      const product = req.product!;
      onFailure(res, {
        back: res.locals.paths.adminProduct(product.id),
        rerender: (err) => showView(res, product, 422, req.body, err.fieldErrors),
      });
      const form = formData(featureCreateForm, req.body);
      await service.addFeature(ctx, req.actor, product.id, form);
      done(req, res, res.locals.paths.adminProduct(product.id), 'admin.features.created');
    },

    async updateFeature(req: Request, res: Response) {
      const productId = idParam(req);
      const featureId = idParam(req, 'featureId');
      const form = parseForm(featureUpdateForm, req.body);
      if (!form.ok) {
        const product = orNotFound(await products.findById(ctx.db, productId));
        return showView(res, product, 422, {}, { [`feature_${featureId}`]: form.errors.name! });
      }
      await service.renameFeature(ctx, req.actor, productId, featureId, form.data.name);
      done(req, res, res.locals.paths.adminProduct(productId), 'admin.features.updated');
    },

    async destroyFeature(req: Request, res: Response) {
      const productId = idParam(req);
      onFailure(res, { back: res.locals.paths.adminProduct(productId) });
      await service.deleteFeature(ctx, req.actor, productId, idParam(req, 'featureId'));
      done(req, res, res.locals.paths.adminProduct(productId), 'admin.features.deleted');
    },
  };
}
