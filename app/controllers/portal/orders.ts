import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import * as orders from '../../models/orders.ts';
import * as licenses from '../../models/licenses.ts';
import * as customers from '../../models/customers.ts';
import * as managers from '../../models/managers.ts';
import * as products from '../../models/products.ts';
import { parseForm } from '../../forms/parse.ts';
import { addManagerForm, bundleLines, customerForm, portalIssueForm, portalOrderForm, BUNDLE_LINES } from '../../forms/portal.ts';
import { pageCount, pageFrom } from '../../lib/pagination.ts';
import { writeCsv } from '../../lib/csv.ts';
import { issuableFor } from '../../policies/portal.ts';
import { addOrderManager, createOrderAsManager, customersInScope, issueAsManager, removeOrderManager } from '../../services/portal.ts';
import { updateCustomer } from '../../services/customers.ts';
import { EXPORT_HEADER, dispatchLicenses, exportBatches, parseDispatchCsv } from '../../services/dispatch.ts';
import { mailPlacements, type Placement } from '../../services/license-users.ts';
import { done, idParam, listQuery } from '../helpers.ts';
import { licenseFilterFrom } from '../admin/licenses.ts';
import { scoped } from './context.ts';
import { normaliseLicenseKey } from '../../lib/license-keys.ts';
import { onFailure } from '../../middleware/errors.ts';

