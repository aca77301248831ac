import * as brandings from '../models/brandings.ts';
import { isUniqueViolation } from '../models/normalise.ts';
import { ValidationError, notFound } from '../lib/errors.ts';
import { auditedChange } from './changes.ts';
import type { Actor, ServiceDeps } from './context.ts';

/** Brandings (docs/console.md): the look of the hosts bound to them, and which portal each host serves at /. */

export type BrandingInput = Required<brandings.NewBranding>;

async function mustFind(db: ServiceDeps['db'], id: number) {
  const b = await brandings.findById(db, id);
  if (!b) throw notFound();
  return b;
}

/** The name and every host name are unique: the database says so, the form hears it as a field error. */
async function uniquely<T>(field: 'name' | 'hostname', change: () => Promise<T>): Promise<T> {
  try {
    return await change();
  } catch (err) {
    if (isUniqueViolation(err))
      throw new ValidationError({ [field]: field === 'name' ? 'brandings.nameTaken' : 'brandings.hostnameTaken' });
    throw err;
  }
}

export async function createBranding(deps: ServiceDeps, actor: Actor, input: BrandingInput): Promise<number> {
  return uniquely('name', () =>
    auditedChange(deps, actor, async (trx, now) => {
      const id = await brandings.insert(trx, input, now);
      return {
        result: id,
        audit: {
          action: 'branding.created',
          objectType: 'branding',
          objectId: id,
          after: brandings.auditView(await mustFind(trx, id)),
        },
      };
    }),
  );
}

export async function updateBranding(deps: ServiceDeps, actor: Actor, id: number, input: BrandingInput): Promise<void> {
  await uniquely('name', () =>
    auditedChange(deps, actor, async (trx, now) => {
      const before = await mustFind(trx, id);
      await brandings.update(trx, id, input, now);
      const after = await mustFind(trx, id);
      return {
        result: undefined,
        audit: {
          action: 'branding.updated',
          objectType: 'branding',
          objectId: id,
          before: brandings.auditView(before),
          after: brandings.auditView(after),
        },
      };
    }),
  );
}

/** Deletes a branding with its host names; those hosts fall back to the "default" branding. */
export async function deleteBranding(deps: ServiceDeps, actor: Actor, id: number): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    const before = await mustFind(trx, id);
    const hosts = await brandings.listHosts(trx, id);
    await brandings.remove(trx, id);
    return {
      result: undefined,
      audit: {
        action: 'branding.deleted',
        objectType: 'branding',
        objectId: id,
        before: {
          ...brandings.auditView(before),
          hosts: hosts.map((h) => ({ hostname: h.hostname, portal: h.portal })),
        },
      },
    };
  });
}

export async function addHost(
  deps: ServiceDeps,
  actor: Actor,
  brandingId: number,
  input: { hostname: string; portal: brandings.Portal | null },
): Promise<number> {
  return uniquely('hostname', () =>
    auditedChange(deps, actor, async (trx, now) => {
      await mustFind(trx, brandingId);
      const id = await brandings.insertHost(trx, brandingId, input.hostname, input.portal, now);
      return {
        result: id,
        audit: {
          action: 'branding_host.created',
          objectType: 'branding_host',
          objectId: id,
          after: { brandingId, hostname: input.hostname, portal: input.portal },
        },
      };
    }),
  );
}

export async function removeHost(deps: ServiceDeps, actor: Actor, brandingId: number, hostId: number): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    const before = await brandings.findHost(trx, brandingId, hostId);
    if (!before) throw notFound();
    await brandings.removeHost(trx, hostId);
    return {
      result: undefined,
      audit: {
        action: 'branding_host.deleted',
        objectType: 'branding_host',
        objectId: hostId,
        before: { brandingId, hostname: before.hostname, portal: before.portal },
      },
    };
  });
}

const logoAudit = (b: brandings.BrandingRecord) => ({ logoMime: b.logoMime, logoSize: b.logoSize });

/** Stores a logo that forms/brandings.ts checkLogo accepted. The audit keeps its type and size, never its bytes. */
export async function setLogo(
  deps: ServiceDeps,
  actor: Actor,
  id: number,
  logo: { data: Buffer; mime: string },
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await mustFind(trx, id);
    await brandings.setLogo(trx, id, logo, now);
    const after = await mustFind(trx, id);
    return {
      result: undefined,
      audit: {
        action: 'branding.logo_uploaded',
        objectType: 'branding',
        objectId: id,
        before: logoAudit(before),
        after: logoAudit(after),
      },
    };
  });
}

export async function removeLogo(deps: ServiceDeps, actor: Actor, id: number): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await mustFind(trx, id);
    await brandings.setLogo(trx, id, null, now);
    return {
      result: undefined,
      audit: {
        action: 'branding.logo_removed',
        objectType: 'branding',
        objectId: id,
        before: logoAudit(before),
        after: { logoMime: null, logoSize: null },
      },
    };
  });
}
