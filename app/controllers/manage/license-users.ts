import type { Request, Response } from 'express';
import { z } from 'zod';
import type { AppContext } from '../../app.ts';
import * as licenseUsers from '../../models/license-users.ts';
import type { AssignedUser, InvitedUser } from '../../models/license-users.ts';
import { assignUserForm, limitForm } from '../../forms/console.ts';
import { ownedEndUsers } from '../../policies/portal.ts';
import * as users from '../../services/license-users.ts';
import { idParam } from '../helpers.ts';
import { body, query } from '../../api/manage/input.ts';
import { cursorPage, pageParams } from '../../api/manage/pagination.ts';

/**
 * A user of a license. `manageable`: whether the token may change or unassign them — a manager's
 * token only users it owns (docs/decisions.md, "Account ownership"), as the portal shows actions.
 */
export function licenseUserJson(u: AssignedUser, manageable: boolean) {
  return {
    id: u.id,
    email: u.email,
    name: u.name,
    max_activations: u.maxActivations,
    times_activated: u.timesActivated,
    manageable,
  };
}

export function invitationJson(i: InvitedUser) {
  return {
    id: i.invitationId,
    email: i.email,
    max_activations: i.maxActivations,
    expires_at: i.expiresAt.toISOString(),
  };
}

/** /api/manage/v1/licenses/:id/users and /invitations: the portal's license-user services. */
export function manageLicenseUsersController(ctx: AppContext) {
  /** For the ownership rule: the manager of a personal token; null for an API client (the console). */
  const by = (req: Request) => req.api!.manager;
  const owned = async (req: Request, ids: number[]) => {
    const manager = by(req);
    return manager ? ownedEndUsers(ctx.db, manager, ids) : new Set(ids);
  };
  const userOf = async (req: Request, accountId: number) => {
    const u = (await licenseUsers.usersOfLicense(ctx.db, req.license!.id)).find((x) => x.id === accountId);
    return u ? licenseUserJson(u, (await owned(req, [u.id])).has(u.id)) : null;
  };

  return {
    async index(req: Request, res: Response) {
      const f = query(z.object(pageParams), req);
      res.json(
        await cursorPage(
          licenseUsers.usersQuery(ctx.db, req.license!.id),
          f,
          async (rows) => {
            const list = rows.map(licenseUsers.userFromRow);
            const mine = await owned(
              req,
              list.map((u) => u.id),
            );
            return list.map((u) => licenseUserJson(u, mine.has(u.id)));
          },
          'accounts.id',
        ),
      );
    },

    /**
     * Gives the license to an address as the portal does (services/license-users.ts placeUser): a
     * new address gets an account and its set-password mail; for a manager's token an existing
     * account it does not own gets an invitation, whatever the address belongs to.
     */
    async assign(req: Request, res: Response) {
      const f = body(assignUserForm, req);
      const placed = await users.assignUser(
        ctx,
        req.actor,
        req.license!.id,
        { email: f.email, name: f.name, maxActivations: f.max_activations },
        by(req),
      );
      if (placed.kind === 'assigned') {
        res.status(201).json({ result: 'assigned', user: await userOf(req, placed.account.id) });
        return;
      }
      const invitation = (await licenseUsers.invitedToLicense(ctx.db, req.license!.id, ctx.clock.now())).find(
        (i) => i.invitationId === placed.invitationId,
      )!;
      res.status(201).json({ result: 'invited', invitation: invitationJson(invitation) });
    },

    async setLimit(req: Request, res: Response) {
      const accountId = idParam(req, 'accountId');
      const f = body(limitForm, req);
      await users.setAssignmentLimit(ctx, req.actor, req.license!.id, accountId, f.max_activations, by(req));
      res.json(await userOf(req, accountId));
    },

    /** Refused (409) while the user still has an active device on the license. */
    async unassign(req: Request, res: Response) {
      const accountId = idParam(req, 'accountId');
      const before = await userOf(req, accountId);
      await users.unassignUser(ctx, req.actor, req.license!.id, accountId, by(req));
      res.json({ ...before, unassigned: true });
    },

    /**
     * E-mails the user a link to set a new password. The portal's other way, a one-time password
     * shown once, is not offered here: an answer to a POST is kept for Idempotency-Key replays.
     */
    async passwordLink(req: Request, res: Response) {
      const accountId = idParam(req, 'accountId');
      const reset = await users.resetEndUserPassword(ctx, req.actor, accountId, 'email', by(req));
      res.json({ id: accountId, mail: reset.delivery });
    },

    async invitations(req: Request, res: Response) {
      const list = await licenseUsers.invitedToLicense(ctx.db, req.license!.id, ctx.clock.now());
      res.json({ data: list.map(invitationJson), next_cursor: null });
    },

    /** Withdraws a pending invitation (its link then answers 410). */
    async withdrawInvitation(req: Request, res: Response) {
      const invitationId = idParam(req, 'invitationId');
      await users.withdrawInvitation(ctx, req.actor, req.license!.id, invitationId);
      res.json({ id: invitationId, withdrawn: true });
    },
  };
}
