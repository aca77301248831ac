import type { Knex } from 'knex';
import { affected, toBool, toDate } from './normalise.ts';
import { CHANNELS } from './devices.ts';

/** Redeemable license codes and their batches (docs/decisions.md, "Redeemable codes"). Codes are stored as SHA-256 only. */

export const VOUCHER_STATUSES = ['open', 'redeemed', 'voided', 'expired'] as const;
export type VoucherStatus = (typeof VOUCHER_STATUSES)[number];
/** Where a code is redeemed: the User Portal, or a device's channel (License API, offline request file, air-gap portal). */
export const VOUCHER_CHANNELS = ['portal', ...CHANNELS] as const;
export type VoucherChannel = (typeof VOUCHER_CHANNELS)[number];

export interface VoucherBatch {
  id: number;
  orderId: number;
  policyId: number;
  productId: number;
  policyName: string;
  productName: string;
  createdBy: number | null;
  createdByName: string | null;
  quotaCounted: boolean;
  count: number;
  expiresAt: Date;
  createdAt: Date;
}

export interface Voucher {
  id: number;
  batchId: number;
  hint: string;
  expiresAt: Date;
  redeemedAt: Date | null;
  redeemedBy: number | null;
  redeemedByEmail: string | null;
  redeemedChannel: VoucherChannel | null;
  licenseId: number | null;
  voidedAt: Date | null;
  status: VoucherStatus;
}

/** A voucher with what redeeming or voiding it needs to know of its batch. */
export interface VoucherWithBatch extends Voucher {
  orderId: number;
  policyId: number;
  productId: number;
  createdBy: number | null;
  quotaCounted: boolean;
}

export function statusOf(
  v: { redeemedAt: Date | null; voidedAt: Date | null; expiresAt: Date },
  now: Date,
): VoucherStatus {
  if (v.redeemedAt) return 'redeemed';
  if (v.voidedAt) return 'voided';
  return v.expiresAt <= now ? 'expired' : 'open';
}

const voucherColumns = [
  'vouchers.id',
  'vouchers.batch_id',
  'vouchers.hint',
  'vouchers.expires_at',
  'vouchers.redeemed_at',
  'vouchers.redeemed_by_account_id',
  'vouchers.redeemed_channel',
  'vouchers.license_id',
  'vouchers.voided_at',
  'redeemer.email as redeemed_by_email',
];

function voucherFrom(r: Record<string, unknown>, now: Date): Voucher {
  const v = {
    id: Number(r.id),
    batchId: Number(r.batch_id),
    hint: String(r.hint),
    expiresAt: toDate(r.expires_at)!,
    redeemedAt: toDate(r.redeemed_at),
    redeemedBy: r.redeemed_by_account_id == null ? null : Number(r.redeemed_by_account_id),
    redeemedByEmail: (r.redeemed_by_email as string | null) ?? null,
    redeemedChannel: (r.redeemed_channel as VoucherChannel | null) ?? null,
    licenseId: r.license_id == null ? null : Number(r.license_id),
    voidedAt: toDate(r.voided_at),
  };
  return { ...v, status: statusOf(v, now) };
}

const withBatch = (db: Knex) =>
  db('vouchers')
    .join('voucher_batches as b', 'b.id', 'vouchers.batch_id')
    .leftJoin('accounts as redeemer', 'redeemer.id', 'vouchers.redeemed_by_account_id')
    .select(
      ...voucherColumns,
      'b.order_id',
      'b.policy_id',
      'b.product_id',
      'b.created_by_account_id',
      'b.quota_counted',
    );

function withBatchFrom(r: Record<string, unknown>, now: Date): VoucherWithBatch {
  return {
    ...voucherFrom(r, now),
    orderId: Number(r.order_id),
    policyId: Number(r.policy_id),
    productId: Number(r.product_id),
    createdBy: r.created_by_account_id == null ? null : Number(r.created_by_account_id),
    quotaCounted: toBool(r.quota_counted),
  };
}

