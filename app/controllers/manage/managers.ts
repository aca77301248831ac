import type { Request, RequestHandler, Response } from 'express';
import { z } from 'zod';
import type { AppContext } from '../../app.ts';
import * as accounts from '../../models/accounts.ts';
import * as managers from '../../models/managers.ts';
import * as roles from '../../models/roles.ts';
import type { Role } from '../../models/roles.ts';
import { assignOrderForm, managerInviteForm, orderRoleForm, roleForm } from '../../forms/console.ts';
import { createRole, updateRole } from '../../services/roles.ts';
import { optionalText } from '../../forms/fields.ts';
import {
  assignManagerToOrder,
  inviteManager,
  setManagerOrderRole,
  unassignManagerFromOrder,
} from '../../services/managers.ts';
import { notFound } from '../../lib/errors.ts';
import { bodyObject, parsed, query } from '../../api/manage/input.ts';
import { cursorPage, pageParams } from '../../api/manage/pagination.ts';
import { idParam, orNotFound } from '../helpers.ts';

export function roleJson(r: Role) {
  return { id: r.id, name: r.name, builtin: r.builtin, is_default: r.isDefault, permissions: r.permissions };
}

/**
 * Managers and roles for the vendor's API clients (scopes managers:read / managers:write, which
 * personal tokens never hold): the console's manager services — invite, assign to an order, set the
 * role on an order, unassign (the portal's delegation rule, as the console).
 */
export function manageManagersController(ctx: AppContext) {
  const managerJson = async (id: number) => {
    const account = (await accounts.findById(ctx.db, id))!;
    const [permissions, orders] = await Promise.all([
      managers.permissionsOf(ctx.db, id),
      managers.ordersOf(ctx.db, id),
    ]);
    return {
      id: account.id,
      email: account.email,
      name: account.name,
      language: account.language,
      disabled: account.disabled,
      invitation_pending: !account.passwordHash,
      created_at: account.createdAt.toISOString(),
      permissions,
      orders: orders.map((o) => ({
        order_id: o.id,
        order_ref: o.orderRef,
        customer_name: o.customerName,
        role_id: o.roleId,
      })),
    };
  };
  const show = async (res: Response, id: number, status = 200) => res.status(status).json(await managerJson(id));

  const loadManager: RequestHandler = async (req, _res, next) => {
    const account = orNotFound(await accounts.findById(ctx.db, idParam(req)));
    if (account.role !== 'manager') throw notFound();
    req.account = account;
    next();
  };
  const loadRole: RequestHandler = async (req, _res, next) => {
    req.role = orNotFound(await roles.find(ctx.db, idParam(req)));
    next();
  };
  /** `:orderId`, one of the manager's orders, or 404. */
  const loadAssignment: RequestHandler = async (req, _res, next) => {
    if (!(await managers.isAssigned(ctx.db, req.account!.id, idParam(req, 'orderId')))) throw notFound();
    next();
  };

  return {
    loadManager,
    loadRole,
    loadAssignment,

    async index(req: Request, res: Response) {
      const f = query(z.object({ q: optionalText(200), ...pageParams }), req);
      res.json(
        await cursorPage(managers.apiQuery(ctx.db, f.q ?? undefined), f, (rows) => rows.map(managers.fromApiRow)),
      );
    },

    show: (req: Request, res: Response) => show(res, req.account!.id),

    /** Invites a manager by e-mail (the console's invitation: the default permissions, a set-password mail). */
    async invite(req: Request, res: Response) {
      const invited = await inviteManager(
        ctx,
        req.actor,
        parsed(managerInviteForm, { language: 'en', ...bodyObject(req) }),
      );
      // Whether the invitation mail went out by SMTP or waits in the outbox.
      res.status(201).json({ ...(await managerJson(invited.id)), invitation_mail: invited.delivery });
    },

    /** `order_ref` as the console takes it ("number", or "Customer / number" when two customers share it). */
    async assignOrder(req: Request, res: Response) {
      const f = parsed(assignOrderForm, bodyObject(req));
      await assignManagerToOrder(ctx, req.actor, req.account!.id, f.order_ref, f.role_id);
      await show(res, req.account!.id, 201);
    },

    async setOrderRole(req: Request, res: Response) {
      const f = parsed(orderRoleForm, bodyObject(req));
      await setManagerOrderRole(ctx, req.actor, req.account!.id, idParam(req, 'orderId'), f.role_id);
      await show(res, req.account!.id);
    },

    async unassignOrder(req: Request, res: Response) {
      await unassignManagerFromOrder(ctx, req.actor, req.account!.id, idParam(req, 'orderId'));
      await show(res, req.account!.id);
    },

    async roles(_req: Request, res: Response) {
      res.json({ data: (await roles.list(ctx.db)).map(roleJson), next_cursor: null });
    },

    role(req: Request, res: Response) {
      res.json(roleJson(req.role!));
    },

    /** A custom role, as the console makes it (built-in roles cannot change: 409). */
    async createRole(req: Request, res: Response) {
      const id = await createRole(ctx, req.actor, parsed(roleForm, bodyObject(req)));
      res.status(201).json(roleJson((await roles.find(ctx.db, id))!));
    },

    /** PATCH: the fields sent over the role as it is; every manager holding it gets the new powers at once. */
    async updateRole(req: Request, res: Response) {
      const r = req.role!;
      await updateRole(
        ctx,
        req.actor,
        r.id,
        parsed(roleForm, { name: r.name, permissions: r.permissions, ...bodyObject(req) }),
      );
      res.json(roleJson((await roles.find(ctx.db, r.id))!));
    },
  };
}
