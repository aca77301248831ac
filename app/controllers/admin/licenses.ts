import type { Request, Response } from 'express';
import * as licenseUsers from '../../models/license-users.ts';
import type { AppContext } from '../../app.ts';
import * as licenses from '../../models/licenses.ts';
import * as devices from '../../models/devices.ts';
import * as products from '../../models/products.ts';
import * as auditEvents from '../../models/audit-events.ts';
import { parseForm } from '../../forms/parse.ts';
import { assignUserForm, licenseEditForm, limitForm } from '../../forms/console.ts';
import { entitlementValues, toEntitlements } from '../../forms/policies.ts';
import { pageCount, pageFrom } from '../../lib/pagination.ts';
import { normaliseLicenseKey } from '../../lib/license-keys.ts';
import * as service from '../../services/licenses.ts';
import * as users from '../../services/license-users.ts';
import { issueRefreshFile } from '../../services/license-files.ts';
import { done, idParam, listQuery } from '../helpers.ts';
import { onFailure } from '../../middleware/errors.ts';

/** List filters from the query string (shared by the order page and the license list). */
export function licenseFilterFrom(query: Record<string, string>): licenses.LicenseFilter {
  const status = (licenses.LICENSE_STATUSES as readonly string[]).includes(query.status ?? '') ? (query.status as licenses.LicenseStatus) : undefined;
  const product = query.product && /^\d{1,10}$/.test(query.product) ? Number(query.product) : undefined;
  return { status, productId: product, key: query.key ? normaliseLicenseKey(query.key) : undefined, userEmail: query.user };
}

const dateInput = (d: Date | null) => (d ? d.toISOString().slice(0, 10) : null);

