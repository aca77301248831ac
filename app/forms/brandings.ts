import { z } from 'zod';
import { PORTALS } from '../models/brandings.ts';
import { checkbox, hexColor, language, optionalEmail, optionalText, requiredText } from './fields.ts';

const trimLower = (v: unknown) => (typeof v === 'string' ? v.trim().toLowerCase() : v);

/** Lower-cased so that "Default" cannot shadow the fallback branding named "default". */
const brandingName = z.preprocess(
  trimLower,
  z
    .string({ message: 'validation.required' })
    .min(1, { message: 'validation.required' })
    .max(100, { message: 'validation.tooLong' })
    .regex(/^[a-z0-9]+(?:-[a-z0-9]+)*$/, { message: 'validation.code' }),
);

const color = hexColor.transform((s) => s.toLowerCase());

export const brandingForm = z.object({
  name: brandingName,
  display_name: requiredText(200),
  primary_color: color,
  accent_color: color,
  support_email: optionalEmail,
  default_language: language,
  show_powered_by: checkbox,
  logo_as_favicon: checkbox,
  mail_from_name: optionalText(100),
  mail_reply_to: optionalEmail,
  mail_footer: optionalText(500),
});

const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * A DNS host name as Express reports it in `req.hostname`: ASCII labels of letters, digits and inner
 * dashes (an internationalised name in its xn-- form), no port, no trailing dot, and not an IP address
 * (RFC 3696: the last label is never all digits).
 */
export function isHostname(value: string): boolean {
  if (value.length > 253) return false;
  const labels = value.split('.');
  return labels.every((l) => DNS_LABEL.test(l)) && !/^\d+$/.test(labels.at(-1)!);
}

export const hostForm = z.object({
  hostname: z.preprocess(
    trimLower,
    z
      .string({ message: 'validation.required' })
      .min(1, { message: 'validation.required' })
      .max(253, { message: 'validation.tooLong' })
      .refine(isHostname, { message: 'validation.hostname' }),
  ),
  portal: z.preprocess(
    (v) => (v === undefined || v === '' ? null : v),
    z.enum(PORTALS, { message: 'validation.choice' }).nullable(),
  ),
});

export const LOGO_MAX_BYTES = 512 * 1024;

export type LogoCheck = { ok: true; mime: 'image/png' | 'image/jpeg' | 'image/svg+xml' } | { ok: false; error: string };

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const JPEG_SIGNATURE = Buffer.from([0xff, 0xd8, 0xff]);

/**
 * Whether the first element is <svg>. Before it an SVG may have an XML declaration, processing
 * instructions, comments, a doctype and white space (svgProblem then refuses what is not allowed).
 * A plain scan, not a regular expression: a lazy pattern repeated over comments backtracks
 * exponentially on a crafted file.
 */
function hasSvgRoot(text: string): boolean {
  let i = 0;
  const skipPast = (terminator: string, from: number) => {
    const end = text.indexOf(terminator, from);
    return end < 0 ? -1 : end + terminator.length;
  };
  while (i >= 0 && i < text.length) {
    if (/\s/.test(text[i]!)) i += 1;
    else if (text.startsWith('<!--', i)) i = skipPast('-->', i + 4);
    else if (text.startsWith('<?', i)) i = skipPast('?>', i + 2);
    else if (text.slice(i, i + 9).toUpperCase() === '<!DOCTYPE') {
      const close = text.indexOf('>', i);
      if (close < 0) return false;
      const subset = text.slice(i, close).indexOf('['); // an internal subset may itself contain '>'
      const subsetEnd = subset < 0 ? close : text.indexOf(']', i + subset);
      i = subsetEnd < 0 ? -1 : skipPast('>', subsetEnd);
    } else return /^<svg[\s>/]/i.test(text.slice(i, i + 5));
  }
  return false;
}

/**
 * Decides a logo's type from its bytes (never its name or the browser's word) and refuses SVG files
 * that carry active content. The logo is also served under a sandboxing CSP; this check keeps such
 * content out of the database in the first place.
 */
