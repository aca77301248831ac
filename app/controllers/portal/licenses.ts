import { licenseUsageView } from '../../services/usage-reports.ts';
import type { Request, Response } from 'express';
import * as licenseUsers from '../../models/license-users.ts';
import type { AppContext } from '../../app.ts';
import type * as licenses from '../../models/licenses.ts';
import * as devices from '../../models/devices.ts';
import * as accounts from '../../models/accounts.ts';
import { formData } from '../../forms/parse.ts';
import { credentialsForm, noteForm } from '../../forms/console.ts';
import { borrowForm } from '../../forms/portal.ts';
import { ownedEndUsers } from '../../policies/portal.ts';
import { deviceActions } from '../../policies/devices.ts';
import * as service from '../../services/licenses.ts';
import * as users from '../../services/license-users.ts';
import { borrowDevice } from '../../services/portal.ts';
import { deliveryKey, done, idParam } from '../helpers.ts';
import { onFailure } from '../../middleware/errors.ts';
import { licenseActions } from '../license-actions.ts';

/** Transfers left before the next activation on a new machine is refused (null: no limit applies). */
export function transfersLeft(l: licenses.License): number | null {
  if (l.unlimitedActivations || l.maxTransfers === 0) return null;
  if (l.maxTransfers === -1) return 0;
  return Math.max(0, l.maxTransfers - l.transferCount);
}

export function portalLicensesController(ctx: AppContext) {
  /** The license's users, each marked whether the viewer owns the account (only then are its actions shown), and its pending invitations. */
  const userRows = async (req: Request, licenseId: number) => {
    const [users, invited] = await Promise.all([
      licenseUsers.usersOfLicense(ctx.db, licenseId),
      licenseUsers.invitedToLicense(ctx.db, licenseId, ctx.clock.now()),
    ]);
    const owned = await ownedEndUsers(
      ctx.db,
      req.user!,
      users.map((u) => u.id),
    );
    return { users: users.map((u) => ({ ...u, owned: owned.has(u.id) })), invited };
  };

  const showPage = async (
    req: Request,
    res: Response,
    license: licenses.License,
    status = 200,
    userValues: object = {},
    userErrors: object = {},
  ) => {
    const [deviceList, history, { users: userList, invited }] = await Promise.all([
      devices.listForLicense(ctx.db, license.id),
      devices.listHistory(ctx.db, license.id),
      userRows(req, license.id),
    ]);
    res.status(status).render('portal/licenses/show', {
      title: license.licenseKey ?? license.productName,
      license,
      devices: deviceList,
      history,
      users: userList,
      invited,
      userValues,
      userErrors,
      can: req.permissions,
      trueup: await licenseUsageView(ctx.db, license, deviceList, ctx.clock.now()),
      actions: (d: devices.Device) => deviceActions(license, d, req.permissions),
      transfersLeft: transfersLeft(license),
    });
  };

  const token = (req: Request) => String(req.params.token ?? '');
  const invitationGone = (req: Request, res: Response) =>
    res
      .status(410)
      .set('Referrer-Policy', 'no-referrer')
      .render('portal/licenses/invitation-gone', { title: req.t('ownership.accept.title') });

  const shared = licenseActions(ctx, {
    pageOf: (res, id) => res.locals.paths.portalLicense(id),
    show: showPage,
    messages: { deviceReset: 'portal.transfer.done' },
  });
  const { licenseForm, back } = shared;

  return {
    ...shared,
    revokeDevice: shared.blacklistDevice,

    async note(req: Request, res: Response) {
      licenseForm(req, res);
      await service.setLicenseNote(ctx, req.actor, req.license!.id, formData(noteForm, req.body).note);
      back(req, res, 'portal.licenses.noteSaved');
    },

    /** The "move to another machine" page: what a device reset does and how many transfers remain. */
    async confirmResetDevice(req: Request, res: Response) {
      res.render('portal/licenses/reset-device', {
        title: req.t('portal.transfer.title'),
        license: req.license!,
        device: req.device!,
        transfersLeft: transfersLeft(req.license!),
      });
    },

    async borrow(req: Request, res: Response) {
      licenseForm(req, res, (errors) => ({ errors: { [`hours_${req.device!.id}`]: errors.hours! } }));
      const until = await borrowDevice(
        ctx,
        req.actor,
        req.license!,
        req.device!.id,
        formData(borrowForm, req.body).hours,
      );
      back(req, res, 'portal.licenses.borrowed', { date: until.toISOString().slice(0, 16).replace('T', ' ') });
    },

    async withdrawInvitation(req: Request, res: Response) {
      await users.withdrawInvitation(ctx, req.actor, req.license!.id, idParam(req, 'invitationId'));
      back(req, res, 'ownership.withdraw.done');
    },

    /** The page behind an invitation link: what accepting does, and the button (no login needed). */
    async showInvitation(req: Request, res: Response) {
      const invitation = await users.invitationForToken(ctx, token(req));
      if (!invitation) return invitationGone(req, res);
      res.set('Referrer-Policy', 'no-referrer').render('portal/licenses/invitation', {
        title: req.t('ownership.accept.title'),
        invitation,
        token: token(req),
      });
    },

    async acceptInvitation(req: Request, res: Response) {
      onFailure(res, { rerenderKinds: ['gone'], rerender: () => invitationGone(req, res) });
      await users.acceptInvitation(ctx, req.actor, token(req));
      done(req, res, req.user ? res.locals.paths.portal() : res.locals.paths.login(), 'ownership.accept.done');
    },

    /** Resets the password of a user of this license whom the manager owns: a one-time password shown once, or an e-mailed link. */
    async userPassword(req: Request, res: Response) {
      const accountId = idParam(req, 'accountId');
      licenseForm(req, res);
      const reset = await users.resetEndUserPassword(
        ctx,
        req.actor,
        accountId,
        formData(credentialsForm, req.body).credentials,
        req.user!,
      );
      const account = (await accounts.findById(ctx.db, accountId))!;
      if (reset.oneTimePassword)
        return res.set('Cache-Control', 'no-store').render('portal/licenses/password', {
          title: req.t('admin.licenseUsers.oneTimeTitle'),
          license: req.license!,
          account,
          password: reset.oneTimePassword,
        });
      back(req, res, deliveryKey(account.passwordHash ? 'resetLink' : 'passwordLink', reset.delivery), {
        email: account.email,
      });
    },
  };
}
