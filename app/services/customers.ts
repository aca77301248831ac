import type { Knex } from 'knex';
import * as customers from '../models/customers.ts';
import * as orders from '../models/orders.ts';
import * as catalog from '../models/catalog.ts';
import { isUniqueViolation } from '../models/normalise.ts';
import { HttpError, ValidationError, notFound } from '../lib/errors.ts';
import { auditedChange } from './changes.ts';
import { publishEvent } from './events.ts';
import type { Actor, ServiceDeps } from './context.ts';

/** Customers and their orders. */

export async function createCustomer(deps: ServiceDeps, actor: Actor, f: customers.CustomerFields): Promise<number> {
  return auditedChange(deps, actor, async (trx, now) => {
    const id = await catalog.insertCustomer(
      trx,
      {
        kind: f.kind,
        name: f.name,
        contactName: f.contact_name ?? undefined,
        email: f.email ?? undefined,
        phone: f.phone ?? undefined,
        address: f.address ?? undefined,
        reference: f.reference ?? undefined,
      },
      now,
    );
    return {
      result: id,
      audit: {
        action: 'customer.created',
        objectType: 'customer',
        objectId: id,
        after: customers.auditView((await customers.findById(trx, id))!),
      },
    };
  });
}

export async function updateCustomer(
  deps: ServiceDeps,
  actor: Actor,
  id: number,
  f: customers.CustomerFields,
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await customers.findById(trx, id);
    if (!before) throw notFound();
    await customers.update(trx, id, f, now);
    return {
      result: undefined,
      audit: {
        action: 'customer.updated',
        objectType: 'customer',
        objectId: id,
        before: customers.auditView(before),
        after: customers.auditView((await customers.findById(trx, id))!),
      },
    };
  });
}

export async function deleteCustomer(deps: ServiceDeps, actor: Actor, id: number): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    const before = await customers.findById(trx, id);
    if (!before) throw notFound();
    if (await customers.hasOrders(trx, id)) throw new HttpError(409, 'customers.hasOrders');
    await customers.remove(trx, id);
    return {
      result: undefined,
      audit: { action: 'customer.deleted', objectType: 'customer', objectId: id, before: customers.auditView(before) },
    };
  });
}

export interface OrderFields {
  order_ref: string;
  reference: string | null;
  is_test: boolean;
  is_trial: boolean;
  /** The branding of the order's mail; absent (the Management API): none on create, unchanged on update. */
  branding_id?: number | null;
}

/** A branding named by a form must exist (the select offers only existing ones; a forged id is a field error). */
async function checkBranding(db: Knex, brandingId: number | null | undefined): Promise<void> {
  if (brandingId === null || brandingId === undefined) return;
  if (!(await db('brandings').where({ id: brandingId }).first('id')))
    throw new ValidationError({ branding_id: 'validation.brandingUnknown' });
}

export async function createOrder(
  deps: ServiceDeps,
  actor: Actor,
  customerId: number,
  f: OrderFields,
  afterInsert?: (trx: Knex, orderId: number, now: Date) => Promise<void>,
): Promise<number> {
  try {
    return await auditedChange(deps, actor, async (trx, now) => {
      if (!(await customers.findById(trx, customerId))) throw notFound();
      await checkBranding(trx, f.branding_id);
      const id = await catalog.insertOrder(
        trx,
        {
          orderRef: f.order_ref,
          reference: f.reference ?? undefined,
          customerId,
          isTest: f.is_test,
          isTrial: f.is_trial,
          createdBy: actor.accountId,
          brandingId: f.branding_id ?? null,
        },
        now,
      );
      await afterInsert?.(trx, id, now);
      const order = (await orders.findById(trx, id))!;
      await publishEvent(trx, deps.clock, {
        type: 'order.created',
        orderId: id,
        data: { orderId: id, orderRef: order.orderRef, reference: order.reference, customerId },
      });
      return {
        result: id,
        audit: {
          action: 'order.created',
          objectType: 'order',
          objectId: id,
          orderId: id,
          after: orders.auditView(order),
        },
      };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new ValidationError({ order_ref: 'orders.refTaken' });
    throw err;
  }
}

export async function updateOrder(deps: ServiceDeps, actor: Actor, id: number, f: OrderFields): Promise<void> {
  try {
    await auditedChange(deps, actor, async (trx, now) => {
      const before = await orders.findById(trx, id);
      if (!before) throw notFound();
      await checkBranding(trx, f.branding_id);
      await orders.update(trx, id, f, now);
      return {
        result: undefined,
        audit: {
          action: 'order.updated',
          objectType: 'order',
          objectId: id,
          orderId: id,
          before: orders.auditView(before),
          after: orders.auditView((await orders.findById(trx, id))!),
        },
      };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new ValidationError({ order_ref: 'orders.refTaken' });
    throw err;
  }
}

export async function deleteOrder(deps: ServiceDeps, actor: Actor, id: number): Promise<void> {
  await auditedChange(deps, actor, async (trx) => {
    const before = await orders.findById(trx, id);
    if (!before) throw notFound();
    if (await orders.hasLicenses(trx, id)) throw new HttpError(409, 'orders.hasLicenses');
    await orders.remove(trx, id);
    return {
      result: undefined,
      audit: { action: 'order.deleted', objectType: 'order', objectId: id, before: orders.auditView(before) },
    };
  });
}
