import { licenseUsageView } from '../../services/usage-reports.ts';
import type { Request, Response } from 'express';
import * as licenseUsers from '../../models/license-users.ts';
import type { AppContext } from '../../app.ts';
import * as licenses from '../../models/licenses.ts';
import * as devices from '../../models/devices.ts';
import * as products from '../../models/products.ts';
import * as auditEvents from '../../models/audit-events.ts';
import { formData } from '../../forms/parse.ts';
import { licenseEditForm } from '../../forms/console.ts';
import { entitlementValues, toEntitlements } from '../../forms/policies.ts';
import { pageCount, pageFrom } from '../../lib/pagination.ts';
import { normaliseLicenseKey } from '../../lib/license-keys.ts';
import * as service from '../../services/licenses.ts';
import { deviceActions } from '../../policies/devices.ts';
import { listQuery } from '../helpers.ts';
import { licenseActions } from '../license-actions.ts';
import { onFailure } from '../../middleware/errors.ts';

/** List filters from the query string (shared by the order page and the license list). */
export function licenseFilterFrom(query: Record<string, string>): licenses.LicenseFilter {
  const status = (licenses.LICENSE_STATUSES as readonly string[]).includes(query.status ?? '')
    ? (query.status as licenses.LicenseStatus)
    : undefined;
  const product = query.product && /^\d{1,10}$/.test(query.product) ? Number(query.product) : undefined;
  const days = (v: string | undefined, max: number) =>
    v && /^\d{1,4}$/.test(v) && Number(v) >= 1 && Number(v) <= max ? Number(v) : undefined;
  return {
    status,
    productId: product,
    key: query.key ? normaliseLicenseKey(query.key) : undefined,
    userEmail: query.user,
    expiringDays: days(query.expiring, 366),
    staleDays: days(query.stale, 3660),
    seatsFull: query.seats === 'full' || undefined,
  };
}

/** The query-string keys of a license list (the filters of licenseFilterFrom). */
export const LICENSE_FILTER_KEYS = ['status', 'product', 'key', 'user', 'expiring', 'stale', 'seats'];

const dateInput = (d: Date | null) => (d ? d.toISOString().slice(0, 10) : null);

export function adminLicensesController(ctx: AppContext) {
  const showPage = async (
    _req: Request,
    res: Response,
    license: licenses.License,
    status = 200,
    userValues: object = {},
    userErrors: object = {},
  ) => {
    const [deviceList, history, users, trail] = await Promise.all([
      devices.listForLicense(ctx.db, license.id),
      devices.listHistory(ctx.db, license.id),
      licenseUsers.usersOfLicense(ctx.db, license.id),
      auditEvents.list(ctx.db, { objectType: 'license', objectId: String(license.id) }, 50),
    ]);
    res.status(status).render('admin/licenses/show', {
      title: license.licenseKey ?? `${license.productName} #${license.id}`,
      license,
      devices: deviceList,
      history,
      users,
      trail,
      userValues,
      userErrors,
      trueup: await licenseUsageView(ctx.db, license, deviceList, ctx.clock.now()),
      actions: (d: devices.Device) => deviceActions(license, d),
    });
  };

  const editView = (
    req: Request,
    res: Response,
    status: number,
    license: licenses.License,
    values: object,
    errors: object,
  ) =>
    res.status(status).render('admin/licenses/edit', { title: req.t('admin.licenses.edit'), license, values, errors });

  const shared = licenseActions(ctx, {
    pageOf: (res, id) => res.locals.paths.adminLicense(id),
    show: showPage,
    messages: { deviceReset: 'admin.licenses.deviceReset' },
  });

  return {
    ...shared,

    async index(req: Request, res: Response) {
      const now = ctx.clock.now();
      const query = listQuery(req, LICENSE_FILTER_KEYS);
      const filter = licenseFilterFrom(query);
      const { page, limit, offset } = pageFrom(req.query);
      const [rows, total, productList] = await Promise.all([
        licenses.list(ctx.db, filter, now, limit, offset),
        licenses.count(ctx.db, filter, now),
        products.listActive(ctx.db),
      ]);
      res.render('admin/licenses/index', {
        title: req.t('admin.licenses.title'),
        licenses: rows,
        products: productList,
        query,
        page,
        pages: pageCount(total),
        total,
      });
    },

    async edit(req: Request, res: Response) {
      const license = req.license!;
      editView(
        req,
        res,
        200,
        license,
        {
          ...entitlementValues(license),
          start_date: dateInput(license.startDate),
          expires_at: dateInput(license.expiresAt),
          maintenance_until: dateInput(license.maintenanceUntil),
          note: license.note,
        },
        {},
      );
    },

    async update(req: Request, res: Response) {
      const license = req.license!;
      // The type and air-gapped flag never change: the form cannot change them either.
      const body = { ...req.body, license_type: license.licenseType, airgapped: license.airgapped ? 'on' : '' };
      onFailure(res, { rerender: (err) => editView(req, res, 422, license, body, err.fieldErrors) });
      const form = formData(licenseEditForm, body);
      await service.updateLicense(ctx, req.actor, license.id, {
        entitlements: toEntitlements(form),
        startDate: form.start_date,
        expiresAt: form.expires_at,
        maintenanceUntil: form.maintenance_until,
        note: form.note,
      });
      shared.back(req, res, 'admin.licenses.updated');
    },
  };
}
