import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import i18next, { type i18n, type TFunction } from 'i18next';
import { SUPPORTED_LANGUAGES, type Language } from '../../config/index.ts';

export type { TFunction };

const localesDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'config', 'locales');

export function loadLocale(lng: Language): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(localesDir, `${lng}.json`), 'utf8')) as Record<string, unknown>;
}

/** One i18next instance per app (no global singleton), every language loaded synchronously. */
export function createI18n(): i18n {
  const resources = Object.fromEntries(SUPPORTED_LANGUAGES.map((lng) => [lng, { translation: loadLocale(lng) }]));
  const instance = i18next.createInstance();
  void instance.init({
    resources,
    lng: 'en',
    fallbackLng: 'en',
    supportedLngs: [...SUPPORTED_LANGUAGES],
    interpolation: { escapeValue: false }, // EJS escapes on output
    initAsync: false,
    returnNull: false,
  });
  return instance;
}

export function isLanguage(value: unknown): value is Language {
  return typeof value === 'string' && (SUPPORTED_LANGUAGES as readonly string[]).includes(value);
}

/** Picks the best supported language from an Accept-Language header. */
export function fromAcceptLanguage(header: string | undefined): Language | undefined {
  if (!header) return undefined;
  const ranked = header
    .split(',')
    .map((part) => {
      const [tag, ...params] = part.trim().split(';');
      const q = params.find((p) => p.trim().startsWith('q='));
      return { lng: (tag ?? '').trim().toLowerCase().split('-')[0], q: q ? Number(q.trim().slice(2)) : 1 };
    })
    .filter((x) => x.lng && Number.isFinite(x.q) && x.q > 0)
    .sort((a, b) => b.q - a.q);
  return ranked.map((x) => x.lng).find(isLanguage);
}
