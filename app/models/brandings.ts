import type { Knex } from 'knex';
import { bumpGeneration } from '../lib/generation-cache.ts';
import { countOf, likeSql, toDate } from './normalise.ts';

export const PORTALS = ['portal', 'offline', 'airgap'] as const;
export type Portal = (typeof PORTALS)[number];

export interface Branding {
  id: number | null;
  displayName: string;
  primaryColor: string;
  accentColor: string;
  supportEmail: string | null;
  defaultLanguage: string;
  hasLogo: boolean;
  /** The footer's "Powered by Portico". */
  showPoweredBy: boolean;
  /** The browser tab shows the logo (when there is one) instead of Portico's icon. */
  logoAsFavicon: boolean;
  /** Mail (app/services/mail.ts): the sender's name (else the display name), Reply-To (else the support address), footer text. */
  mailFromName: string | null;
  mailReplyTo: string | null;
  mailFooter: string | null;
}

/** What a host without a branding of its own shows. */
export const BUILT_IN_BRANDING: Branding = {
  id: null,
  displayName: 'Portico',
  primaryColor: '#1f4e79',
  accentColor: '#d9822b',
  supportEmail: null,
  defaultLanguage: 'en',
  hasLogo: false,
  showPoweredBy: true,
  logoAsFavicon: false,
  mailFromName: null,
  mailReplyTo: null,
  mailFooter: null,
};

const COLUMNS = [
  'brandings.id',
  'display_name',
  'primary_color',
  'accent_color',
  'support_email',
  'default_language',
  'logo_mime',
  'show_powered_by',
  'logo_as_favicon',
  'mail_from_name',
  'mail_reply_to',
  'mail_footer',
];

function fromRow(r: Record<string, unknown>): Branding {
  return {
    id: Number(r.id),
    displayName: String(r.display_name),
    primaryColor: String(r.primary_color),
    accentColor: String(r.accent_color),
    supportEmail: (r.support_email as string | null) ?? null,
    defaultLanguage: String(r.default_language),
    hasLogo: !!r.logo_mime,
    showPoweredBy: !!r.show_powered_by,
    logoAsFavicon: !!r.logo_as_favicon,
    mailFromName: (r.mail_from_name as string | null) ?? null,
    mailReplyTo: (r.mail_reply_to as string | null) ?? null,
    mailFooter: (r.mail_footer as string | null) ?? null,
  };
}

/**
 * The branding and bound portal for a host name; the branding named "default" applies to unknown
 * hosts. One statement on every request: the host's own branding sorts before the default one.
 */
export async function resolveHost(db: Knex, hostname: string): Promise<{ branding: Branding; portal: Portal | null }> {
  const row = await db('brandings')
    .leftJoin('branding_hosts', (j) =>
      j
        .on('branding_hosts.branding_id', 'brandings.id')
        .andOn('branding_hosts.hostname', db.raw('?', [hostname.toLowerCase()])),
    )
    .where((w) => w.whereNotNull('branding_hosts.id').orWhere('brandings.name', 'default'))
    .orderByRaw('CASE WHEN branding_hosts.id IS NULL THEN 1 ELSE 0 END')
    .first([...COLUMNS, 'branding_hosts.portal']);
  if (!row) return { branding: BUILT_IN_BRANDING, portal: null };
  return { branding: fromRow(row), portal: (row.portal as Portal | null) ?? null };
}

/** One branding as a page or a mail shows it (the console's mail preview). */
export async function findBranding(db: Knex, id: number): Promise<Branding | undefined> {
  const row = await db('brandings').where({ 'brandings.id': id }).first(COLUMNS);
  return row ? fromRow(row) : undefined;
}

export async function findLogo(db: Knex, id: number): Promise<{ data: Buffer; mime: string } | undefined> {
  const row = await db('brandings').where({ id }).whereNotNull('logo_mime').first(['logo_data', 'logo_mime']);
  return row ? { data: Buffer.from(row.logo_data as Uint8Array), mime: String(row.logo_mime) } : undefined;
}

