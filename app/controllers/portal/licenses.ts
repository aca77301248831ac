import type { Request, Response } from 'express';
import * as licenseUsers from '../../models/license-users.ts';
import type { AppContext } from '../../app.ts';
import * as licenses from '../../models/licenses.ts';
import * as devices from '../../models/devices.ts';
import * as accounts from '../../models/accounts.ts';
import { formData } from '../../forms/parse.ts';
import { assignUserForm, credentialsForm, limitForm, noteForm } from '../../forms/console.ts';
import { borrowForm } from '../../forms/portal.ts';
import { ownedEndUsers, ownsEndUser } from '../../policies/portal.ts';
import * as service from '../../services/licenses.ts';
import * as users from '../../services/license-users.ts';
import { borrowDevice } from '../../services/portal.ts';
import { issueRefreshFile } from '../../services/license-files.ts';
import { notFound } from '../../lib/errors.ts';
import { done, idParam } from '../helpers.ts';
import { onFailure } from '../../middleware/errors.ts';

/** Transfers left before the next activation on a new machine is refused (null: no limit applies). */
export function transfersLeft(l: licenses.License): number | null {
  if (l.unlimitedActivations || l.maxTransfers === 0) return null;
  if (l.maxTransfers === -1) return 0;
  return Math.max(0, l.maxTransfers - l.transferCount);
}