export function adminLicensesController(ctx: AppContext) {

  const showPage = async (res: Response, license: licenses.License, status = 200, userValues: object = {}, userErrors: object = {}) => {
    const [deviceList, history, users, trail] = await Promise.all([
      devices.listForLicense(ctx.db, license.id),
      devices.listHistory(ctx.db, license.id),
      licenseUsers.usersOfLicense(ctx.db, license.id),
      auditEvents.list(ctx.db, { objectType: 'license', objectId: String(license.id) }, 50),
    ]);
    res.status(status).render('admin/licenses/show', { title: license.licenseKey ?? `${license.productName} #${license.id}`, license, devices: deviceList, history, users, trail, userValues, userErrors });
  };

  const editView = (req: Request, res: Response, status: number, license: licenses.License, values: object, errors: object) =>
    res.status(status).render('admin/licenses/edit', { title: req.t('admin.licenses.edit'), license, values, errors });

  return {
    async index(req: Request, res: Response) {
      const now = ctx.clock.now();
      const query = listQuery(req, ['status', 'product', 'key', 'user']);
      const filter = licenseFilterFrom(query);
      const { page, limit, offset } = pageFrom(req.query);
      const [rows, total, productList] = await Promise.all([licenses.list(ctx.db, filter, now, limit, offset), licenses.count(ctx.db, filter, now), products.listActive(ctx.db)]);
      res.render('admin/licenses/index', { title: req.t('admin.licenses.title'), licenses: rows, products: productList, query, page, pages: pageCount(total), total });
    },

    show: async (req: Request, res: Response) => showPage(res, req.license!),

    async edit(req: Request, res: Response) {
      const license = req.license!;
      editView(req, res, 200, license, { ...entitlementValues(license), start_date: dateInput(license.startDate), expires_at: dateInput(license.expiresAt), maintenance_until: dateInput(license.maintenanceUntil), note: license.note }, {});
    },

    async update(req: Request, res: Response) {
      const license = req.license!;
      // The type and air-gapped flag never change: the form cannot change them either.
      const body = { ...req.body, license_type: license.licenseType, airgapped: license.airgapped ? 'on' : '' };
      const parsed = parseForm(licenseEditForm, body);
      if (!parsed.ok) return editView(req, res, 422, license, body, parsed.errors);
      await service.updateLicense(ctx, req.actor, license.id, { entitlements: toEntitlements(parsed.data), startDate: parsed.data.start_date, expiresAt: parsed.data.expires_at, maintenanceUntil: parsed.data.maintenance_until, note: parsed.data.note });
      done(req, res, res.locals.paths.adminLicense(license.id), 'admin.licenses.updated');
    },

    /** The same refresh file the User Portal offers, from the same service. */
    async refresh(req: Request, res: Response) {
      const id = idParam(req);
      onFailure(res, { back: res.locals.paths.adminLicense(id) });
      const file = await issueRefreshFile({ ...ctx, defaultLanguage: ctx.config.defaultLanguage }, req.actor, id, idParam(req, 'deviceId'));
      res.set({ 'Content-Type': 'application/x-portico-license; charset=utf-8', 'Content-Disposition': `attachment; filename="${file.filename}"`, 'Cache-Control': 'no-store' }).send(file.text);
    },

    async disable(req: Request, res: Response) {
      const id = idParam(req);
      await service.setLicenseEnabled(ctx, req.actor, id, false);
      done(req, res, res.locals.paths.adminLicense(id), 'admin.licenses.disabled');
    },

    async enable(req: Request, res: Response) {
      const id = idParam(req);
      await service.setLicenseEnabled(ctx, req.actor, id, true);
      done(req, res, res.locals.paths.adminLicense(id), 'admin.licenses.enabled');
    },

    async reset(req: Request, res: Response) {
      const id = idParam(req);
      const count = await service.resetLicense(ctx, req.actor, id);
      done(req, res, res.locals.paths.adminLicense(id), 'admin.licenses.resetDone', { count });
    },

    async resetDevice(req: Request, res: Response) {
      const id = idParam(req);
      onFailure(res, { back: res.locals.paths.adminLicense(id) });
      await service.resetDevice(ctx, req.actor, id, idParam(req, 'deviceId'));
      done(req, res, res.locals.paths.adminLicense(id), 'admin.licenses.deviceReset');
    },

    async blacklistDevice(req: Request, res: Response) {
      const id = idParam(req);
      onFailure(res, { back: res.locals.paths.adminLicense(id) });
      await service.blacklistDevice(ctx, req.actor, id, idParam(req, 'deviceId'));
      done(req, res, res.locals.paths.adminLicense(id), 'admin.licenses.deviceBlacklisted');
    },

    async assignUser(req: Request, res: Response) {
      const license = req.license!;
      const parsed = parseForm(assignUserForm, req.body);
      if (!parsed.ok) return showPage(res, license, 422, req.body, parsed.errors);
      onFailure(res, {
        back: res.locals.paths.adminLicense(license.id),
        rerender: ({ fieldErrors: errors }) => void showPage(res, license, 422, req.body, errors),
      });
      await users.assignUser(ctx, req.actor, license.id, { email: parsed.data.email, name: parsed.data.name, maxActivations: parsed.data.max_activations });
      done(req, res, res.locals.paths.adminLicense(license.id), 'admin.licenses.userAssigned');
    },

    async setUserLimit(req: Request, res: Response) {
      const id = idParam(req);
      const parsed = parseForm(limitForm, req.body);
      if (!parsed.ok) return showPage(res, req.license!, 422, {}, { [`limit_${req.params.accountId}`]: parsed.errors.max_activations! });
      await users.setAssignmentLimit(ctx, req.actor, id, idParam(req, 'accountId'), parsed.data.max_activations);
      done(req, res, res.locals.paths.adminLicense(id), 'admin.licenses.userLimitChanged');
    },

    async unassignUser(req: Request, res: Response) {
      const id = idParam(req);
      onFailure(res, { back: res.locals.paths.adminLicense(id) });
      await users.unassignUser(ctx, req.actor, id, idParam(req, 'accountId'));
      done(req, res, res.locals.paths.adminLicense(id), 'admin.licenses.userUnassigned');
    },
  };
}
