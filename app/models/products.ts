import type { Knex } from 'knex';
import { countOf, likeSql, toBool, toDate } from './normalise.ts';

export interface Product {
  id: number;
  name: string;
  code: string;
  authorizationMethod: 'key' | 'user';
  description: string | null;
  archived: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export interface Feature {
  id: number;
  productId: number;
  code: string;
  name: string;
  type: 'activation' | 'consumption';
}

function fromRow(r: Record<string, unknown>): Product {
  return {
    id: Number(r.id),
    name: String(r.name),
    code: String(r.code),
    authorizationMethod: r.authorization_method as Product['authorizationMethod'],
    description: (r.description as string | null) ?? null,
    archived: toBool(r.archived),
    createdAt: toDate(r.created_at)!,
    updatedAt: toDate(r.updated_at)!,
  };
}

function featureFromRow(r: Record<string, unknown>): Feature {
  return {
    id: Number(r.id),
    productId: Number(r.product_id),
    code: String(r.code),
    name: String(r.name),
    type: r.type as Feature['type'],
  };
}

export async function findById(db: Knex, id: number): Promise<Product | undefined> {
  const row = await db('products').where({ id }).first();
  return row ? fromRow(row) : undefined;
}

export async function findByCode(db: Knex, code: string): Promise<Product | undefined> {
  const row = await db('products').where({ code }).first();
  return row ? fromRow(row) : undefined;
}

export interface ProductFilter {
  q?: string;
  archived?: boolean;
}

function filtered(db: Knex, f: ProductFilter) {
  const q = db('products');
  if (f.q) q.where((w) => w.whereRaw(...likeSql('name', f.q!)).orWhereRaw(...likeSql('code', f.q!)));
  if (f.archived !== undefined) q.where('archived', f.archived);
  return q;
}

export async function list(db: Knex, f: ProductFilter, limit: number, offset: number): Promise<Product[]> {
  return (await filtered(db, f).orderBy('name').orderBy('id').limit(limit).offset(offset)).map(fromRow);
}

export async function count(db: Knex, f: ProductFilter): Promise<number> {
  return countOf(await filtered(db, f).count({ n: '*' }).first());
}

/** Every product that is not archived, for pick lists. */
export async function listActive(db: Knex): Promise<Product[]> {
  return (await db('products').where('archived', false).orderBy('name')).map(fromRow);
}

export async function update(
  db: Knex,
  id: number,
  c: Partial<Pick<Product, 'name' | 'description' | 'authorizationMethod' | 'archived'>>,
  now: Date,
): Promise<void> {
  const row: Record<string, unknown> = { updated_at: now };
  if (c.name !== undefined) row.name = c.name;
  if (c.description !== undefined) row.description = c.description;
  if (c.authorizationMethod !== undefined) row.authorization_method = c.authorizationMethod;
  if (c.archived !== undefined) row.archived = c.archived;
  await db('products').where({ id }).update(row);
}

export async function hasLicenses(db: Knex, productId: number): Promise<boolean> {
  return !!(await db('licenses').where({ product_id: productId }).first('id'));
}

export async function remove(db: Knex, id: number): Promise<void> {
  await db('products').where({ id }).delete();
}

export async function listFeatures(db: Knex, productId: number): Promise<Feature[]> {
  return (await db('features').where({ product_id: productId }).orderBy('code')).map(featureFromRow);
}

export async function findFeature(db: Knex, productId: number, featureId: number): Promise<Feature | undefined> {
  const row = await db('features').where({ id: featureId, product_id: productId }).first();
  return row ? featureFromRow(row) : undefined;
}

export async function updateFeature(db: Knex, id: number, c: { name: string }, now: Date): Promise<void> {
  await db('features').where({ id }).update({ name: c.name, updated_at: now });
}

export async function featureInUse(db: Knex, featureId: number): Promise<boolean> {
  return !!(await db('license_features').where({ feature_id: featureId }).first('license_id'));
}

export async function removeFeature(db: Knex, id: number): Promise<void> {
  await db('features').where({ id }).delete();
}

export function auditView(p: Product) {
  return {
    name: p.name,
    code: p.code,
    authorizationMethod: p.authorizationMethod,
    description: p.description,
    archived: p.archived,
  };
}

/** The Management API's product list: all, or those with `ids`; filtered like the console's list. */
export function apiQuery(db: Knex, f: ProductFilter & { ids: number[] | null }): Knex.QueryBuilder {
  const q = filtered(db, f);
  if (f.ids) q.whereIn('id', f.ids);
  return q.select('products.*');
}

export const fromApiRow = fromRow;
