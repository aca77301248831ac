import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ejs from 'ejs';
import type { Knex } from 'knex';
import { isLanguage, type TFunction } from '../lib/i18n.ts';
import type { Delivery, Mailer } from '../lib/mailer.ts';
import { type Branding, type Portal, resolveHost } from '../models/brandings.ts';
import { dataDirSecretBox } from '../crypto/secret-box.ts';
import { makePaths } from '../paths.ts';
import { type NotificationKind, unsubscribeHeaders, unsubscribeToken } from './unsubscribe.ts';

/** Every mail Portico sends, one template each in views/mail/<kind>.ejs (docs/console.md, Mail). */
export const MAIL_KINDS = [
  'invite',
  'reset',
  'unlock',
  'license-invitation',
  'dispatch',
  'webhook-disabled',
  'renewal-state',
  'license-expiring',
  'maintenance-ending',
  'lease-ending',
  'manager-digest',
  'staff-digest',
] as const;
export type MailKind = (typeof MAIL_KINDS)[number];

export const isMailKind = (v: unknown): v is MailKind => (MAIL_KINDS as readonly unknown[]).includes(v);

type Paths = ReturnType<typeof makePaths>;

/**
 * Where a link leads: a portal (on the branding's host bound to it), `account` pages (login, password,
 * invitations: on the host the request came on, else the branding's), `console` (BASE_URL: the
 * console is served on unbound hosts only).
 */
export type LinkArea = Portal | 'account' | 'console';
export type UrlFor = (area: LinkArea, build: (p: Paths) => string) => string;

export interface MailDeps {
  db: Knex;
  mailer: Mailer;
  baseUrl: string;
  translatorFor: (lng: string) => TFunction;
  /** dataDir: where the secret box key lives (one-click unsubscribe links are signed with it). */
  config?: { defaultLanguage: string; dataDir?: string };
  /** The host name the request came on: its branding brands the mail. Absent (a job): `brandingId`'s host, else BASE_URL's. */
  origin?: string;
  /** A job's mail about an order: the order's branding (orders.branding_id); null or absent: BASE_URL's. */
  brandingId?: number | null;
}

export interface MailRequest {
  to: string;
  /** The recipient's account language, when the address has an account. */
  language?: string | null;
  /** The template's data; links are built through `url` so they land on the branding's hosts. */
  data: (url: UrlFor) => Record<string, unknown>;
  /** Extra headers sent as given. */
  headers?: Record<string, string>;
  /**
   * A notification the recipient can turn off: the mail carries a one-click unsubscribe link for
   * this kind and address (footer, `List-Unsubscribe` and `List-Unsubscribe-Post` headers).
   */
  unsubscribe?: NotificationKind;
}

export interface RenderedMail {
  to: string;
  language: string;
  subject: string;
  text: string;
  html: string;
  fromName: string;
  replyTo: string | null;
  headers: Record<string, string>;
}

const viewsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'views', 'mail');

/** The branding a mail from `origin` carries, and a URL builder on that branding's hosts. */
async function brandingContext(deps: MailDeps, origin: string | undefined) {
  const base = new URL(deps.baseUrl);
  const hostname = (origin ?? base.hostname).toLowerCase();
  const { branding } = await resolveHost(deps.db, hostname);
  const hosts: { hostname: string; portal: Portal | null }[] = branding.id
    ? await deps
        .db('branding_hosts')
        .where({ branding_id: branding.id })
        .orderBy('hostname')
        .select('hostname', 'portal')
    : [];
  // Hosts share BASE_URL's scheme and port (behind a proxy: https on 443, no port).
  const onHost = (h: string) => `${base.protocol}//${h}${base.port ? `:${base.port}` : ''}`;
  const fallback = { root: deps.baseUrl, portal: null as Portal | null };
  const hostFor = (area: LinkArea) => {
    if (area === 'console') return fallback;
    const bound = area === 'account' ? undefined : hosts.find((h) => h.portal === area);
    const own = area === 'account' ? hosts.find((h) => h.hostname === hostname) : undefined;
    const chosen =
      bound ??
      own ??
      hosts.find((h) => h.portal === null) ??
      (area === 'account' ? hosts.find((h) => h.portal === 'portal') : undefined);
    return chosen ? { root: onHost(chosen.hostname), portal: chosen.portal } : fallback;
  };
  const url: UrlFor = (area, build) => {
    const { root, portal } = hostFor(area);
    return `${root}${build(makePaths(portal))}`;
  };
  // /branding/logo answers with the logo of the host's branding: only a host of this branding will do.
  const logoRoot = hosts.length
    ? hostFor('account').root
    : branding.id !== null && origin === undefined
      ? deps.baseUrl
      : null;
  const logoUrl = branding.hasLogo && logoRoot ? `${logoRoot}${makePaths(null).brandingLogo()}` : null;
  return { branding, url, logoUrl };
}

