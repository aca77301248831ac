import type { Knex } from 'knex';
import * as licenses from '../models/licenses.ts';
import * as licenseUsers from '../models/license-users.ts';
import { AppError, ValidationError, notFound } from '../lib/errors.ts';
import { normaliseLicenseKey } from '../lib/license-keys.ts';
import { statusOf } from '../models/licenses.ts';
import { toBool, toDate } from '../models/normalise.ts';
import { auditedChange } from './changes.ts';
import type { LinkMailDeps } from './auth.ts';
import type { Actor } from './context.ts';
import { sendMail } from './mail.ts';

/** Sending license keys to the people who will use them, and exporting an order's licenses. */

export interface DispatchItem {
  licenseId: number;
  email: string;
}

export const MAX_DISPATCH = 500;

/** How many mails are on their way to SMTP (`sending`, the job queue) and how many wait in the outbox (`queued`). */
export interface DispatchResult {
  sending: number;
  queued: number;
}

/**
 * Records to whom and when each license was sent (one transaction, one audit event), then mails each
 * recipient their key and how to activate it (app/services/mail.ts): in the recipient's language if
 * the address has an account, else the branding's default, with the branding of the host it was made on.
 */
export async function dispatchLicenses(
  deps: LinkMailDeps,
  actor: Actor,
  orderId: number,
  items: DispatchItem[],
): Promise<DispatchResult> {
  if (!items.length) throw new ValidationError({ _form: 'portal.dispatchNothing' });
  if (items.length > MAX_DISPATCH) throw new ValidationError({ _form: 'portal.dispatchTooMany' });
  const now = deps.clock.now();
  const sent = await auditedChange(deps, actor, async (trx) => {
    const rows: licenses.License[] = [];
    for (const item of items) {
      const license = await licenses.findById(trx, item.licenseId, now);
      // A license of another order is out of scope: 404, the same answer as for one that does not exist.
      if (!license || license.orderId !== orderId) throw notFound();
      if (!license.licenseKey) throw new ValidationError({ _form: 'portal.dispatchUserBased' });
      await trx('licenses')
        .where({ id: license.id })
        .update({ dispatched_to: item.email, dispatched_at: now, updated_at: now });
      rows.push(license);
    }
    return {
      result: rows,
      audit: {
        action: 'licenses.dispatched',
        objectType: 'order',
        objectId: orderId,
        orderId,
        after: { items: items.map((i) => ({ licenseId: i.licenseId, email: i.email })) },
      },
    };
  });
  const result: DispatchResult = { sending: 0, queued: 0 };
  for (const [i, license] of sent.entries()) {
    const email = items[i]!.email;
    const account = await deps.db('accounts').where({ email }).first('language');
    const delivery = await sendMail(
      deps,
      'dispatch',
      {
        to: email,
        language: account?.language ?? null,
        data: (url) => ({
          product: license.productName,
          key: license.licenseKey,
          expires: license.expiresAt ? license.expiresAt.toISOString().slice(0, 10) : null,
          offline: url('offline', (p) => p.offline()),
          airgap: url('airgap', (p) => p.airgap()),
        }),
      },
      { causedBy: actor.accountId },
    );
    result[delivery === 'sending' ? 'sending' : 'queued'] += 1;
  }
  return result;
}

export const EXPORT_HEADER = [
  'license_id',
  'license_key',
  'product',
  'status',
  'times_activated',
  'max_activations',
  'start_date',
  'expires_at',
  'dispatched_to',
  'dispatched_at',
  'users',
  'note',
];

/** The order's licenses in batches of 1,000 (keyset on id), each batch with its users in one query. */
export async function* exportBatches(db: Knex, orderId: number, now: Date): AsyncIterable<unknown[][]> {
  let after = 0;
  for (;;) {
    const rows = await db('licenses')
      .join('products', 'products.id', 'licenses.product_id')
      .where('licenses.order_id', orderId)
      .where('licenses.id', '>', after)
      .orderBy('licenses.id')
      .limit(1000)
      .select('licenses.*', 'products.name as product_name');
    if (!rows.length) return;
    const ids = rows.map((r: { id: number }) => Number(r.id));
    const byLicense = await licenseUsers.emailsByLicense(db, ids);
    yield rows.map((r: Record<string, unknown>) => {
      const expiresAt = toDate(r.expires_at);
      return [
        Number(r.id),
        r.license_key,
        r.product_name,
        statusOf({ enabled: toBool(r.enabled), expiresAt, timesActivated: Number(r.times_activated) }, now),
        Number(r.times_activated),
        toBool(r.unlimited_activations) ? 'unlimited' : Number(r.max_activations),
        toDate(r.start_date),
        expiresAt,
        r.dispatched_to,
        toDate(r.dispatched_at),
        (byLicense.get(Number(r.id)) ?? []).join('; '),
        r.note,
      ];
    });
    after = ids.at(-1)!;
  }
}

/** Parses an uploaded dispatch CSV (license key, e-mail per line; a header line is allowed). */
export function parseDispatchCsv(text: string): { rows: { key: string; email: string }[]; badLines: number[] } {
  const rows: { key: string; email: string }[] = [];
  const badLines: number[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((line, index) => {
    const trimmed = line.trim();
    if (!trimmed) return;
    const [key, email, ...rest] = trimmed.split(/[,;\t]/).map((c) => c.trim().replace(/^"(.*)"$/, '$1'));
    if (index === 0 && /key/i.test(key ?? '') && /mail/i.test(email ?? '')) return;
    if (!key || !email || rest.some(Boolean) || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) badLines.push(index + 1);
    else rows.push({ key, email: email.toLowerCase() });
  });
  return { rows, badLines };
}

/**
 * Dispatch from an uploaded CSV (license key, e-mail address per line; a header line is allowed): the
 * whole file is refused, naming the lines or keys at fault, unless every line reads and every key is
 * a license of this order.
 */
export async function dispatchFromCsv(
  deps: LinkMailDeps,
  actor: Actor,
  orderId: number,
  csv: Buffer | undefined,
): Promise<DispatchResult> {
  if (!csv?.length) throw AppError.validation({ csv: 'portal.dispatch.csvMissing' });
  const text = csv.toString('utf8');
  if (text.includes('\u0000')) throw AppError.validation({ csv: 'portal.dispatch.csvNotText' });
  const { rows, badLines } = parseDispatchCsv(text);
  if (badLines.length)
    throw AppError.validation({ csv: 'portal.dispatch.csvBadLines' }, { lines: badLines.slice(0, 10).join(', ') });
  const keys = rows.map((r) => normaliseLicenseKey(r.key));
  const idByKey = await licenses.idsByKeysInOrder(deps.db, orderId, keys);
  const unknown = keys.filter((k) => !idByKey.has(k));
  if (unknown.length)
    throw AppError.validation({ csv: 'portal.dispatch.csvUnknownKeys' }, { keys: unknown.slice(0, 5).join(', ') });
  return dispatchLicenses(
    deps,
    actor,
    orderId,
    rows.map((row, i) => ({ licenseId: idByKey.get(keys[i]!)!, email: row.email })),
  );
}
