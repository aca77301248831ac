import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import i18next, { type i18n, type TFunction } from 'i18next';
import { SUPPORTED_LANGUAGES, type Language } from '../../config/index.ts';

export type { TFunction };

const localesDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'config', 'locales');

type Tree = Record<string, unknown>;

function merge(into: Tree, from: Tree): Tree {
  for (const [k, v] of Object.entries(from)) {
    into[k] =
      v && typeof v === 'object' && into[k] && typeof into[k] === 'object' ? merge(into[k] as Tree, v as Tree) : v;
  }
  return into;
}

/**
 * A language's strings: `<lng>.json` merged with every `<lng>.<area>.json` beside it, so each area of
 * the product can keep its strings in a file of its own.
 */
export function loadLocale(lng: Language): Tree {
  const files = [
    `${lng}.json`,
    ...fs
      .readdirSync(localesDir)
      .filter((f) => f.startsWith(`${lng}.`) && f.endsWith('.json') && f !== `${lng}.json`)
      .sort(),
  ];
  return files.reduce<Tree>(
    (tree, f) => merge(tree, JSON.parse(fs.readFileSync(path.join(localesDir, f), 'utf8')) as Tree),
    {},
  );
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

/**
 * A language's translator with the translations of plain keys (no options) remembered: strings are
 * loaded once at start and never change, and a list page asks for the same few labels on every row.
 * Built once per language and app.
 */
const MEMO_LIMIT = 10_000;

export function memoizedTranslators(instance: i18n): (lng: string) => TFunction {
  const byLanguage = new Map<Language, TFunction>();
  return (requested) => {
    const lng: Language = isLanguage(requested) ? requested : 'en';
    let t = byLanguage.get(lng);
    if (!t) {
      const fixed = instance.getFixedT(lng);
      const remembered = new Map<string, string>();
      t = ((key: unknown, ...rest: unknown[]) => {
        if (rest.length || typeof key !== 'string')
          return (fixed as unknown as (...a: unknown[]) => string)(key, ...rest);
        let text = remembered.get(key);
        if (text === undefined) {
          text = fixed(key);
          if (remembered.size < MEMO_LIMIT) remembered.set(key, text);
        }
        return text;
      }) as unknown as TFunction;
      byLanguage.set(lng, t);
    }
    return t;
  };
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