/** A kind's strings in config/locales/xx.mail.json: `license-invitation` → `mails.licenseInvitation.*`. */
const localeKeyOf = (kind: MailKind) => kind.replace(/-(\w)/g, (_m, c: string) => c.toUpperCase());

/** EJS escapes HTML in the HTML part; the plain-text part is the same template with no escaping. */
const escapeNothing = (v: unknown) => (v === undefined || v === null ? '' : String(v));

function tidyText(text: string): string {
  return `${text
    .split('\n')
    .map((l) => l.trimEnd().replace(/^\s+(?=\S)/, (m) => (m.length >= 4 ? '    ' : '')))
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim()}\n`;
}

/**
 * Renders one mail (subject, HTML and plain text, sender) in the recipient's language — their
 * account's, else their branding's default, else the installation's — with the branding of the
 * context it comes from: sender name and Reply-To, links on the hosts bound to its portals, logo,
 * colours and footer.
 */
export async function renderMail(deps: MailDeps, kind: MailKind, req: MailRequest): Promise<RenderedMail> {
  const origin = deps.origin ?? (deps.brandingId ? await hostOfBranding(deps.db, deps.brandingId) : undefined);
  const { branding, url, logoUrl } = await brandingContext(deps, origin);
  const language =
    [req.language, branding.id !== null ? branding.defaultLanguage : null, deps.config?.defaultLanguage].find(
      isLanguage,
    ) ?? 'en';
  return renderWith(deps, kind, req, { branding, url, logoUrl, language });
}

async function renderWith(
  deps: MailDeps,
  kind: MailKind,
  req: MailRequest,
  c: { branding: Branding; url: UrlFor; logoUrl: string | null; language: string },
): Promise<RenderedMail> {
  const t = deps.translatorFor(c.language);
  const data = req.data(c.url);
  let unsubscribeUrl: string | null = null;
  if (req.unsubscribe) {
    if (!deps.config?.dataDir) throw new Error('a mail with an unsubscribe link needs config.dataDir (the secret box)');
    const token = unsubscribeToken(dataDirSecretBox(deps.config.dataDir), req.to, req.unsubscribe);
    unsubscribeUrl = c.url('account', (p) => p.unsubscribe(token));
  }
  const brand = c.branding.displayName;
  const locals = {
    ...data,
    t,
    brand,
    branding: c.branding,
    logoUrl: c.logoUrl,
    language: c.language,
    unsubscribeUrl,
    subject: t(`mails.${localeKeyOf(kind)}.subject`, { ...data, brand }),
  };
  const file = path.join(viewsDir, `${kind}.ejs`);
  const html = await ejs.renderFile(path.join(viewsDir, '_layout.ejs'), {
    ...locals,
    body: await ejs.renderFile(file, { ...locals, html: true }),
  });
  const text = await ejs.renderFile(
    path.join(viewsDir, '_layout.text.ejs'),
    { ...locals, body: await ejs.renderFile(file, { ...locals, html: false }, { escape: escapeNothing }) },
    { escape: escapeNothing },
  );
  return {
    to: req.to,
    language: c.language,
    subject: locals.subject,
    text: tidyText(text),
    html,
    fromName: c.branding.mailFromName || brand,
    replyTo: c.branding.mailReplyTo || c.branding.supportEmail,
    headers: { ...(req.headers ?? {}), ...(unsubscribeUrl ? unsubscribeHeaders(unsubscribeUrl) : {}) },
  };
}

/** The host a branding's job mail is made as from: its unbound host, else its first (none: BASE_URL's). */
async function hostOfBranding(db: Knex, brandingId: number): Promise<string | undefined> {
  const hosts: { hostname: string; portal: string | null }[] = await db('branding_hosts')
    .where({ branding_id: brandingId })
    .orderBy('hostname')
    .select('hostname', 'portal');
  return (hosts.find((h) => h.portal === null) ?? hosts[0])?.hostname;
}

/** Renders and sends (through the outbox and the job queue) one mail; `causedBy` sees what became of it. */
export async function sendMail(
  deps: MailDeps,
  kind: MailKind,
  req: MailRequest,
  opts: { causedBy?: number | null; db?: Knex } = {},
): Promise<Delivery> {
  const mail = await renderMail(deps, kind, req);
  return deps.mailer.send(
    {
      to: mail.to,
      subject: mail.subject,
      text: mail.text,
      html: mail.html,
      fromName: mail.fromName,
      replyTo: mail.replyTo,
      headers: mail.headers,
      causedBy: opts.causedBy ?? null,
    },
    opts.db,
  );
}

