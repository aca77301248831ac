import assert from 'node:assert/strict';
import { SUPPORTED_LANGUAGES } from '../../config/index.ts';
import { createI18n, loadLocale } from '../../app/lib/i18n.ts';
import { VOCABULARY, labelsFor, type Vocabulary } from '../../app/services/vocabulary.ts';

function flatten(obj: Record<string, unknown>, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v && typeof v === 'object') Object.assign(out, flatten(v as Record<string, unknown>, `${prefix}${k}.`));
    else out[`${prefix}${k}`] = String(v);
  }
  return out;
}

/** Words, not codes: every code the code base can store or show has a label in every language. */
describe('vocabulary', () => {
  const i18n = createI18n();

  it('collects the codes from the lists the code uses', () => {
    assert.ok(VOCABULARY.auditActions.codes.length >= 100);
    assert.ok(VOCABULARY.auditActions.codes.includes('activation.granted'));
    assert.ok(VOCABULARY.refusals.codes.includes('no_seats'));
    assert.ok(VOCABULARY.refusals.codes.includes('zip_empty'));
    assert.ok(VOCABULARY.refusals.codes.includes('voucher_used'));
    assert.ok(VOCABULARY.historyEvents.codes.includes('refused'));
  });

  for (const lng of SUPPORTED_LANGUAGES) {
    it(`${lng}: every code has a label of its own (no missing label, no key, no code shown)`, () => {
      const strings = flatten(loadLocale(lng));
      const labels = labelsFor(i18n.getFixedT(lng));
      const problems: string[] = [];
      for (const [name, { codes, key }] of Object.entries(VOCABULARY)) {
        for (const code of codes) {
          const k = key(code);
          const label = labels.label(name as Vocabulary, code);
          // In this language's own files: English fallback would hide a missing translation. A label
          // may be the code's own word (English "reset"), never a code such as no_seats.
          if (!(k in strings)) problems.push(`${k}: missing`);
          else if (!label.trim() || label === k || (label === code && /[._]/.test(code)) || label.includes('{{'))
            problems.push(`${k}: "${label}"`);
        }
      }
      assert.deepEqual(problems, []);
    });
  }

  it('a refusal says why: audit events and history rows carry their reason, in the reader’s language', () => {
    const en = labelsFor(i18n.getFixedT('en'));
    const de = labelsFor(i18n.getFixedT('de'));
    const fr = labelsFor(i18n.getFixedT('fr'));
    assert.equal(
      en.auditEvent({ action: 'activation.refused', after: { code: 'no_seats' } }),
      'Activation refused: no activations left',
    );
    assert.equal(
      de.historyEvent({ event: 'refused', detail: 'license_disabled' }),
      'Aktivierung abgelehnt: die Lizenz ist deaktiviert',
    );
    assert.equal(
      fr.historyEvent({ event: 'check_refused', detail: 'expired' }),
      'Vérification de licence refusée : la licence a expiré',
    );
    assert.equal(en.auditEvent({ action: 'activation.granted', after: { code: 'x' } }), 'Activation granted');
    // An event of an older version that no list knows shows as itself, never as a key.
    assert.equal(en.auditEvent({ action: 'legacy.thing' }), 'legacy.thing');
    assert.equal(en.historyEvent({ event: 'refused', detail: null }), 'Activation refused');
  });
});