export interface NewBranding {
  name: string;
  displayName: string;
  primaryColor?: string;
  accentColor?: string;
  supportEmail?: string | null;
  defaultLanguage?: string;
  showPoweredBy?: boolean;
  logoAsFavicon?: boolean;
  mailFromName?: string | null;
  mailReplyTo?: string | null;
  mailFooter?: string | null;
}

export async function insert(db: Knex, b: NewBranding, now: Date): Promise<number> {
  await bumpGeneration(db, now);
  const [id] = await db('brandings').insert({
    name: b.name,
    display_name: b.displayName,
    primary_color: b.primaryColor ?? BUILT_IN_BRANDING.primaryColor,
    accent_color: b.accentColor ?? BUILT_IN_BRANDING.accentColor,
    support_email: b.supportEmail ?? null,
    default_language: b.defaultLanguage ?? 'en',
    show_powered_by: b.showPoweredBy ?? true,
    logo_as_favicon: b.logoAsFavicon ?? false,
    mail_from_name: b.mailFromName ?? null,
    mail_reply_to: b.mailReplyTo ?? null,
    mail_footer: b.mailFooter ?? null,
    created_at: now,
    updated_at: now,
  });
  return Number(id);
}

export async function insertHost(
  db: Knex,
  brandingId: number,
  hostname: string,
  portal: Portal | null,
  now: Date,
): Promise<number> {
  await bumpGeneration(db, now);
  const [id] = await db('branding_hosts').insert({
    branding_id: brandingId,
    hostname: hostname.toLowerCase(),
    portal,
    created_at: now,
    updated_at: now,
  });
  return Number(id);
}

