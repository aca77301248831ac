import type { Knex } from 'knex';

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
};

const COLUMNS = ['brandings.id', 'display_name', 'primary_color', 'accent_color', 'support_email', 'default_language', 'logo_mime'];

function fromRow(r: Record<string, unknown>): Branding {
  return {
    id: Number(r.id),
    displayName: String(r.display_name),
    primaryColor: String(r.primary_color),
    accentColor: String(r.accent_color),
    supportEmail: (r.support_email as string | null) ?? null,
    defaultLanguage: String(r.default_language),
    hasLogo: !!r.logo_mime,
  };
}

/** The branding and bound portal for a host name; the branding named "default" applies to unknown hosts. */
export async function resolveHost(db: Knex, hostname: string): Promise<{ branding: Branding; portal: Portal | null }> {
  const row = await db('branding_hosts').join('brandings', 'brandings.id', 'branding_hosts.branding_id').where('branding_hosts.hostname', hostname.toLowerCase()).first([...COLUMNS, 'branding_hosts.portal']);
  if (row) return { branding: fromRow(row), portal: (row.portal as Portal | null) ?? null };
  const fallback = await db('brandings').where({ name: 'default' }).first(COLUMNS);
  return { branding: fallback ? fromRow(fallback) : BUILT_IN_BRANDING, portal: null };
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
}

export async function insert(db: Knex, b: NewBranding, now: Date): Promise<number> {
  const [id] = await db('brandings').insert({
    name: b.name,
    display_name: b.displayName,
    primary_color: b.primaryColor ?? BUILT_IN_BRANDING.primaryColor,
    accent_color: b.accentColor ?? BUILT_IN_BRANDING.accentColor,
    support_email: b.supportEmail ?? null,
    default_language: b.defaultLanguage ?? 'en',
    created_at: now,
    updated_at: now,
  });
  return Number(id);
}

export async function insertHost(db: Knex, brandingId: number, hostname: string, portal: Portal | null, now: Date): Promise<void> {
  await db('branding_hosts').insert({ branding_id: brandingId, hostname: hostname.toLowerCase(), portal, created_at: now, updated_at: now });
}