export function portalLicensesController(ctx: AppContext) {

  /** The license's users, each marked whether the viewer owns the account (only then are its actions shown), and its pending invitations. */
  const userRows = async (req: Request, licenseId: number) => {
    const [users, invited] = await Promise.all([licenseUsers.usersOfLicense(ctx.db, licenseId), licenseUsers.invitedToLicense(ctx.db, licenseId, ctx.clock.now())]);
    const owned = await ownedEndUsers(ctx.db, req.user!, users.map((u) => u.id));
    return { users: users.map((u) => ({ ...u, owned: owned.has(u.id) })), invited };
  };

  const showPage = async (req: Request, res: Response, license: licenses.License, status = 200, userValues: object = {}, userErrors: object = {}) => {
    const [deviceList, history, { users: userList, invited }] = await Promise.all([devices.listForLicense(ctx.db, license.id), devices.listHistory(ctx.db, license.id), userRows(req, license.id)]);
    res.status(status).render('portal/licenses/show', { title: license.licenseKey ?? license.productName, license, devices: deviceList, history, users: userList, invited, userValues, userErrors, can: req.permissions, transfersLeft: transfersLeft(license) });
  };


  /**
   * An end user assigned to the license whom the viewer owns, or 404: a user of another license, and
   * an account that reaches outside the viewer's orders, are out of scope (docs/decisions.md).
   */
  const ownedUser = async (license: licenses.License, req: Request) => {
    const accountId = idParam(req, 'accountId');
    if (!(await licenseUsers.find(ctx.db, license.id, accountId)) || !(await ownsEndUser(ctx.db, req.user!, accountId))) throw notFound();
    return accountId;
  };

  const token = (req: Request) => String(req.params.token ?? '');
  const invitationGone = (req: Request, res: Response) => res.status(410).set('Referrer-Policy', 'no-referrer').render('portal/licenses/invitation-gone', { title: req.t('ownership.accept.title') });

  /**
   * How a form of the license page answers a failure: a validation error shows the page again, its
   * messages placed by `place` (the user form's fields, or one device's or user's own field); a
   * refused change flashes why and goes back to the page.
   */
  const licenseForm = (req: Request, res: Response, place: (errors: Record<string, string>) => { values?: object; errors: object } = (errors) => ({ errors })) =>
    onFailure(res, {
      back: res.locals.paths.portalLicense(req.license!.id),
      rerender: (err) => {
        const placed = place(err.fieldErrors);
        return showPage(req, res, req.license!, 422, placed.values ?? {}, placed.errors);
      },
    });
  const back = (req: Request, res: Response, messageKey: string, vars: Record<string, unknown> = {}) => done(req, res, res.locals.paths.portalLicense(req.license!.id), messageKey, vars);

  return {
    show: async (req: Request, res: Response) => showPage(req, res, req.license!),

    /** Downloads a refresh license file for an offline device: new entitlements without a new request. */
    async refresh(req: Request, res: Response) {
      licenseForm(req, res);
      const file = await issueRefreshFile({ ...ctx, defaultLanguage: ctx.config.defaultLanguage }, req.actor, req.license!.id, req.device!.id);
      res.set({ 'Content-Type': 'application/x-portico-license; charset=utf-8', 'Content-Disposition': `attachment; filename="${file.filename}"`, 'Cache-Control': 'no-store' }).send(file.text);
    },

    async disable(req: Request, res: Response) {
      await service.setLicenseEnabled(ctx, req.actor, req.license!.id, false);
      back(req, res, 'admin.licenses.disabled');
    },

    async enable(req: Request, res: Response) {
      await service.setLicenseEnabled(ctx, req.actor, req.license!.id, true);
      back(req, res, 'admin.licenses.enabled');
    },

    async note(req: Request, res: Response) {
      licenseForm(req, res);
      await service.setLicenseNote(ctx, req.actor, req.license!.id, formData(noteForm, req.body).note);
      back(req, res, 'portal.licenses.noteSaved');
    },

    async reset(req: Request, res: Response) {
      const count = await service.resetLicense(ctx, req.actor, req.license!.id);
      back(req, res, 'admin.licenses.resetDone', { count });
    },

    /** The "move to another machine" page: what a device reset does and how many transfers remain. */
    async confirmResetDevice(req: Request, res: Response) {
      res.render('portal/licenses/reset-device', { title: req.t('portal.transfer.title'), license: req.license!, device: req.device!, transfersLeft: transfersLeft(req.license!) });
    },

    async resetDevice(req: Request, res: Response) {
      licenseForm(req, res);
      await service.resetDevice(ctx, req.actor, req.license!.id, req.device!.id);
      back(req, res, 'portal.transfer.done');
    },

    async revokeDevice(req: Request, res: Response) {
      licenseForm(req, res);
      await service.blacklistDevice(ctx, req.actor, req.license!.id, req.device!.id);
      back(req, res, 'admin.licenses.deviceBlacklisted');
    },

    async borrow(req: Request, res: Response) {
      licenseForm(req, res, (errors) => ({ errors: { [`hours_${req.device!.id}`]: errors.hours! } }));
      const until = await borrowDevice(ctx, req.actor, req.license!, req.device!.id, formData(borrowForm, req.body).hours);
      back(req, res, 'portal.licenses.borrowed', { date: until.toISOString().slice(0, 16).replace('T', ' ') });
    },

    async assignUser(req: Request, res: Response) {
      licenseForm(req, res, (errors) => ({ values: req.body, errors }));
      const form = formData(assignUserForm, req.body);
      await users.assignUser(ctx, req.actor, req.license!.id, { email: form.email, name: form.name, maxActivations: form.max_activations }, req.user!);
      // A manager gets one answer whatever the address belongs to (docs/user-portal.md).
      back(req, res, req.user!.role === 'admin' ? 'admin.licenses.userAssigned' : 'ownership.assign.answered');
    },

    async withdrawInvitation(req: Request, res: Response) {
      await users.withdrawInvitation(ctx, req.actor, req.license!.id, idParam(req, 'invitationId'));
      back(req, res, 'ownership.withdraw.done');
    },

    /** The page behind an invitation link: what accepting does, and the button (no login needed). */
    async showInvitation(req: Request, res: Response) {
      const invitation = await users.invitationForToken(ctx, token(req));
      if (!invitation) return invitationGone(req, res);
      res.set('Referrer-Policy', 'no-referrer').render('portal/licenses/invitation', { title: req.t('ownership.accept.title'), invitation, token: token(req) });
    },

    async acceptInvitation(req: Request, res: Response) {
      onFailure(res, { rerenderKinds: ['gone'], rerender: () => invitationGone(req, res) });
      await users.acceptInvitation(ctx, req.actor, token(req));
      done(req, res, req.user ? res.locals.paths.portal() : res.locals.paths.login(), 'ownership.accept.done');
    },

    async setUserLimit(req: Request, res: Response) {
      const accountId = await ownedUser(req.license!, req);
      licenseForm(req, res, (errors) => ({ errors: { [`limit_${accountId}`]: errors.max_activations! } }));
      await users.setAssignmentLimit(ctx, req.actor, req.license!.id, accountId, formData(limitForm, req.body).max_activations, req.user!);
      back(req, res, 'admin.licenses.userLimitChanged');
    },

    async unassignUser(req: Request, res: Response) {
      const accountId = await ownedUser(req.license!, req);
      licenseForm(req, res);
      await users.unassignUser(ctx, req.actor, req.license!.id, accountId, req.user!);
      back(req, res, 'admin.licenses.userUnassigned');
    },

    /** Resets the password of a user of this license whom the manager owns: a one-time password shown once, or an e-mailed link. */
    async userPassword(req: Request, res: Response) {
      const accountId = await ownedUser(req.license!, req);
      licenseForm(req, res);
      const password = await users.resetEndUserPassword(ctx, req.actor, accountId, formData(credentialsForm, req.body).credentials, req.user!);
      const account = (await accounts.findById(ctx.db, accountId))!;
      if (password) return res.set('Cache-Control', 'no-store').render('portal/licenses/password', { title: req.t('admin.licenseUsers.oneTimeTitle'), license: req.license!, account, password });
      back(req, res, 'admin.licenseUsers.linkSent', { email: account.email });
    },
  };
}