export function portalOrdersController(ctx: AppContext) {
  const load = scoped(ctx);

  const showPage = async (req: Request, res: Response, order: orders.Order, status = 200, issueValues: object = {}, issueErrors: object = {}, managerErrors: object = {}) => {
    const now = ctx.clock.now();
    const query = listQuery(req, ['status', 'product', 'key', 'user']);
    const filter = { ...licenseFilterFrom(query), orderId: order.id };
    const { page, limit, offset } = pageFrom(req.query);
    const canIssue = req.permissions.has('issue_license');
    const [rows, total, orderManagers, issuable, quotas, productList] = await Promise.all([
      licenses.list(ctx.db, filter, now, limit, offset),
      licenses.countInOrder(ctx.db, order, filter, now),
      orders.listManagers(ctx.db, order.id),
      canIssue ? issuableFor(ctx.db, req.user!) : Promise.resolve([]),
      req.user!.role === 'manager' ? managers.quotasOf(ctx.db, req.user!.id) : Promise.resolve([]),
      products.listActive(ctx.db),
    ]);
    res.status(status).render('portal/orders/show', { title: order.orderRef, order, licenses: rows, total, page, pages: pageCount(total), query, managers: orderManagers, issuable, quotas, products: productList, issueValues, issueErrors, managerErrors, can: req.permissions });
  };

  const newOrderPage = async (req: Request, res: Response, bundle: boolean, status = 200, values: Record<string, unknown> = {}, errors: object = {}) => {
    const [customerList, issuable] = await Promise.all([customersInScope(ctx.db, load.orderIds(req)), issuableFor(ctx.db, req.user!)]);
    res.status(status).render('portal/orders/new', { title: req.t(bundle ? 'portal.orders.newBundle' : 'portal.orders.new'), bundle, customers: customerList, issuable, lines: BUNDLE_LINES, values: { customer_choice: customerList.length ? 'existing' : 'new', kind: 'company', ...values }, errors });
  };

  const createOrder = (bundle: boolean) => async (req: Request, res: Response) => {
    const form = parseForm(portalOrderForm, req.body);
    const customer = req.body?.customer_choice === 'new' ? parseForm(customerForm, req.body) : null;
    const lines = bundle ? bundleLines(req.body ?? {}) : { lines: [], errors: {} };
    const errors = { ...(form.ok ? {} : form.errors), ...(customer && !customer.ok ? customer.errors : {}), ...lines.errors };
    if (!form.ok || (customer && !customer.ok) || Object.keys(lines.errors).length) return newOrderPage(req, res, bundle, 422, req.body, errors);
    let customerId: number | null = null;
    if (form.data.customer_choice === 'existing') {
      const inScope = await customersInScope(ctx.db, load.orderIds(req));
      if (!inScope.some((c) => c.id === form.data.customer_id)) return newOrderPage(req, res, bundle, 422, req.body, { customer_id: 'validation.choice' });
      customerId = form.data.customer_id;
    }
    const invited: Placement[] = [];
    const input = {
      customerId,
      customer: customer?.ok ? customer.data : null,
      order: { order_ref: form.data.order_ref, reference: form.data.reference, is_test: form.data.is_test, is_trial: form.data.is_trial },
      lines: lines.lines.map((l) => ({ policyId: l.policyId, quantity: l.quantity ?? undefined, emails: l.emails })),
    };
    onFailure(res, {
      back: res.locals.paths.portalOrders(),
      // A refused bundle line (quota, policy) is reported for the whole form: nothing was created.
      rerender: ({ fieldErrors: fieldErrors }) => void newOrderPage(req, res, bundle, 422, req.body, { ...fieldErrors, _form: Object.values(fieldErrors)[0]! }),
    });
    const orderId = await createOrderAsManager(ctx, req.actor, req.user!, input, invited);
    await mailPlacements(ctx, invited);
    done(req, res, res.locals.paths.portalOrder(orderId), 'portal.orders.created');
  };

  return {
    async index(req: Request, res: Response) {
      const query = listQuery(req, ['q']);
      const { page, limit, offset } = pageFrom(req.query);
      const scope = load.scope(req);
      const [rows, total] = await Promise.all([orders.listSummaries(scope, limit, offset, { q: query.q }), orders.countInScope(scope, { q: query.q })]);
      res.render('portal/orders/index', { title: req.t('portal.orders.title'), orders: rows, query, page, pages: pageCount(total), total, can: req.permissions });
    },

    show: async (req: Request, res: Response) => showPage(req, res, req.order!),

    async new(req: Request, res: Response) {
      await newOrderPage(req, res, false);
    },
    create: createOrder(false),

    async newBundle(req: Request, res: Response) {
      await newOrderPage(req, res, true);
    },
    createBundle: createOrder(true),

    async issue(req: Request, res: Response) {
      const order = req.order!;
      const form = parseForm(portalIssueForm, req.body);
      if (!form.ok) return showPage(req, res, order, 422, req.body, form.errors);
      const invited: Placement[] = [];
      onFailure(res, {
        back: res.locals.paths.portalOrder(order.id),
        rerender: ({ fieldErrors: errors }) => void showPage(req, res, order, 422, req.body, errors),
      });
      const issued = await issueAsManager(ctx, req.actor, req.user!, order.id, { policyId: form.data.policy_id, quantity: form.data.quantity ?? undefined, emails: form.data.emails }, invited);
      await mailPlacements(ctx, invited);
      done(req, res, res.locals.paths.portalOrder(order.id), 'admin.orders.issued', { count: issued.licenseIds.length });
    },

    async addManager(req: Request, res: Response) {
      const order = req.order!;
      const form = parseForm(addManagerForm, req.body);
      if (!form.ok) return showPage(req, res, order, 422, {}, {}, form.errors);
      onFailure(res, { back: res.locals.paths.portalOrder(order.id), rerender: ({ fieldErrors: errors }) => void showPage(req, res, order, 422, {}, {}, errors) });
      await addOrderManager(ctx, req.actor, order.id, form.data.email);
      done(req, res, res.locals.paths.portalOrder(order.id), 'portal.orders.managerAdded');
    },

    async removeManager(req: Request, res: Response) {
      const order = req.order!;
      onFailure(res, { back: res.locals.paths.portalOrder(order.id) });
      await removeOrderManager(ctx, req.actor, order.id, idParam(req, 'accountId'));
      done(req, res, res.locals.paths.portalOrder(order.id), 'portal.orders.managerRemoved');
    },

    async editCustomer(req: Request, res: Response) {
      const order = req.order!;
      const c = (await customers.findById(ctx.db, order.customerId))!;
      res.render('portal/orders/customer', { title: req.t('portal.orders.editCustomer'), order, values: { kind: c.kind, name: c.name, contact_name: c.contactName, email: c.email, phone: c.phone, address: c.address, reference: c.reference }, errors: {} });
    },

    async updateCustomer(req: Request, res: Response) {
      const order = req.order!;
      const form = parseForm(customerForm, req.body);
      if (!form.ok) return res.status(422).render('portal/orders/customer', { title: req.t('portal.orders.editCustomer'), order, values: req.body, errors: form.errors });
      await updateCustomer(ctx, req.actor, order.customerId, form.data);
      done(req, res, res.locals.paths.portalOrder(order.id), 'admin.customers.updated');
    },

    /** The order's licenses as CSV, streamed in batches. */
    async exportCsv(req: Request, res: Response) {
      const order = req.order!;
      res.set({ 'Content-Type': 'text/csv; charset=utf-8', 'Content-Disposition': `attachment; filename="order-${order.orderRef.replace(/[^\w.-]/g, '_')}-licenses.csv"`, 'Cache-Control': 'no-store' });
      await writeCsv(res, EXPORT_HEADER, exportBatches(ctx.db, order.id, ctx.clock.now()));
      res.end();
    },

    async dispatchForm(req: Request, res: Response) {
      const order = req.order!;
      const rows = await licenses.list(ctx.db, { orderId: order.id }, ctx.clock.now(), 500, 0);
      res.render('portal/orders/dispatch', { title: req.t('portal.dispatch.title'), order, licenses: rows.filter((l) => l.licenseKey), errors: {}, values: {} });
    },

    /** Dispatch from the form: an e-mail address per chosen license (email_<licenseId>). */
    async dispatch(req: Request, res: Response) {
      const order = req.order!;
      const items: { licenseId: number; email: string }[] = [];
      const errors: Record<string, string> = {};
      for (const [field, value] of Object.entries(req.body ?? {})) {
        const m = /^email_(\d{1,10})$/.exec(field);
        if (!m || typeof value !== 'string' || !value.trim()) continue;
        const address = value.trim().toLowerCase();
        if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(address) || address.length > 254) errors[field] = 'validation.email';
        else items.push({ licenseId: Number(m[1]), email: address });
      }
      const rerender = async (status: number, fieldErrors: Record<string, string>) => {
        const rows = await licenses.list(ctx.db, { orderId: order.id }, ctx.clock.now(), 500, 0);
        res.status(status).render('portal/orders/dispatch', { title: req.t('portal.dispatch.title'), order, licenses: rows.filter((l) => l.licenseKey), errors: fieldErrors, values: req.body });
      };
      if (Object.keys(errors).length) return rerender(422, errors);
      onFailure(res, { back: res.locals.paths.portalOrder(order.id), rerender: ({ fieldErrors: e }) => void rerender(422, e) });
      const sent = await dispatchLicenses(ctx, req.actor, order.id, items, req.lang);
      done(req, res, res.locals.paths.portalOrder(order.id), 'portal.dispatch.done', { count: sent });
    },

    /** Dispatch from an uploaded CSV of license key → e-mail. */
    async dispatchCsv(req: Request, res: Response) {
      const order = req.order!;
      const rerender = async (fieldErrors: Record<string, string>, vars: Record<string, unknown> = {}) => {
        const rows = await licenses.list(ctx.db, { orderId: order.id }, ctx.clock.now(), 500, 0);
        res.status(422).render('portal/orders/dispatch', { title: req.t('portal.dispatch.title'), order, licenses: rows.filter((l) => l.licenseKey), errors: fieldErrors, values: {}, csvVars: vars });
      };
      const file = req.file;
      if (!file || !file.buffer.length) return rerender({ csv: 'portal.dispatch.csvMissing' });
      const text = file.buffer.toString('utf8');
      if (text.includes('\u0000')) return rerender({ csv: 'portal.dispatch.csvNotText' });
      const { rows, badLines } = parseDispatchCsv(text);
      if (badLines.length) return rerender({ csv: 'portal.dispatch.csvBadLines' }, { lines: badLines.slice(0, 10).join(', ') });
      const keys = rows.map((r) => normaliseLicenseKey(r.key));
      const found = await ctx.db('licenses').where({ order_id: order.id }).whereIn('license_key', keys).select('id', 'license_key');
      const idByKey = new Map(found.map((f: { id: number; license_key: string }) => [f.license_key, Number(f.id)]));
      const unknown = keys.filter((k) => !idByKey.has(k));
      if (unknown.length) return rerender({ csv: 'portal.dispatch.csvUnknownKeys' }, { keys: unknown.slice(0, 5).join(', ') });
      onFailure(res, {
        back: res.locals.paths.portalOrder(order.id),
        rerender: ({ fieldErrors: e }) => void rerender(e),
      });
      const sent = await dispatchLicenses(ctx, req.actor, order.id, rows.map((row, i) => ({ licenseId: idByKey.get(keys[i]!)!, email: row.email })), req.lang);
      done(req, res, res.locals.paths.portalOrder(order.id), 'portal.dispatch.done', { count: sent });
    },
  };
}

