import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import * as orders from '../../models/orders.ts';
import * as licenses from '../../models/licenses.ts';
import * as customers from '../../models/customers.ts';
import * as managers from '../../models/managers.ts';
import * as products from '../../models/products.ts';
import { formData, parseForm } from '../../forms/parse.ts';
import {
  addManagerForm,
  bundleLines,
  customerForm,
  dispatchForm,
  portalIssueForm,
  portalOrderForm,
  roleChoiceForm,
  BUNDLE_LINES,
} from '../../forms/portal.ts';
import { pageCount, pageFrom } from '../../lib/pagination.ts';
import { writeCsv } from '../../lib/csv.ts';
import { issuableFor } from '../../policies/portal.ts';
import { createOrderAsManager, customersInScope, issueAndInvite } from '../../services/portal.ts';
import { inviteToOrder, subtree, removeFromOrder, rolesOfferable, setRoleOnOrder } from '../../services/delegation.ts';
import { updateCustomer } from '../../services/customers.ts';
import { EXPORT_HEADER, dispatchFromCsv, dispatchLicenses, exportBatches } from '../../services/dispatch.ts';
import { mailPlacements, type Placement } from '../../services/license-users.ts';
import { mailingFrom, deliveryKey, done, flashDispatch, idParam, listQuery, orderListPage } from '../helpers.ts';
import { LICENSE_FILTER_KEYS, licenseFilterFrom } from '../admin/licenses.ts';
import { scoped } from './context.ts';
import * as renewals from '../../models/renewal-requests.ts';
import { onFailure } from '../../middleware/errors.ts';