export async function insertBatch(
  db: Knex,
  b: {
    orderId: number;
    policyId: number;
    productId: number;
    createdBy: number | null;
    quotaCounted: boolean;
    count: number;
    expiresAt: Date;
  },
  now: Date,
): Promise<number> {
  const [id] = await db('voucher_batches').insert({
    order_id: b.orderId,
    policy_id: b.policyId,
    product_id: b.productId,
    created_by_account_id: b.createdBy,
    quota_counted: b.quotaCounted,
    count: b.count,
    expires_at: b.expiresAt,
    created_at: now,
  });
  return Number(id);
}

export async function insertVouchers(
  db: Knex,
  batchId: number,
  codes: { codeHash: string; hint: string }[],
  expiresAt: Date,
): Promise<void> {
  for (let i = 0; i < codes.length; i += 200)
    await db('vouchers').insert(
      codes.slice(i, i + 200).map((c) => ({
        batch_id: batchId,
        code_hash: c.codeHash,
        hint: c.hint,
        expires_at: expiresAt,
      })),
    );
}

export async function findByHash(db: Knex, codeHash: string, now: Date): Promise<VoucherWithBatch | undefined> {
  const row = await withBatch(db).where('vouchers.code_hash', codeHash).first();
  return row ? withBatchFrom(row, now) : undefined;
}

export async function findInOrder(
  db: Knex,
  orderId: number,
  voucherId: number,
  now: Date,
): Promise<VoucherWithBatch | undefined> {
  const row = await withBatch(db).where('vouchers.id', voucherId).where('b.order_id', orderId).first();
  return row ? withBatchFrom(row, now) : undefined;
}

/**
 * THE redemption guard: one update that only an open code passes (not redeemed, not voided, not
 * expired), so of any number of racing redemptions exactly one changes a row. Returns whether it did.
 */
export async function markRedeemed(
  db: Knex,
  codeHash: string,
  by: { accountId: number | null; channel: VoucherChannel },
  now: Date,
): Promise<boolean> {
  const n = await db('vouchers')
    .where({ code_hash: codeHash })
    .whereNull('redeemed_at')
    .whereNull('voided_at')
    .where('expires_at', '>', now)
    .update({ redeemed_at: now, redeemed_by_account_id: by.accountId, redeemed_channel: by.channel });
  return affected(n) === 1;
}

export async function setLicense(db: Knex, voucherId: number, licenseId: number): Promise<void> {
  await db('vouchers').where({ id: voucherId }).update({ license_id: licenseId });
}

/** Voids a code that was not redeemed (expired ones too): one guarded update. Returns whether it did. */
export async function markVoided(db: Knex, voucherId: number, accountId: number | null, now: Date): Promise<boolean> {
  const n = await db('vouchers')
    .where({ id: voucherId })
    .whereNull('redeemed_at')
    .whereNull('voided_at')
    .update({ voided_at: now, voided_by_account_id: accountId });
  return affected(n) === 1;
}

const batchesWithNames = (db: Knex) =>
  db('voucher_batches as b')
    .join('license_policies as p', 'p.id', 'b.policy_id')
    .join('products', 'products.id', 'b.product_id')
    .leftJoin('accounts as creator', 'creator.id', 'b.created_by_account_id')
    .select('b.*', 'p.name as policy_name', 'products.name as product_name', 'creator.name as creator_name');

export function batchFrom(r: Record<string, unknown>): VoucherBatch {
  return {
    id: Number(r.id),
    orderId: Number(r.order_id),
    policyId: Number(r.policy_id),
    productId: Number(r.product_id),
    policyName: String(r.policy_name),
    productName: String(r.product_name),
    createdBy: r.created_by_account_id == null ? null : Number(r.created_by_account_id),
    createdByName: (r.creator_name as string | null) ?? null,
    quotaCounted: toBool(r.quota_counted),
    count: Number(r.count),
    expiresAt: toDate(r.expires_at)!,
    createdAt: toDate(r.created_at)!,
  };
}

