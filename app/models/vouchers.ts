import type { Knex } from 'knex';
import { affected, countOf, likeSql, toBool, toDate } from './normalise.ts';
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

// --- the console: every batch of every order (docs/console.md, "Redeemable codes") ---

/**
 * A batch's status, from its codes: `open` some code can still be redeemed; `expired` none can, but
 * some expired unused; `redeemed` every code was redeemed; `voided` the rest were voided. Exactly one
 * applies to each batch (the list's filter and its rows agree: batchStatusOf and whereBatchStatus).
 */
export const BATCH_STATUSES = ['open', 'redeemed', 'expired', 'voided'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

export interface BatchCounts {
  total: number;
  redeemed: number;
  voided: number;
  expired: number;
  open: number;
}

export interface BatchSummary extends VoucherBatch {
  orderRef: string;
  customerId: number;
  customerName: string;
  counts: BatchCounts;
  status: BatchStatus;
}

export interface BatchFilter {
  status?: BatchStatus;
  productId?: number;
  createdBy?: number;
  orderId?: number;
  /** Text in the order's number or reference or the customer's name. */
  q?: string;
}

export function batchStatusOf(c: BatchCounts): BatchStatus {
  if (c.open > 0) return 'open';
  if (c.expired > 0) return 'expired';
  return c.redeemed === c.total ? 'redeemed' : 'voided';
}

/** Codes of batch `b` (the outer query's alias) matching `where`: an EXISTS on the vouchers' batch index. */
const codesOf = (db: Knex, where: (q: Knex.QueryBuilder) => Knex.QueryBuilder) =>
  where(db('vouchers as v').whereRaw('v.batch_id = b.id').select(db.raw('1')));
const unused = (q: Knex.QueryBuilder) => q.whereNull('v.redeemed_at').whereNull('v.voided_at');

/** The batches of one status (BATCH_STATUSES), as EXISTS tests on their codes. */
function whereBatchStatus(db: Knex, q: Knex.QueryBuilder, status: BatchStatus, now: Date) {
  const openCodes = codesOf(db, (c) => unused(c).where('v.expires_at', '>', now));
  const anyUnused = codesOf(db, unused);
  if (status === 'open') return q.whereExists(openCodes);
  if (status === 'expired') return q.whereNotExists(openCodes).whereExists(anyUnused);
  const unredeemed = codesOf(db, (c) => c.whereNull('v.redeemed_at'));
  if (status === 'redeemed') return q.whereNotExists(unredeemed);
  return q.whereNotExists(anyUnused).whereExists(unredeemed);
}

function filteredBatches(db: Knex, f: BatchFilter, now: Date) {
  const q = db('voucher_batches as b')
    .join('orders', 'orders.id', 'b.order_id')
    .join('customers', 'customers.id', 'orders.customer_id');
  if (f.orderId) q.where('b.order_id', f.orderId);
  if (f.productId) q.where('b.product_id', f.productId);
  if (f.createdBy) q.where('b.created_by_account_id', f.createdBy);
  if (f.q) {
    const text = f.q;
    q.where((w) =>
      w
        .whereRaw(...likeSql('orders.order_ref', text))
        .orWhereRaw(...likeSql('orders.reference', text))
        .orWhereRaw(...likeSql('customers.name', text)),
    );
  }
  if (f.status) whereBatchStatus(db, q, f.status, now);
  return q;
}

/** How many codes of each batch are redeemed, voided, expired unused and open (one grouped query on the batch index). */
export async function countsOf(db: Knex, batchIds: number[], now: Date): Promise<Map<number, BatchCounts>> {
  const out = new Map<number, BatchCounts>();
  if (!batchIds.length) return out;
  const rows = await db('vouchers')
    .whereIn('batch_id', batchIds)
    .groupBy('batch_id')
    .select(
      'batch_id',
      db.raw('count(*) as total'),
      db.raw('sum(case when redeemed_at is not null then 1 else 0 end) as redeemed'),
      db.raw('sum(case when redeemed_at is null and voided_at is not null then 1 else 0 end) as voided'),
      db.raw(
        'sum(case when redeemed_at is null and voided_at is null and expires_at <= ? then 1 else 0 end) as expired',
        [now],
      ),
    );
  for (const r of rows as Record<string, unknown>[]) {
    const c = {
      total: Number(r.total),
      redeemed: Number(r.redeemed),
      voided: Number(r.voided),
      expired: Number(r.expired),
    };
    out.set(Number(r.batch_id), { ...c, open: c.total - c.redeemed - c.voided - c.expired });
  }
  return out;
}

const BATCH_COLUMNS = [
  'b.*',
  'p.name as policy_name',
  'products.name as product_name',
  'creator.name as creator_name',
  'orders.order_ref',
  'orders.customer_id',
  'customers.name as customer_name',
];

async function summaries(db: Knex, rows: Record<string, unknown>[], now: Date): Promise<BatchSummary[]> {
  const counts = await countsOf(
    db,
    rows.map((r) => Number(r.id)),
    now,
  );
  return rows.map((r) => {
    const c = counts.get(Number(r.id)) ?? { total: 0, redeemed: 0, voided: 0, expired: 0, open: 0 };
    return {
      ...batchFrom(r),
      orderRef: String(r.order_ref),
      customerId: Number(r.customer_id),
      customerName: String(r.customer_name),
      counts: c,
      status: batchStatusOf(c),
    };
  });
}

/** A page of batches over every order, newest first, with their code counts. */
export async function listBatchSummaries(
  db: Knex,
  f: BatchFilter,
  now: Date,
  limit: number,
  offset: number,
): Promise<BatchSummary[]> {
  const rows = await filteredBatches(db, f, now)
    .join('license_policies as p', 'p.id', 'b.policy_id')
    .join('products', 'products.id', 'b.product_id')
    .leftJoin('accounts as creator', 'creator.id', 'b.created_by_account_id')
    .orderBy('b.id', 'desc')
    .limit(limit)
    .offset(offset)
    .select(BATCH_COLUMNS);
  return summaries(db, rows, now);
}

export async function countBatches(db: Knex, f: BatchFilter, now: Date): Promise<number> {
  return countOf(await filteredBatches(db, f, now).count({ n: '*' }).first());
}

/** One batch with its order, customer and counts, or undefined. */
export async function findBatchSummary(db: Knex, id: number, now: Date): Promise<BatchSummary | undefined> {
  const row = await db('voucher_batches as b')
    .join('orders', 'orders.id', 'b.order_id')
    .join('customers', 'customers.id', 'orders.customer_id')
    .join('license_policies as p', 'p.id', 'b.policy_id')
    .join('products', 'products.id', 'b.product_id')
    .leftJoin('accounts as creator', 'creator.id', 'b.created_by_account_id')
    .where('b.id', id)
    .first(BATCH_COLUMNS);
  return row ? (await summaries(db, [row], now))[0] : undefined;
}

/** Who generated batches (the list's creator filter): at most 500, by name. */
export async function batchCreators(db: Knex): Promise<{ id: number; name: string; email: string }[]> {
  const rows = await db('accounts')
    .whereIn('id', db('voucher_batches').distinct('created_by_account_id').whereNotNull('created_by_account_id'))
    .orderBy('name')
    .limit(500)
    .select('id', 'name', 'email');
  return rows.map((r: Record<string, unknown>) => ({ id: Number(r.id), name: String(r.name), email: String(r.email) }));
}

/** The codes of a batch that were neither redeemed nor voided (open or expired), with their batch's facts, by id. */
export async function unusedInBatch(db: Knex, batchId: number, now: Date): Promise<VoucherWithBatch[]> {
  const rows = await withBatch(db)
    .where('vouchers.batch_id', batchId)
    .whereNull('vouchers.redeemed_at')
    .whereNull('vouchers.voided_at')
    .orderBy('vouchers.id');
  return rows.map((r: Record<string, unknown>) => withBatchFrom(r, now));
}
