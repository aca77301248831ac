import type { Request, Response } from 'express';
import * as licenseUsers from '../../models/license-users.ts';
import type { AppContext } from '../../app.ts';
import * as licenses from '../../models/licenses.ts';
import * as devices from '../../models/devices.ts';
import * as accounts from '../../models/accounts.ts';
import { parseForm } from '../../forms/parse.ts';
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

  return {
    show: async (req: Request, res: Response) => showPage(req, res, req.license!),

    /** Downloads a refresh license file for an offline device: new entitlements without a new request. */
    async refresh(req: Request, res: Response) {
      const license = req.license!;
      const d = req.device!;
      onFailure(res, { back: res.locals.paths.portalLicense(license.id) });
      const file = await issueRefreshFile({ ...ctx, defaultLanguage: ctx.config.defaultLanguage }, req.actor, license.id, d.id);
      res.set({ 'Content-Type': 'application/x-portico-license; charset=utf-8', 'Content-Disposition': `attachment; filename="${file.filename}"`, 'Cache-Control': 'no-store' }).send(file.text);
    },

    async disable(req: Request, res: Response) {
      const license = req.license!;
      await service.setLicenseEnabled(ctx, req.actor, license.id, false);
      done(req, res, res.locals.paths.portalLicense(license.id), 'admin.licenses.disabled');
    },

    async enable(req: Request, res: Response) {
      const license = req.license!;
      await service.setLicenseEnabled(ctx, req.actor, license.id, true);
      done(req, res, res.locals.paths.portalLicense(license.id), 'admin.licenses.enabled');
    },

    async note(req: Request, res: Response) {
      const license = req.license!;
      const form = parseForm(noteForm, req.body);
      if (!form.ok) return showPage(req, res, license, 422, {}, form.errors);
      await service.setLicenseNote(ctx, req.actor, license.id, form.data.note);
      done(req, res, res.locals.paths.portalLicense(license.id), 'portal.licenses.noteSaved');
    },

    async reset(req: Request, res: Response) {
      const license = req.license!;
      const count = await service.resetLicense(ctx, req.actor, license.id);
      done(req, res, res.locals.paths.portalLicense(license.id), 'admin.licenses.resetDone', { count });
    },

    /** The "move to another machine" page: what a device reset does and how many transfers remain. */
    async confirmResetDevice(req: Request, res: Response) {
      const license = req.license!;
      const d = req.device!;
      res.render('portal/licenses/reset-device', { title: req.t('portal.transfer.title'), license, device: d, transfersLeft: transfersLeft(license) });
    },

    async resetDevice(req: Request, res: Response) {
      const license = req.license!;
      const d = req.device!;
      onFailure(res, { back: res.locals.paths.portalLicense(license.id) });
      await service.resetDevice(ctx, req.actor, license.id, d.id);
      done(req, res, res.locals.paths.portalLicense(license.id), 'portal.transfer.done');
    },

    async revokeDevice(req: Request, res: Response) {
      const license = req.license!;
      const d = req.device!;
      onFailure(res, { back: res.locals.paths.portalLicense(license.id) });
      await service.blacklistDevice(ctx, req.actor, license.id, d.id);
      done(req, res, res.locals.paths.portalLicense(license.id), 'admin.licenses.deviceBlacklisted');
    },

    async borrow(req: Request, res: Response) {
      const license = req.license!;
      const d = req.device!;
      const form = parseForm(borrowForm, req.body);
      if (!form.ok) return showPage(req, res, license, 422, {}, { [`hours_${d.id}`]: form.errors.hours! });
      onFailure(res, {
        back: res.locals.paths.portalLicense(license.id),
        rerender: ({ fieldErrors: errors }) => void showPage(req, res, license, 422, {}, { [`hours_${d.id}`]: errors.hours! }),
      });
      const until = await borrowDevice(ctx, req.actor, license, d.id, form.data.hours);
      done(req, res, res.locals.paths.portalLicense(license.id), 'portal.licenses.borrowed', { date: until.toISOString().slice(0, 16).replace('T', ' ') });
    },

    async assignUser(req: Request, res: Response) {
      const license = req.license!;
      const form = parseForm(assignUserForm, req.body);
      if (!form.ok) return showPage(req, res, license, 422, req.body, form.errors);
      onFailure(res, {
        back: res.locals.paths.portalLicense(license.id),
        rerender: ({ fieldErrors: errors }) => void showPage(req, res, license, 422, req.body, errors),
      });
      await users.assignUser(ctx, req.actor, license.id, { email: form.data.email, name: form.data.name, maxActivations: form.data.max_activations }, req.user!);
      // A manager gets one answer whatever the address belongs to (docs/user-portal.md).
      done(req, res, res.locals.paths.portalLicense(license.id), req.user!.role === 'admin' ? 'admin.licenses.userAssigned' : 'ownership.assign.answered');
    },

    async withdrawInvitation(req: Request, res: Response) {
      const license = req.license!;
      await users.withdrawInvitation(ctx, req.actor, license.id, idParam(req, 'invitationId'));
      done(req, res, res.locals.paths.portalLicense(license.id), 'ownership.withdraw.done');
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
      const license = req.license!;
      const accountId = await ownedUser(license, req);
      const form = parseForm(limitForm, req.body);
      if (!form.ok) return showPage(req, res, license, 422, {}, { [`limit_${accountId}`]: form.errors.max_activations! });
      await users.setAssignmentLimit(ctx, req.actor, license.id, accountId, form.data.max_activations, req.user!);
      done(req, res, res.locals.paths.portalLicense(license.id), 'admin.licenses.userLimitChanged');
    },

    async unassignUser(req: Request, res: Response) {
      const license = req.license!;
      const accountId = await ownedUser(license, req);
      onFailure(res, { back: res.locals.paths.portalLicense(license.id) });
      await users.unassignUser(ctx, req.actor, license.id, accountId, req.user!);
      done(req, res, res.locals.paths.portalLicense(license.id), 'admin.licenses.userUnassigned');
    },

    /** Resets the password of a user of this license whom the manager owns: a one-time password shown once, or an e-mailed link. */
    async userPassword(req: Request, res: Response) {
      const license = req.license!;
      const accountId = await ownedUser(license, req);
      const form = parseForm(credentialsForm, req.body);
      if (!form.ok) return showPage(req, res, license, 422, {}, form.errors);
      const password = await users.resetEndUserPassword(ctx, req.actor, accountId, form.data.credentials, req.user!);
      const account = (await accounts.findById(ctx.db, accountId))!;
      if (password) return res.set('Cache-Control', 'no-store').render('portal/licenses/password', { title: req.t('admin.licenseUsers.oneTimeTitle'), license, account, password });
      done(req, res, res.locals.paths.portalLicense(license.id), 'admin.licenseUsers.linkSent', { email: account.email });
    },
  };
}
