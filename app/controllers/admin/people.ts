import type { Request, Response } from 'express';
import * as licenseUsers from '../../models/license-users.ts';
import type { AppContext } from '../../app.ts';
import * as accounts from '../../models/accounts.ts';
import * as managers from '../../models/managers.ts';
import * as policies from '../../models/policies.ts';
import * as products from '../../models/products.ts';
import { formData, parseForm } from '../../forms/parse.ts';
import {
  assignOrderForm,
  credentialsForm,
  defaultsForm,
  orderRoleForm,
  licenseUserForm,
  managerInviteForm,
  managerProfileForm,
  permissionsForm,
  policiesForm,
  quotaForm,
} from '../../forms/console.ts';
import { pageCount, pageFrom } from '../../lib/pagination.ts';
import { ACCOUNT_PERMISSIONS } from '../../policies/permissions.ts';
import * as roles from '../../models/roles.ts';
import * as users from '../../services/license-users.ts';
import * as service from '../../services/managers.ts';
import { deliveryKey, done, idParam, listQuery, onPage, refuse } from '../helpers.ts';
import { onFailure } from '../../middleware/errors.ts';

/** License users (end users) and license managers: the people outside the vendor. */
export function adminPeopleController(ctx: AppContext) {
  const listPage =
    (role: 'manager' | 'end_user', view: string, titleKey: string) => async (req: Request, res: Response) => {
      const query = listQuery(req, ['q']);
      const { page, limit, offset } = pageFrom(req.query);
      const { rows, total } = await managers.listAccounts(ctx.db, role, query.q, limit, offset);
      res.render(view, { title: req.t(titleKey), people: rows, query, page, pages: pageCount(total), total });
    };

  const userNew = (req: Request, res: Response, status: number, values: object, errors: object) =>
    res.status(status).render('admin/license-users/new', { title: req.t('admin.licenseUsers.new'), values, errors });

  /** A one-time password is shown once, in the response to the POST, and never stored or cached. */
  const showOneTimePassword = (req: Request, res: Response, account: accounts.Account, password: string) =>
    res
      .set('Cache-Control', 'no-store')
      .render('admin/license-users/password', { title: req.t('admin.licenseUsers.oneTimeTitle'), account, password });

  const managerShow = async (
    res: Response,
    manager: accounts.Account,
    status = 200,
    errors: object = {},
    values: object = {},
  ) => {
    const [permissions, ownOrderRole, roleList, orderList, quotas, allowed, issuable, productList] = await Promise.all([
      managers.permissionsOf(ctx.db, manager.id),
      managers.ownOrderRoleOf(ctx.db, manager.id),
      roles.list(ctx.db),
      managers.ordersOf(ctx.db, manager.id),
      managers.quotasOf(ctx.db, manager.id),
      managers.allowedPoliciesOf(ctx.db, manager.id),
      policies.listIssuable(ctx.db),
      products.listActive(ctx.db),
    ]);
    res.status(status).render('admin/managers/show', {
      title: manager.name,
      manager,
      permissions,
      allPermissions: ACCOUNT_PERMISSIONS,
      ownOrderRole,
      roles: roleList,
      orders: orderList,
      quotas,
      allowed,
      issuable,
      products: productList,
      errors,
      values,
    });
  };

  /** An action of the manager's page (`req.account`): failures shown there, success flashed there. */
  const managerPage = (req: Request, res: Response, values?: object) =>
    onPage(req, res, res.locals.paths.adminManager(req.account!.id), (errors) =>
      managerShow(res, req.account!, 422, errors, values),
    );

  const managerNew = (req: Request, res: Response, status: number, values: object, errors: object) =>
    res.status(status).render('admin/managers/new', { title: req.t('admin.managers.new'), values, errors });

  return {
    licenseUsers: listPage('end_user', 'admin/license-users/index', 'admin.licenseUsers.title'),

    newLicenseUser: (req: Request, res: Response) =>
      userNew(req, res, 200, { language: req.lang, credentials: 'email' }, {}),

    async createLicenseUser(req: Request, res: Response) {
      onFailure(res, {
        back: res.locals.paths.adminLicenseUsers(),
        rerender: (err) => userNew(req, res, 422, req.body, err.fieldErrors),
      });
      const parsed = formData(licenseUserForm, req.body);
      const created = await users.createLicenseUser(ctx, req.actor, parsed);
      const account = (await accounts.findById(ctx.db, created.id))!;
      if (created.oneTimePassword) return showOneTimePassword(req, res, account, created.oneTimePassword);
      done(req, res, res.locals.paths.adminLicenseUser(account.id), deliveryKey('passwordLink', created.delivery), {
        email: account.email,
      });
    },

    async licenseUser(req: Request, res: Response) {
      const account = req.account!;
      const assignments = await licenseUsers.licensesOfUser(ctx.db, account.id);
      res.render('admin/license-users/show', { title: account.name, account, assignments });
    },

    async resetLicenseUserPassword(req: Request, res: Response) {
      const account = req.account!;
      const parsed = parseForm(credentialsForm, req.body);
      if (!parsed.ok) return refuse(req, res, res.locals.paths.adminLicenseUser(account.id), 'validation.choice');
      const reset = await users.resetEndUserPassword(ctx, req.actor, account.id, parsed.data.credentials);
      if (reset.oneTimePassword) return showOneTimePassword(req, res, account, reset.oneTimePassword);
      done(
        req,
        res,
        res.locals.paths.adminLicenseUser(account.id),
        deliveryKey(account.passwordHash ? 'resetLink' : 'passwordLink', reset.delivery),
        { email: account.email },
      );
    },

    managers: listPage('manager', 'admin/managers/index', 'admin.managers.title'),

    newManager: (req: Request, res: Response) => managerNew(req, res, 200, { language: req.lang }, {}),

    async inviteManager(req: Request, res: Response) {
      onFailure(res, {
        back: res.locals.paths.adminManagers(),
        rerender: (err) => managerNew(req, res, 422, req.body, err.fieldErrors),
      });
      const parsed = formData(managerInviteForm, req.body);
      const invited = await service.inviteManager(ctx, req.actor, parsed);
      done(req, res, res.locals.paths.adminManager(invited.id), deliveryKey('invitation', invited.delivery), {
        email: parsed.email,
      });
    },

    manager: async (req: Request, res: Response) => managerShow(res, req.account!),

    async updateManager(req: Request, res: Response) {
      const saved = managerPage(req, res, req.body);
      await service.updateManagerProfile(ctx, req.actor, req.account!.id, formData(managerProfileForm, req.body));
      saved('admin.managers.updated');
    },

    async resendInvitation(req: Request, res: Response) {
      const saved = managerPage(req, res);
      const delivery = await service.resendInvitation(ctx, req.actor, req.account!.id);
      saved(deliveryKey('invitationResent', delivery));
    },

    async setPermissions(req: Request, res: Response) {
      const saved = managerPage(req, res);
      const form = formData(permissionsForm, req.body);
      await service.setManagerPermissions(ctx, req.actor, req.account!.id, form.permissions);
      await service.setManagerOwnOrderRole(ctx, req.actor, req.account!.id, form.own_order_role_id);
      saved('admin.managers.permissionsSaved');
    },

    async assignOrder(req: Request, res: Response) {
      const saved = managerPage(req, res, req.body);
      const form = formData(assignOrderForm, req.body);
      await service.assignManagerToOrder(ctx, req.actor, req.account!.id, form.order_ref, form.role_id);
      saved('admin.managers.orderAssigned');
    },

    async setOrderRole(req: Request, res: Response) {
      const saved = managerPage(req, res);
      const form = formData(orderRoleForm, req.body);
      await service.setManagerOrderRole(ctx, req.actor, req.account!.id, idParam(req, 'orderId'), form.role_id);
      saved('admin.managers.roleSaved');
    },

    async unassignOrder(req: Request, res: Response) {
      const saved = managerPage(req, res);
      await service.unassignManagerFromOrder(ctx, req.actor, req.account!.id, idParam(req, 'orderId'));
      saved('admin.managers.orderUnassigned');
    },

    async setQuota(req: Request, res: Response) {
      const saved = managerPage(req, res, req.body);
      const form = formData(quotaForm, req.body);
      await service.setManagerQuota(ctx, req.actor, req.account!.id, form.product_id, form.quota);
      saved('admin.managers.quotaSaved');
    },

    async removeQuota(req: Request, res: Response) {
      const saved = managerPage(req, res);
      await service.removeManagerQuota(ctx, req.actor, req.account!.id, idParam(req, 'productId'));
      saved('admin.managers.quotaRemoved');
    },

    async setPolicies(req: Request, res: Response) {
      const saved = managerPage(req, res);
      await service.setManagerPolicies(ctx, req.actor, req.account!.id, formData(policiesForm, req.body).policy_ids);
      saved('admin.managers.policiesSaved');
    },

    async defaults(req: Request, res: Response) {
      res.render('admin/managers/defaults', {
        title: req.t('admin.managers.defaultsTitle'),
        permissions: await managers.defaultPermissions(ctx.db),
        allPermissions: ACCOUNT_PERMISSIONS,
        errors: {},
      });
    },

    async saveDefaults(req: Request, res: Response) {
      onFailure(res, {
        rerender: (err) =>
          res.status(422).render('admin/managers/defaults', {
            title: req.t('admin.managers.defaultsTitle'),
            permissions: [],
            allPermissions: ACCOUNT_PERMISSIONS,
            errors: err.fieldErrors,
          }),
      });
      const parsed = formData(defaultsForm, req.body);
      await service.setDefaultPermissionSet(ctx, req.actor, parsed.permissions);
      done(req, res, res.locals.paths.adminManagerDefaults(), 'admin.managers.defaultsSaved');
    },
  };
}