/** A branding as the console manages it: every column but the logo bytes (their size instead). */
export interface BrandingRecord {
  id: number;
  name: string;
  displayName: string;
  primaryColor: string;
  accentColor: string;
  supportEmail: string | null;
  defaultLanguage: string;
  logoMime: string | null;
  logoSize: number | null;
  showPoweredBy: boolean;
  logoAsFavicon: boolean;
  mailFromName: string | null;
  mailReplyTo: string | null;
  mailFooter: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface BrandingHost {
  id: number;
  brandingId: number;
  hostname: string;
  portal: Portal | null;
}

const recordColumns = (db: Knex) => [
  'id',
  'name',
  'display_name',
  'primary_color',
  'accent_color',
  'support_email',
  'default_language',
  'logo_mime',
  db.raw('LENGTH(logo_data) AS logo_size'),
  'show_powered_by',
  'logo_as_favicon',
  'mail_from_name',
  'mail_reply_to',
  'mail_footer',
  'created_at',
  'updated_at',
];

function recordFromRow(r: Record<string, unknown>): BrandingRecord {
  return {
    id: Number(r.id),
    name: String(r.name),
    displayName: String(r.display_name),
    primaryColor: String(r.primary_color),
    accentColor: String(r.accent_color),
    supportEmail: (r.support_email as string | null) ?? null,
    defaultLanguage: String(r.default_language),
    logoMime: (r.logo_mime as string | null) ?? null,
    logoSize: r.logo_size === null || r.logo_size === undefined ? null : Number(r.logo_size),
    showPoweredBy: !!r.show_powered_by,
    logoAsFavicon: !!r.logo_as_favicon,
    mailFromName: (r.mail_from_name as string | null) ?? null,
    mailReplyTo: (r.mail_reply_to as string | null) ?? null,
    mailFooter: (r.mail_footer as string | null) ?? null,
    createdAt: toDate(r.created_at)!,
    updatedAt: toDate(r.updated_at)!,
  };
}

function hostFromRow(r: Record<string, unknown>): BrandingHost {
  return {
    id: Number(r.id),
    brandingId: Number(r.branding_id),
    hostname: String(r.hostname),
    portal: (r.portal as Portal | null) ?? null,
  };
}

export async function findById(db: Knex, id: number): Promise<BrandingRecord | undefined> {
  const row = await db('brandings').where({ id }).first(recordColumns(db));
  return row ? recordFromRow(row) : undefined;
}

function filtered(db: Knex, q: string | undefined) {
  const query = db('brandings');
  if (q) query.where((w) => w.whereRaw(...likeSql('name', q)).orWhereRaw(...likeSql('display_name', q)));
  return query;
}

export async function list(db: Knex, filter: { q?: string }, limit: number, offset: number): Promise<BrandingRecord[]> {
  return (
    await filtered(db, filter.q).orderBy('name').orderBy('id').limit(limit).offset(offset).select(recordColumns(db))
  ).map(recordFromRow);
}

export async function count(db: Knex, filter: { q?: string }): Promise<number> {
  return countOf(await filtered(db, filter.q).count({ n: '*' }).first());
}

export async function update(db: Knex, id: number, b: Required<NewBranding>, now: Date): Promise<void> {
  await bumpGeneration(db, now);
  await db('brandings').where({ id }).update({
    name: b.name,
    display_name: b.displayName,
    primary_color: b.primaryColor,
    accent_color: b.accentColor,
    support_email: b.supportEmail,
    default_language: b.defaultLanguage,
    show_powered_by: b.showPoweredBy,
    logo_as_favicon: b.logoAsFavicon,
    mail_from_name: b.mailFromName,
    mail_reply_to: b.mailReplyTo,
    mail_footer: b.mailFooter,
    updated_at: now,
  });
}

/** Sets (or with null, clears) the logo. */
export async function setLogo(
  db: Knex,
  id: number,
  logo: { data: Buffer; mime: string } | null,
  now: Date,
): Promise<void> {
  await bumpGeneration(db, now);
  await db('brandings')
    .where({ id })
    .update({ logo_data: logo?.data ?? null, logo_mime: logo?.mime ?? null, updated_at: now });
}

export async function remove(db: Knex, id: number): Promise<void> {
  await bumpGeneration(db, new Date());
  await db('branding_hosts').where({ branding_id: id }).delete();
  await db('brandings').where({ id }).delete();
}

export async function listHosts(db: Knex, brandingId: number): Promise<BrandingHost[]> {
  return (await db('branding_hosts').where({ branding_id: brandingId }).orderBy('hostname')).map(hostFromRow);
}

/** The host names of several brandings at once (for a list page), by branding id. */
export async function hostsByBranding(db: Knex, brandingIds: number[]): Promise<Map<number, BrandingHost[]>> {
  const out = new Map<number, BrandingHost[]>();
  if (brandingIds.length === 0) return out;
  for (const host of (await db('branding_hosts').whereIn('branding_id', brandingIds).orderBy('hostname')).map(
    hostFromRow,
  )) {
    out.set(host.brandingId, [...(out.get(host.brandingId) ?? []), host]);
  }
  return out;
}

export async function findHost(db: Knex, brandingId: number, hostId: number): Promise<BrandingHost | undefined> {
  const row = await db('branding_hosts').where({ id: hostId, branding_id: brandingId }).first();
  return row ? hostFromRow(row) : undefined;
}

export async function removeHost(db: Knex, hostId: number): Promise<void> {
  await bumpGeneration(db, new Date());
  await db('branding_hosts').where({ id: hostId }).delete();
}

/** What the audit trail keeps of a branding: never the logo bytes, only their type and size. */
export function auditView(b: BrandingRecord) {
  return {
    name: b.name,
    displayName: b.displayName,
    primaryColor: b.primaryColor,
    accentColor: b.accentColor,
    supportEmail: b.supportEmail,
    defaultLanguage: b.defaultLanguage,
    logoMime: b.logoMime,
    logoSize: b.logoSize,
    showPoweredBy: b.showPoweredBy,
    logoAsFavicon: b.logoAsFavicon,
    mailFromName: b.mailFromName,
    mailReplyTo: b.mailReplyTo,
    mailFooter: b.mailFooter,
  };
}
