import type { Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import type * as licenses from '../models/licenses.ts';
import { formData } from '../forms/parse.ts';
import { assignUserForm, limitForm } from '../forms/console.ts';
import { onFailure } from '../middleware/errors.ts';
import * as service from '../services/licenses.ts';
import * as users from '../services/license-users.ts';
import { issueRefreshFile } from '../services/license-files.ts';
import { mailingFrom, done, idParam } from './helpers.ts';

/**
 * The license actions the console and the User Portal share (the route lines load `req.license` and
 * `req.device` and, in the portal, check the permission): each is a service call plus its answer.
 * The areas differ only in the license page (`show`) and its URL (`pageOf`). The acting account is
 * passed to the license-user services, which apply account ownership (an admin owns every end user).
 */
export interface LicensePage {
  pageOf: (res: Response, licenseId: number) => string;
  show: (
    req: Request,
    res: Response,
    license: licenses.License,
    status?: number,
    userValues?: object,
    userErrors?: object,
  ) => Promise<void>;
  /** Message keys where the areas word a result differently. */
  messages: { deviceReset: string };
}

export function licenseActions(ctx: AppContext, page: LicensePage) {
  /**
   * How a form of the license page answers a failure: a validation error shows the page again, its
   * messages placed by `place`; a refused change flashes why and goes back to the page.
   */
  const licenseForm = (
    req: Request,
    res: Response,
    place: (errors: Record<string, string>) => { values?: object; errors: object } = (errors) => ({ errors }),
  ) =>
    onFailure(res, {
      back: page.pageOf(res, req.license!.id),
      rerender: (err) => {
        const placed = place(err.fieldErrors);
        return page.show(req, res, req.license!, 422, placed.values ?? {}, placed.errors);
      },
    });
  const back = (req: Request, res: Response, messageKey: string, vars: Record<string, unknown> = {}) =>
    done(req, res, page.pageOf(res, req.license!.id), messageKey, vars);

  return {
    licenseForm,
    back,

    show: (req: Request, res: Response) => page.show(req, res, req.license!),

    /** A refresh license file for an offline device: new entitlements without a new request. */
    async refresh(req: Request, res: Response) {
      licenseForm(req, res);
      const file = await issueRefreshFile(ctx, req.actor, req.license!.id, req.device!.id);
      res
        .set({
          'Content-Type': 'application/x-portico-license; charset=utf-8',
          'Content-Disposition': `attachment; filename="${file.filename}"`,
          'Cache-Control': 'no-store',
        })
        .send(file.text);
    },

    async disable(req: Request, res: Response) {
      await service.setLicenseEnabled(ctx, req.actor, req.license!.id, false);
      back(req, res, 'admin.licenses.disabled');
    },

    async enable(req: Request, res: Response) {
      await service.setLicenseEnabled(ctx, req.actor, req.license!.id, true);
      back(req, res, 'admin.licenses.enabled');
    },

    async reset(req: Request, res: Response) {
      const count = await service.resetLicense(ctx, req.actor, req.license!.id);
      back(req, res, 'counts.licenseResetDone', { count });
    },

    async resetDevice(req: Request, res: Response) {
      licenseForm(req, res);
      await service.resetDevice(ctx, req.actor, req.license!.id, req.device!.id);
      back(req, res, page.messages.deviceReset);
    },

    async blacklistDevice(req: Request, res: Response) {
      licenseForm(req, res);
      await service.blacklistDevice(ctx, req.actor, req.license!.id, req.device!.id);
      back(req, res, 'admin.licenses.deviceBlacklisted');
    },

    async unblacklistDevice(req: Request, res: Response) {
      licenseForm(req, res);
      await service.unblacklistDevice(ctx, req.actor, req.license!.id, req.device!.id);
      back(req, res, 'confirm.unblacklist.done');
    },

    async assignUser(req: Request, res: Response) {
      licenseForm(req, res, (errors) => ({ values: req.body, errors }));
      const form = formData(assignUserForm, req.body);
      await users.assignUser(
        mailingFrom(ctx, req),
        req.actor,
        req.license!.id,
        { email: form.email, name: form.name, maxActivations: form.max_activations },
        req.user!,
      );
      // A manager gets one answer whatever the address belongs to (docs/user-portal.md).
      back(req, res, req.user!.role === 'admin' ? 'admin.licenses.userAssigned' : 'ownership.assign.answered');
    },

    async setUserLimit(req: Request, res: Response) {
      const accountId = idParam(req, 'accountId');
      licenseForm(req, res, (errors) => ({ errors: { [`limit_${accountId}`]: errors.max_activations! } }));
      await users.setAssignmentLimit(
        ctx,
        req.actor,
        req.license!.id,
        accountId,
        formData(limitForm, req.body).max_activations,
        req.user!,
      );
      back(req, res, 'admin.licenses.userLimitChanged');
    },

    async unassignUser(req: Request, res: Response) {
      licenseForm(req, res);
      await users.unassignUser(ctx, req.actor, req.license!.id, idParam(req, 'accountId'), req.user!);
      back(req, res, 'admin.licenses.userUnassigned');
    },
  };
}