export function portalOrdersController(ctx: AppContext) {
  const load = scoped(ctx);

  interface OrderPage {
    status?: number;
    issueValues?: object;
    issueErrors?: object;
    managerErrors?: object;
  }
  /** The managers of the order a user sees: everyone for an admin; for a manager, themselves and those below them. */
  const visibleManagers = async (req: Request, orderId: number) => {
    const all = await orders.listManagers(ctx.db, orderId);
    if (req.user!.role === 'admin') return all.map((m) => ({ ...m, below: true }));
    const below = subtree(
      all.map((m) => ({ accountId: m.id, invitedBy: m.invitedBy })),
      req.user!,
    );
    return all.filter((m) => m.id === req.user!.id || below.has(m.id)).map((m) => ({ ...m, below: below.has(m.id) }));
  };

  const showPage = async (
    req: Request,
    res: Response,
    order: orders.Order,
    { status = 200, issueValues = {}, issueErrors = {}, managerErrors = {} }: OrderPage = {},
  ) => {
    const now = ctx.clock.now();
    const query = listQuery(req, LICENSE_FILTER_KEYS);
    const filter = { ...licenseFilterFrom(query), orderId: order.id };
    const { page, limit, offset } = pageFrom(req.query);
    const canIssue = req.permissions.has('issue_license');
    const [rows, total, orderManagers, issuable, quotas, productList, offerable, renewalRequests] = await Promise.all([
      licenses.list(ctx.db, filter, now, limit, offset),
      licenses.countInOrder(ctx.db, order, filter, now),
      visibleManagers(req, order.id),
      canIssue ? issuableFor(ctx.db, req.user!) : Promise.resolve([]),
      req.user!.role === 'manager' ? managers.quotasOf(ctx.db, req.user!.id) : Promise.resolve([]),
      products.listActive(ctx.db),
      req.permissions.has('manage_managers') ? rolesOfferable(ctx.db, req.user!, order.id) : Promise.resolve([]),
      renewals.listForOrder(ctx.db, order.id),
    ]);
    res.status(status).render('portal/orders/show', {
      title: order.orderRef,
      order,
      licenses: rows,
      total,
      page,
      pages: pageCount(total),
      query,
      managers: orderManagers,
      roles: offerable,
      issuable,
      quotas,
      products: productList,
      issueValues,
      issueErrors,
      managerErrors,
      renewalRequests,
      can: req.permissions,
    });
  };

  /**
   * How a form of the order page answers a failure: a validation error shows the page again, its
   * messages placed by `place` (the issue form's or the managers form's); a refused change flashes
   * why and goes back to the page.
   */
  const orderForm = (
    req: Request,
    res: Response,
    place: (errors: Record<string, string>) => {
      issueValues?: object;
      issueErrors?: object;
      managerErrors?: object;
    } = () => ({}),
  ) =>
    onFailure(res, {
      back: res.locals.paths.portalOrder(req.order!.id),
      rerender: (err) => {
        const p = place(err.fieldErrors);
        return showPage(req, res, req.order!, { status: 422, ...p });
      },
    });
  const back = (req: Request, res: Response, messageKey: string, vars: Record<string, unknown> = {}) =>
    done(req, res, res.locals.paths.portalOrder(req.order!.id), messageKey, vars);

  const customerPage = (req: Request, res: Response, status: number, values: object, errors: object = {}) =>
    res.status(status).render('portal/orders/customer', {
      title: req.t('portal.orders.editCustomer'),
      order: req.order!,
      values,
      errors,
    });

  /** The dispatch page (the order's licenses that have a key, at most 500). */
  const dispatchPage = async (
    req: Request,
    res: Response,
    status: number,
    extra: { errors?: object; values?: object; csvVars?: object } = {},
  ) => {
    const rows = await licenses.list(ctx.db, { orderId: req.order!.id }, ctx.clock.now(), 500, 0);
    res.status(status).render('portal/orders/dispatch', {
      title: req.t('portal.dispatch.title'),
      order: req.order!,
      licenses: rows.filter((l) => l.licenseKey),
      errors: {},
      values: {},
      ...extra,
    });
  };

  const newOrderPage = async (
    req: Request,
    res: Response,
    bundle: boolean,
    status = 200,
    values: Record<string, unknown> = {},
    errors: object = {},
  ) => {
    const [customerList, issuable] = await Promise.all([
      customersInScope(ctx.db, load.orderIds(req)),
      issuableFor(ctx.db, req.user!),
    ]);
    res.status(status).render('portal/orders/new', {
      title: req.t(bundle ? 'portal.orders.newBundle' : 'portal.orders.new'),
      bundle,
      customers: customerList,
      issuable,
      lines: BUNDLE_LINES,
      values: { customer_choice: customerList.length ? 'existing' : 'new', kind: 'company', ...values },
      errors,
    });
  };

  const createOrder = (bundle: boolean) => async (req: Request, res: Response) => {
    const form = parseForm(portalOrderForm, req.body);
    const customer = req.body?.customer_choice === 'new' ? parseForm(customerForm, req.body) : null;
    const lines = bundle ? bundleLines(req.body ?? {}) : { lines: [], errors: {} };
    const errors = {
      ...(form.ok ? {} : form.errors),
      ...(customer && !customer.ok ? customer.errors : {}),
      ...lines.errors,
    };
    if (!form.ok || (customer && !customer.ok) || Object.keys(lines.errors).length)
      return newOrderPage(req, res, bundle, 422, req.body, errors);
    let customerId: number | null = null;
    if (form.data.customer_choice === 'existing') {
      const inScope = await customersInScope(ctx.db, load.orderIds(req));
      if (!inScope.some((c) => c.id === form.data.customer_id))
        return newOrderPage(req, res, bundle, 422, req.body, { customer_id: 'validation.choice' });
      customerId = form.data.customer_id;
    }
    const invited: Placement[] = [];
    const input = {
      customerId,
      customer: customer?.ok ? customer.data : null,
      order: {
        order_ref: form.data.order_ref,
        reference: form.data.reference,
        is_test: form.data.is_test,
        is_trial: form.data.is_trial,
        // Made on a host of a branding: the order's mail (reminders, digests) carries that branding.
        branding_id: req.branding.id,
      },
      lines: lines.lines.map((l) => ({ policyId: l.policyId, quantity: l.quantity ?? undefined, emails: l.emails })),
    };
    onFailure(res, {
      back: res.locals.paths.portalOrders(),
      // A refused bundle line (quota, policy) is reported for the whole form: nothing was created.
      rerender: ({ fieldErrors }) =>
        void newOrderPage(req, res, bundle, 422, req.body, { ...fieldErrors, _form: Object.values(fieldErrors)[0]! }),
    });
    const orderId = await createOrderAsManager(ctx, req.actor, req.user!, input, invited);
    await mailPlacements(mailingFrom(ctx, req), invited);
    done(req, res, res.locals.paths.portalOrder(orderId), 'portal.orders.created');
  };

  return {
    async index(req: Request, res: Response) {
      res.render('portal/orders/index', {
        title: req.t('portal.orders.title'),
        ...(await orderListPage(req, load.scope(req))),
        can: req.permissions,
      });
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
      orderForm(req, res, (errors) => ({ issueValues: req.body, issueErrors: errors }));
      const form = formData(portalIssueForm, req.body);
      const issued = await issueAndInvite(mailingFrom(ctx, req), req.actor, req.user!, req.order!.id, {
        policyId: form.policy_id,
        quantity: form.quantity ?? undefined,
        emails: form.emails,
      });
      back(req, res, 'counts.licensesIssued', { count: issued.licenseIds.length });
    },

    async addManager(req: Request, res: Response) {
      orderForm(req, res, (errors) => ({ managerErrors: errors }));
      const form = formData(addManagerForm, req.body);
      const delivery = await inviteToOrder(mailingFrom(ctx, req), req.actor, req.user!, req.order!.id, {
        email: form.email,
        name: form.name ?? '',
        roleId: form.role_id,
        language: req.user!.language,
      });
      // A new account was invited by mail: say whether the mail went; an existing manager is just added.
      if (delivery) back(req, res, deliveryKey('managerInvited', delivery), { email: form.email });
      else back(req, res, 'portal.orders.managerAdded');
    },

    async setManagerRole(req: Request, res: Response) {
      orderForm(req, res);
      const form = formData(roleChoiceForm, req.body);
      await setRoleOnOrder(ctx, req.actor, req.user!, req.order!.id, idParam(req, 'accountId'), form.role_id);
      back(req, res, 'portal.orders.managerRoleSaved');
    },

    async removeManager(req: Request, res: Response) {
      orderForm(req, res);
      await removeFromOrder(ctx, req.actor, req.user!, req.order!.id, idParam(req, 'accountId'));
      back(req, res, 'portal.orders.managerRemoved');
    },

    async editCustomer(req: Request, res: Response) {
      customerPage(req, res, 200, customers.fieldsOf((await customers.findById(ctx.db, req.order!.customerId))!));
    },

    async updateCustomer(req: Request, res: Response) {
      onFailure(res, { rerender: (err) => customerPage(req, res, 422, req.body, err.fieldErrors) });
      await updateCustomer(ctx, req.actor, req.order!.customerId, formData(customerForm, req.body));
      back(req, res, 'admin.customers.updated');
    },

    /** The order's licenses as CSV, streamed in batches. */
    async exportCsv(req: Request, res: Response) {
      const order = req.order!;
      res.set({
        'Content-Type': 'text/csv; charset=utf-8',
        'Content-Disposition': `attachment; filename="order-${order.orderRef.replace(/[^\w.-]/g, '_')}-licenses.csv"`,
        'Cache-Control': 'no-store',
      });
      await writeCsv(res, EXPORT_HEADER, exportBatches(ctx.db, order.id, ctx.clock.now()));
      res.end();
    },

    dispatchForm: (req: Request, res: Response) => dispatchPage(req, res, 200),

    /** Dispatch from the form: an e-mail address per chosen license (email_<licenseId>). */
    async dispatch(req: Request, res: Response) {
      onFailure(res, {
        back: res.locals.paths.portalOrder(req.order!.id),
        rerender: (err) => dispatchPage(req, res, 422, { errors: err.fieldErrors, values: req.body }),
      });
      const result = await dispatchLicenses(
        mailingFrom(ctx, req),
        req.actor,
        req.order!.id,
        formData(dispatchForm, req.body ?? {}),
      );
      flashDispatch(req, result);
      res.redirect(303, res.locals.paths.portalOrder(req.order!.id));
    },

    /** Dispatch from an uploaded CSV of license key → e-mail. */
    async dispatchCsv(req: Request, res: Response) {
      onFailure(res, {
        back: res.locals.paths.portalOrder(req.order!.id),
        rerender: (err) => dispatchPage(req, res, 422, { errors: err.fieldErrors, csvVars: err.vars }),
      });
      const result = await dispatchFromCsv(mailingFrom(ctx, req), req.actor, req.order!.id, req.file?.buffer);
      flashDispatch(req, result);
      res.redirect(303, res.locals.paths.portalOrder(req.order!.id));
    },
  };
}