export function checkLogo(data: Buffer): LogoCheck {
  if (data.length >= PNG_SIGNATURE.length && data.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE))
    return { ok: true, mime: 'image/png' };
  if (data.length >= JPEG_SIGNATURE.length && data.subarray(0, JPEG_SIGNATURE.length).equals(JPEG_SIGNATURE))
    return { ok: true, mime: 'image/jpeg' };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(data); // drops a byte order mark
  } catch {
    return { ok: false, error: 'brandings.logoType' };
  }
  if (!hasSvgRoot(text)) return { ok: false, error: 'brandings.logoType' };
  const error = svgProblem(text);
  return error ? { ok: false, error } : { ok: true, mime: 'image/svg+xml' };
}

/** Replaces XML character references so that `&#106;avascript:` is seen as what a browser reads. */
function decodeReferences(text: string): string {
  const named: Record<string, string> = {
    amp: '&',
    lt: '<',
    gt: '>',
    quot: '"',
    apos: "'",
    tab: '\t',
    newline: '\n',
    colon: ':',
  };
  return text.replace(
    /&(?:#(\d{1,7})|#x([0-9a-f]{1,6})|(\w+));?/gi,
    (whole, dec?: string, hex?: string, name?: string) => {
      const code = dec ? Number(dec) : hex ? parseInt(hex, 16) : undefined;
      if (code !== undefined) return code <= 0x10ffff ? String.fromCodePoint(code) : '';
      return named[name!.toLowerCase()] ?? whole;
    },
  );
}

/** A URL scheme as a browser parses it: ASCII tabs, newlines and control characters inside are ignored. */
const scheme = (name: string) => new RegExp(`(?<![\\w+.-])${[...name].join('[\\x00-\\x20]*')}[\\x00-\\x20]*:`, 'i');
const FORBIDDEN_SCHEMES = [scheme('javascript'), scheme('vbscript'), scheme('data')];

const ATTRIBUTE = (name: string) =>
  new RegExp(`(?:^|[\\s"'/])(?:[\\w.-]+:)?${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, 'gi');

/** The first reason an SVG text is refused, as an i18n key; undefined when it is acceptable. */
function svgProblem(text: string): string | undefined {
  const declaration = /^<\?xml\s[^?]*\?>/i.exec(text)?.[0];
  const encoding = declaration && /encoding\s*=\s*["']([^"']*)["']/i.exec(declaration)?.[1];
  if (text.includes('\0') || (encoding && !/^(utf-8|us-ascii)$/i.test(encoding))) return 'brandings.logoSvgEncoding';
  if (/<!\s*(?:DOCTYPE|ENTITY)/i.test(text)) return 'brandings.logoSvgDoctype';
  // The only processing instruction allowed is the XML declaration, and only at the very start.
  if ((text.match(/<\?/g) ?? []).length > (declaration ? 1 : 0)) return 'brandings.logoSvgProcessingInstruction';
  if (/<\s*(?:[\w.-]+:)?script[\s>/]/i.test(text)) return 'brandings.logoSvgScript';
  if (/<\s*(?:[\w.-]+:)?foreignObject[\s>/]/i.test(text)) return 'brandings.logoSvgForeignObject';
  if (/(?:^|[\s"'/])(?:[\w.-]+:)?on[\w.:-]*\s*=/i.test(text)) return 'brandings.logoSvgEventHandler';
  const decoded = decodeReferences(text);
  if (FORBIDDEN_SCHEMES.some((re) => re.test(decoded))) return 'brandings.logoSvgUrl';
  for (const match of text.matchAll(ATTRIBUTE('href'))) {
    const value = decodeReferences(match[1] ?? match[2] ?? match[3] ?? '').trim();
    if (!value.startsWith('#')) return 'brandings.logoSvgExternal';
  }
  // CSS can fetch too: url(…) must point inside the document, and @import is never needed.
  for (const match of decoded.matchAll(/url\s*\(\s*(["']?)\s*([^)]*)/gi))
    if (!match[2]!.startsWith('#')) return 'brandings.logoSvgExternal';
  if (/@import/i.test(decoded)) return 'brandings.logoSvgExternal';
  return undefined;
}
