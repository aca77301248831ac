import * as roles from '../models/roles.ts';
import { isUniqueViolation } from '../models/normalise.ts';
import { HttpError, ValidationError, notFound } from '../lib/errors.ts';
import { ORDER_PERMISSIONS } from '../policies/permissions.ts';
import { auditedChange } from './changes.ts';
import type { Actor, ServiceDeps } from './context.ts';

/**
 * The vendor's roles (docs/user-portal.md, "Roles"). Built-in roles keep their permissions; the
 * vendor's own may be renamed, changed, and deleted while no assignment uses them. One role is the
 * default: new managers get it on the orders they create, and forms offer it first.
 */

export interface RoleInput {
  name: string;
  permissions: string[];
}

const wanted = (permissions: string[]) => ORDER_PERMISSIONS.filter((p) => permissions.includes(p));

async function mustFind(db: Parameters<typeof roles.find>[0], id: number) {
  const role = await roles.find(db, id);
  if (!role) throw notFound();
  return role;
}

/** A name another role has is a field error, not a crash (checked, and the unique key backs it). */
async function named<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (isUniqueViolation(err)) throw new ValidationError({ name: 'admin.roles.nameTaken' });
    throw err;
  }
}

export async function createRole(deps: ServiceDeps, actor: Actor, input: RoleInput): Promise<number> {
  return named(() =>
    auditedChange(deps, actor, async (trx, now) => {
      const permissions = wanted(input.permissions);
      const id = await roles.insert(trx, input.name, permissions, now);
      return {
        result: id,
        audit: { action: 'role.created', objectType: 'role', objectId: id, after: { name: input.name, permissions } },
      };
    }),
  );
}

export async function updateRole(deps: ServiceDeps, actor: Actor, id: number, input: RoleInput): Promise<void> {
  await named(() =>
    auditedChange(deps, actor, async (trx, now) => {
      const before = await mustFind(trx, id);
      if (before.builtin) throw new HttpError(409, 'admin.roles.builtIn');
      const permissions = wanted(input.permissions);
      await roles.rename(trx, id, input.name, now);
      await roles.setPermissions(trx, id, permissions);
      return {
        result: undefined,
        audit: {
          action: 'role.updated',
          objectType: 'role',
          objectId: id,
          before: { name: before.name, permissions: before.permissions },
          after: { name: input.name, permissions },
        },
      };
    }),
  );
}

export async function makeDefaultRole(deps: ServiceDeps, actor: Actor, id: number): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const role = await mustFind(trx, id);
    const before = await roles.findDefault(trx);
    await roles.makeDefault(trx, id, now);
    return {
      result: undefined,
      audit: {
        action: 'role.made_default',
        objectType: 'role',
        objectId: id,
        before: { defaultRole: before.name },
        after: { defaultRole: role.name },
      },
    };
  });
}

export async function deleteRole(deps: ServiceDeps, actor: Actor, id: number): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    const role = await mustFind(trx, id);
    if (role.builtin) throw new HttpError(409, 'admin.roles.builtIn');
    if (role.isDefault) throw new HttpError(409, 'admin.roles.isDefault');
    if (await roles.uses(trx, id)) throw new HttpError(409, 'admin.roles.inUse');
    await roles.remove(trx, id);
    return {
      result: undefined,
      audit: {
        action: 'role.deleted',
        objectType: 'role',
        objectId: id,
        before: { name: role.name, permissions: role.permissions },
      },
    };
  });
}
