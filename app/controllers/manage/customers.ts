import type { Request, Response } from 'express';
import { z } from 'zod';
import type { AppContext } from '../../app.ts';
import * as customers from '../../models/customers.ts';
import type { Customer } from '../../models/customers.ts';
import { customerForm } from '../../forms/console.ts';
import { optionalText } from '../../forms/fields.ts';
import { createCustomer, updateCustomer } from '../../services/customers.ts';
import { body, bodyObject, parsed, query } from '../../api/manage/input.ts';
import { cursorPage, pageParams } from '../../api/manage/pagination.ts';
import { manageScope } from '../../api/manage/loaders.ts';

/** A customer as the Management API shows it. */
export function customerJson(c: Customer) {
  return {
    id: c.id,
    ...customers.fieldsOf(c),
    created_at: c.createdAt.toISOString(),
    updated_at: c.updatedAt.toISOString(),
  };
}

const listFilter = z.object({ q: optionalText(200), ...pageParams });

/** /api/manage/v1/customers: the console's customer service, through the token's order scope. */
export function manageCustomersController(ctx: AppContext) {
  const { orderIds } = manageScope(ctx);
  return {
    async index(req: Request, res: Response) {
      const f = query(listFilter, req);
      const q = customers.apiQuery(ctx.db, { orderIds: orderIds(req), q: f.q ?? undefined });
      res.json(
        await cursorPage(q, f, (rows) => rows.map((r) => customerJson(customers.fromApiRow(r))), 'customers.id'),
      );
    },

    show(req: Request, res: Response) {
      res.json(customerJson(req.customer!));
    },

    async create(req: Request, res: Response) {
      const id = await createCustomer(ctx, req.actor, body(customerForm, req));
      res.status(201).json(customerJson((await customers.findById(ctx.db, id))!));
    },

    /** PATCH: the fields sent replace the customer's, then the whole is checked as the console's form is. */
    async update(req: Request, res: Response) {
      const fields = parsed(customerForm, { ...customers.fieldsOf(req.customer!), ...bodyObject(req) });
      await updateCustomer(ctx, req.actor, req.customer!.id, fields);
      res.json(customerJson((await customers.findById(ctx.db, req.customer!.id))!));
    },
  };
}
