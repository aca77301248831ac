import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import * as customers from '../../models/customers.ts';
import * as orders from '../../models/orders.ts';
import { formData } from '../../forms/parse.ts';
import { customerForm, orderForm } from '../../forms/console.ts';
import { pageCount, pageFrom } from '../../lib/pagination.ts';
import * as service from '../../services/customers.ts';
import { done, listQuery, onPage } from '../helpers.ts';
import { onFailure } from '../../middleware/errors.ts';
import { brandingChoices } from './orders.ts';

export function adminCustomersController(ctx: AppContext) {
  const form = (
    req: Request,
    res: Response,
    status: number,
    customer: customers.Customer | null,
    values: object,
    errors: object,
  ) =>
    res.status(status).render(customer ? 'admin/customers/edit' : 'admin/customers/new', {
      title: req.t(customer ? 'admin.customers.edit' : 'admin.customers.new'),
      customer,
      values,
      errors,
    });
  const orderFormView = async (
    req: Request,
    res: Response,
    status: number,
    customer: customers.Customer,
    values: object,
    errors: object,
  ) =>
    res.status(status).render('admin/orders/new', {
      title: req.t('admin.orders.new'),
      customer,
      values,
      errors,
      brandingOptions: await brandingChoices(ctx.db),
    });

  return {
    async index(req: Request, res: Response) {
      const query = listQuery(req, ['q']);
      const { page, limit, offset } = pageFrom(req.query);
      const [rows, total] = await Promise.all([
        customers.list(ctx.db, query.q, limit, offset),
        customers.count(ctx.db, query.q),
      ]);
      res.render('admin/customers/index', {
        title: req.t('admin.customers.title'),
        customers: rows,
        query,
        page,
        pages: pageCount(total),
        total,
      });
    },

    new: (req: Request, res: Response) => form(req, res, 200, null, { kind: 'company' }, {}),

    async create(req: Request, res: Response) {
      onFailure(res, { rerender: (err) => form(req, res, 422, null, req.body, err.fieldErrors) });
      const parsed = formData(customerForm, req.body);
      const id = await service.createCustomer(ctx, req.actor, parsed);
      done(req, res, res.locals.paths.adminCustomer(id), 'admin.customers.created');
    },

    async show(req: Request, res: Response) {
      const customer = req.customer!;
      const { page, limit, offset } = pageFrom(req.query);
      const [rows, total] = await Promise.all([
        orders.listSummaries(ctx.db('orders'), limit, offset, { customerId: customer.id }),
        orders.countInScope(ctx.db('orders'), { customerId: customer.id }),
      ]);
      res.render('admin/customers/show', {
        title: customer.name,
        customer,
        orders: rows,
        page,
        pages: pageCount(total),
      });
    },

    async edit(req: Request, res: Response) {
      const customer = req.customer!;
      form(req, res, 200, customer, customers.fieldsOf(customer), {});
    },

    async update(req: Request, res: Response) {
      const customer = req.customer!;
      onFailure(res, { rerender: (err) => form(req, res, 422, customer, req.body, err.fieldErrors) });
      const parsed = formData(customerForm, req.body);
      await service.updateCustomer(ctx, req.actor, customer.id, parsed);
      done(req, res, res.locals.paths.adminCustomer(customer.id), 'admin.customers.updated');
    },

    async destroy(req: Request, res: Response) {
      onPage(req, res, res.locals.paths.adminCustomer(req.customer!.id));
      await service.deleteCustomer(ctx, req.actor, req.customer!.id);
      done(req, res, res.locals.paths.adminCustomers(), 'admin.customers.deleted');
    },

    async newOrder(req: Request, res: Response) {
      const customer = req.customer!;
      await orderFormView(req, res, 200, customer, {}, {});
    },

    async createOrder(req: Request, res: Response) {
      const customer = req.customer!;
      onFailure(res, {
        back: res.locals.paths.adminCustomer(customer.id),
        rerender: (err) => orderFormView(req, res, 422, customer, req.body, err.fieldErrors),
      });
      const parsed = formData(orderForm, req.body);
      const orderId = await service.createOrder(ctx, req.actor, customer.id, parsed);
      done(req, res, res.locals.paths.adminOrder(orderId), 'admin.orders.created');
    },
  };
}