/** Sample data for the console's preview of each kind (docs/console.md, Mail). */
export const SAMPLE_DATA: Record<MailKind, (url: UrlFor) => Record<string, unknown>> = {
  invite: (url) => ({ name: 'Alex Example', link: url('account', (p) => p.resetPassword('sample-token')), days: 7 }),
  reset: (url) => ({ name: 'Alex Example', link: url('account', (p) => p.resetPassword('sample-token')), minutes: 60 }),
  unlock: (url) => ({ name: 'Alex Example', link: url('account', (p) => p.unlockLogin('sample-token')), minutes: 60 }),
  'license-invitation': (url) => ({
    name: 'Alex Example',
    inviter: 'Sam Manager',
    product: 'Example Pro',
    link: url('account', (p) => p.licenseInvitation('sample-token')),
    days: 14,
  }),
  dispatch: (url) => ({
    product: 'Example Pro',
    key: 'ABCDE-FGHIJ-KLMNO-PQRST',
    expires: '2030-12-31',
    offline: url('offline', (p) => p.offline()),
    airgap: url('airgap', (p) => p.airgap()),
  }),
  'webhook-disabled': (url) => ({
    name: 'Alex Example',
    url: 'https://shop.example.com/hooks/portico',
    hours: 24,
    link: url('console', (p) => p.adminWebhooks()),
  }),
  'renewal-state': (url) => ({
    name: 'Alex Example',
    kind: 'more_seats',
    order: 'SO-10021',
    state: 'in_progress',
    note: 'A quote for 20 more seats is on its way.',
    link: url('portal', (p) => p.portalOrder(7)),
  }),
  'license-expiring': (url) => ({
    name: 'Alex Example',
    product: 'Example Pro',
    licenseKey: 'ABCDE-FGHIJ-KLMNO-PQRST',
    orderRef: 'SO-10021',
    date: '2030-12-31',
    days: 30,
    daysLeft: 30,
    link: url('portal', (p) => p.portal()),
  }),
  'maintenance-ending': (url) => ({
    name: 'Alex Example',
    product: 'Example Pro',
    licenseKey: 'ABCDE-FGHIJ-KLMNO-PQRST',
    orderRef: 'SO-10021',
    date: '2030-12-31',
    days: 7,
    daysLeft: 7,
    link: url('portal', (p) => p.portal()),
  }),
  'lease-ending': (url) => ({
    name: 'Alex Example',
    product: 'Example Pro',
    licenseKey: 'ABCDE-FGHIJ-KLMNO-PQRST',
    orderRef: 'SO-10021',
    device: 'design-01.example.local',
    date: '2030-12-31',
    daysLeft: 5,
    link: url('portal', (p) => p.portal()),
  }),
  'manager-digest': (url) => ({
    name: 'Sam Manager',
    count: 3,
    more: 0,
    orders: [
      {
        ref: 'SO-10021',
        link: url('portal', (p) => p.portalOrder(7)),
        items: [
          {
            kind: 'license_expiring',
            product: 'Example Pro',
            licenseKey: 'ABCDE-FGHIJ-KLMNO-PQRST',
            date: '2030-12-31',
            daysLeft: 30,
          },
          { kind: 'seats_high', used: 19, seats: 20, percent: 95 },
          { kind: 'refusals_spike', product: 'Example Pro', licenseKey: 'ABCDE-FGHIJ-KLMNO-PQRST', refusals: 42 },
        ],
      },
    ],
  }),
  'staff-digest': (url) => ({
    name: 'Alex Example',
    since: '2030-12-24',
    kinds: { license_expiring: 12, maintenance_ending: 3, lease_ending: 2, seats_high: 1, refusals_spike: 0 },
    openRenewals: 4,
    failedMails: 1,
    failedWebhooks: 0,
    link: url('console', (p) => p.admin()),
    renewalsLink: url('console', (p) => p.adminRenewals()),
    outboxLink: url('console', (p) => p.adminOutbox()),
  }),
};

/**
 * The preview: one kind for one branding (BUILT_IN_BRANDING: the built-in look) and language, with
 * sample data and links on the branding's first host (BASE_URL when it has none).
 */
export async function previewMail(
  deps: MailDeps,
  kind: MailKind,
  branding: Branding,
  language: string,
): Promise<RenderedMail> {
  const host: string | undefined = branding.id
    ? await deps
        .db('branding_hosts')
        .where({ branding_id: branding.id })
        .orderBy('hostname')
        .first('hostname')
        .then((r) => r?.hostname)
    : undefined;
  const onBaseUrl: UrlFor = (_area, build) => `${deps.baseUrl}${build(makePaths(null))}`;
  const c = host ? await brandingContext(deps, host) : { url: onBaseUrl, logoUrl: null };
  return renderWith(
    deps,
    kind,
    { to: 'alex@example.com', data: SAMPLE_DATA[kind] },
    { branding, url: c.url, logoUrl: c.logoUrl, language },
  );
}
