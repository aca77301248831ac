import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import * as roles from '../../models/roles.ts';
import { formData } from '../../forms/parse.ts';
import { roleForm } from '../../forms/console.ts';
import { ORDER_PERMISSIONS } from '../../policies/permissions.ts';
import * as service from '../../services/roles.ts';
import { done } from '../helpers.ts';
import { onFailure } from '../../middleware/errors.ts';

/** Roles (docs/user-portal.md, "Roles"): the built-in three and the vendor's own, and the default. */
export function adminRolesController(ctx: AppContext) {
  const form = (req: Request, res: Response, status: number, role: roles.Role | null, values: object, errors = {}) =>
    res.status(status).render('admin/roles/form', {
      title: role ? role.name : req.t('admin.roles.new'),
      role,
      values,
      errors,
      allPermissions: ORDER_PERMISSIONS,
    });
  const rerender = (req: Request, res: Response, role: roles.Role | null) =>
    onFailure(res, {
      rerender: (err) =>
        form(req, res, 422, role, { ...req.body, permissions: [req.body.permissions ?? []].flat() }, err.fieldErrors),
      back: res.locals.paths.adminRoles(),
    });

  return {
    async index(req: Request, res: Response) {
      res.render('admin/roles/index', { title: req.t('admin.roles.title'), roles: await roles.list(ctx.db) });
    },
    new(req: Request, res: Response) {
      form(req, res, 200, null, { permissions: [] });
    },
    async create(req: Request, res: Response) {
      rerender(req, res, null);
      await service.createRole(ctx, req.actor, formData(roleForm, req.body));
      done(req, res, res.locals.paths.adminRoles(), 'admin.roles.created');
    },
    edit(req: Request, res: Response) {
      form(req, res, 200, req.role!, { name: req.role!.name, permissions: req.role!.permissions });
    },
    async update(req: Request, res: Response) {
      rerender(req, res, req.role!);
      await service.updateRole(ctx, req.actor, req.role!.id, formData(roleForm, req.body));
      done(req, res, res.locals.paths.adminRoles(), 'admin.roles.updated');
    },
    async makeDefault(req: Request, res: Response) {
      onFailure(res, { back: res.locals.paths.adminRoles() });
      await service.makeDefaultRole(ctx, req.actor, req.role!.id);
      done(req, res, res.locals.paths.adminRoles(), 'admin.roles.defaultSaved');
    },
    async destroy(req: Request, res: Response) {
      onFailure(res, { back: res.locals.paths.adminRoles() });
      await service.deleteRole(ctx, req.actor, req.role!.id);
      done(req, res, res.locals.paths.adminRoles(), 'admin.roles.deleted');
    },
  };
}
