import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { SUPPORTED_LANGUAGES } from '../../config/index.ts';
import { createI18n, fromAcceptLanguage, loadLocale } from '../../app/lib/i18n.ts';
import { projectRoot } from '../helpers/process.ts';

function flatten(obj: Record<string, unknown>, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v && typeof v === 'object') Object.assign(out, flatten(v as Record<string, unknown>, `${prefix}${k}.`));
    else out[`${prefix}${k}`] = String(v);
  }
  return out;
}

const placeholders = (s: string) => [...s.matchAll(/\{\{(\w+)\}\}/g)].map((m) => m[1]).sort();

/** Every literal t('…') key in the code and views. */
function keysUsedInSource(): Set<string> {
  const keys = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (/\.(ts|ejs)$/.test(entry.name)) {
        for (const m of fs.readFileSync(file, 'utf8').matchAll(/\bt\(\s*'([a-zA-Z][\w.]+)'/g)) keys.add(m[1]!);
        const text = fs.readFileSync(file, 'utf8');
        // Message keys handed to errors, form schemas and flash helpers.
        for (const pattern of [
          /'((?:validation|errors)\.[a-zA-Z]+)'/g,
          /HttpError\(\d+, '([\w.]+)'/g,
          /ValidationError\(\{[^}]*?: '([\w.]+)'/g,
          /message: '([\w.]+)'/g,
          /\b(?:done|refuse)\([^;]*?'([a-z]\w*\.[\w.]+)'(?:, \{[^}]*\})?\)/g,
        ]) {
          for (const m of text.matchAll(pattern)) keys.add(m[1]!);
        }
      }
    }
  };
  for (const dir of ['app', 'views']) walk(path.join(projectRoot, dir));
  return keys;
}

describe('i18n', () => {
  const english = flatten(loadLocale('en'));

  for (const lng of SUPPORTED_LANGUAGES.filter((l) => l !== 'en')) {
    it(`${lng} has every English key, with the same placeholders, translated`, () => {
      const other = flatten(loadLocale(lng));
      assert.deepEqual(Object.keys(other).sort(), Object.keys(english).sort());
      for (const [key, text] of Object.entries(english))
        assert.deepEqual(placeholders(other[key]!), placeholders(text), `${lng}:${key}`);
      const same = Object.keys(english).filter((k) => english[k] === other[k] && english[k]!.length > 12);
      assert.ok(same.length <= 3, `${lng} still has English text for: ${same.join(', ')}`);
    });
  }

  it('every key the code and views use exists in English', () => {
    // A key ending in '.' is a prefix completed at run time (t('status.' + s)): some key must start with it.
    // A key with plural forms (t('delivery.dispatch.sending', { count })) exists as key_one and key_other.
    const missing = [...keysUsedInSource()].filter((k) =>
      k.endsWith('.')
        ? !Object.keys(english).some((e) => e.startsWith(k))
        : !(k in english) && !(`${k}_one` in english && `${k}_other` in english),
    );
    assert.deepEqual(missing, []);
  });

  it('counts take plural forms, never "license(s)"', () => {
    for (const lng of SUPPORTED_LANGUAGES) {
      const strings = flatten(loadLocale(lng));
      const hedged = Object.entries(strings)
        .filter(([, text]) => /\p{L}\((s|n|e|en|es|x|nen)\)/u.test(text))
        .map(([key]) => key);
      assert.deepEqual(hedged, [], `${lng}: plural forms instead of (s)`);
      // Every plural has its singular and its other form.
      for (const key of Object.keys(strings).filter((k) => /_(one|other)$/.test(k))) {
        const base = key.replace(/_(one|other)$/, '');
        assert.ok(`${base}_one` in strings && `${base}_other` in strings, `${lng}: ${base} has both forms`);
        assert.match(strings[key]!, /\{\{count\}\}/, `${lng}: ${key} shows the count`);
      }
    }
    const i18n = createI18n();
    assert.equal(i18n.getFixedT('en')('delivery.dispatch.sending', { count: 1 }), '1 license is being sent by e-mail.');
    assert.equal(
      i18n.getFixedT('en')('delivery.dispatch.sending', { count: 2 }),
      '2 licenses are being sent by e-mail.',
    );
    assert.equal(i18n.getFixedT('de')('counts.licensesIssued', { count: 1 }), '1 Lizenz ausgestellt.');
    assert.equal(
      i18n.getFixedT('fr')('counts.licenseResetDone', { count: 0 }),
      'La licence a été réinitialisée : 0 appareil désactivé.',
    );
    assert.equal(i18n.getFixedT('es')('counts.freshCodes', { count: 3 }), '3 códigos nuevos');
  });

  it('picks the best supported language from Accept-Language', () => {
    assert.equal(fromAcceptLanguage('de-CH,de;q=0.9,en;q=0.8'), 'de');
    assert.equal(fromAcceptLanguage('it-IT, es;q=0.5, fr;q=0.7'), 'fr');
    assert.equal(fromAcceptLanguage('ja'), undefined);
    assert.equal(fromAcceptLanguage('en;q=0, es'), 'es');
    assert.equal(fromAcceptLanguage(undefined), undefined);
  });

  it('translates with interpolation per instance', () => {
    const i18n = createI18n();
    assert.match(i18n.getFixedT('de')('pager.position', { page: 2, pages: 5 }), /2.*5/);
    assert.notEqual(i18n.getFixedT('es')('auth.login.title'), i18n.getFixedT('en')('auth.login.title'));
  });
});