export async function listBatches(db: Knex, orderId: number): Promise<VoucherBatch[]> {
  const rows = await batchesWithNames(db).where('b.order_id', orderId).orderBy('b.id', 'desc').limit(100);
  return rows.map(batchFrom);
}

export async function findBatch(db: Knex, id: number): Promise<VoucherBatch | undefined> {
  const row = await batchesWithNames(db).where('b.id', id).first();
  return row ? batchFrom(row) : undefined;
}

/**
 * The Management API's list of an order's batches (app/controllers/manage/vouchers.ts), filtered;
 * cursor-paged over `b.id` by the caller. Rows go through batchFrom.
 */
export function batchesQuery(db: Knex, orderId: number, filter: { policyId?: number; productId?: number }) {
  const q = batchesWithNames(db).where('b.order_id', orderId);
  if (filter.policyId) q.where('b.policy_id', filter.policyId);
  if (filter.productId) q.where('b.product_id', filter.productId);
  return q;
}

/** How many codes of each batch are redeemed, voided and unused (open, or expired with the batch). */
export async function countsOf(
  db: Knex,
  batchIds: number[],
): Promise<Map<number, { redeemed: number; voided: number; unused: number }>> {
  const counts = new Map<number, { redeemed: number; voided: number; unused: number }>();
  if (!batchIds.length) return counts;
  const rows = await db('vouchers')
    .whereIn('batch_id', batchIds)
    .groupBy('batch_id')
    .select(
      'batch_id',
      db.raw('sum(case when redeemed_at is not null then 1 else 0 end) as redeemed'),
      db.raw('sum(case when redeemed_at is null and voided_at is not null then 1 else 0 end) as voided'),
      db.raw('sum(case when redeemed_at is null and voided_at is null then 1 else 0 end) as unused'),
    );
  for (const r of rows as Record<string, unknown>[])
    counts.set(Number(r.batch_id), {
      redeemed: Number(r.redeemed),
      voided: Number(r.voided),
      unused: Number(r.unused),
    });
  return counts;
}

/** A voucher with its batch's order, policy and creator, by id (the Management API's loader checks the order). */
export async function findWithBatch(db: Knex, voucherId: number, now: Date): Promise<VoucherWithBatch | undefined> {
  const row = await withBatch(db).where('vouchers.id', voucherId).first();
  return row ? withBatchFrom(row, now) : undefined;
}

/** The ids of a batch's codes by their hash: which stored code a plain code just generated is. */
export async function idsByHash(db: Knex, batchId: number): Promise<Map<string, number>> {
  const rows = await db('vouchers').where({ batch_id: batchId }).select('id', 'code_hash');
  return new Map(rows.map((r: Record<string, unknown>) => [String(r.code_hash), Number(r.id)]));
}

export async function listForBatches(db: Knex, batchIds: number[], now: Date): Promise<Voucher[]> {
  if (!batchIds.length) return [];
  const rows = await db('vouchers')
    .leftJoin('accounts as redeemer', 'redeemer.id', 'vouchers.redeemed_by_account_id')
    .whereIn('vouchers.batch_id', batchIds)
    .orderBy('vouchers.id')
    .select(...voucherColumns);
  return rows.map((r: Record<string, unknown>) => voucherFrom(r, now));
}

/** The licenses an account redeemed codes for (My licenses lists key-based ones with their key). */
export async function licensesRedeemedBy(db: Knex, accountId: number) {
  const rows = await db('vouchers')
    .join('licenses', 'licenses.id', 'vouchers.license_id')
    .join('products', 'products.id', 'licenses.product_id')
    .where('vouchers.redeemed_by_account_id', accountId)
    .whereNotNull('licenses.license_key')
    .orderBy('licenses.id', 'desc')
    .limit(200)
    .select('licenses.id', 'licenses.license_key', 'products.name as product_name', 'vouchers.redeemed_at');
  return rows.map((r: Record<string, unknown>) => ({
    licenseId: Number(r.id),
    licenseKey: String(r.license_key),
    productName: String(r.product_name),
    redeemedAt: toDate(r.redeemed_at)!,
  }));
}
