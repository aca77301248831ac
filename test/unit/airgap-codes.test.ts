import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  AIRGAP_BITS,
  AIRGAP_CODE_LENGTHS,
  AIRGAP_LEGACY_BITS,
  AirgapError,
  CODE_ALPHABET,
  CODE_KINDS,
  CodeError,
  airgapActivationMessage,
  codeLayout,
  confirmationCode,
  createAirgapRequest,
  createDeactivationCode,
  createLegacyDeactivationCode,
  decodeCode,
  encodeActivationCode,
  encodeCode,
  identifyAirgapCode,
  legacyConfirmationCode,
  normaliseLicenseKey,
  parseActivationCode,
  parseAirgapRequest,
  parseDeactivationCode,
  verifyConfirmationCode,
  type CodeKind,
} from '../../sdk/src/index.ts';

/**
 * The typed-code format (sdk/src/codes.ts). The check of a group is linear over GF(32), so whether a
 * change is caught depends only on where it is and on the difference of the symbols involved, never
 * on the rest of the code: covering every position with every difference is an exhaustive proof.
 */

const GROUP = 5; // 4 data symbols + 1 check symbol

const symbolsOf = (code: string) => code.replace(/-/g, '');
const groupOf = (position: number) => Math.floor(position / GROUP) + 1;
const randomData = (bits: number) => {
  const data = crypto.randomBytes(Math.ceil(bits / 8));
  if (bits % 8) data[data.length - 1] &= 0xff << (8 - (bits % 8));
  return data;
};

/** What decodeCode does with `text`: the data, or the refusal's code and group. */
function attempt(kind: CodeKind, text: string, bits: number): { data: Uint8Array } | { code: string; group?: number } {
  try {
    return { data: decodeCode(kind, text, bits) };
  } catch (err) {
    assert.ok(err instanceof CodeError, `not a CodeError: ${String(err)}`);
    return { code: err.code, group: err.group };
  }
}

function assertTypo(kind: CodeKind, text: string, bits: number, groups: number[], what: string): void {
  const result = attempt(kind, text, bits);
  assert.ok(!('data' in result), `${what} was accepted`);
  assert.equal(result.code, 'typo', `${what} was refused as ${result.code}, not as a typo`);
  assert.ok(
    result.group !== undefined && groups.includes(result.group),
    `${what}: group ${result.group} reported, expected ${groups.join(' or ')}`,
  );
}

/** Every single-symbol substitution and every adjacent transposition of `code` is caught in its group. */
function assertEveryTypoCaught(kind: CodeKind, code: string, bits: number): void {
  const symbols = symbolsOf(code);
  const original = decodeCode(kind, code, bits);
  for (let i = 0; i < symbols.length; i++) {
    for (const other of CODE_ALPHABET) {
      if (other === symbols[i]) continue;
      assertTypo(
        kind,
        symbols.slice(0, i) + other + symbols.slice(i + 1),
        bits,
        [groupOf(i)],
        `${kind}: ${symbols[i]}→${other} at ${i + 1}`,
      );
    }
  }
  for (let i = 0; i + 1 < symbols.length; i++) {
    const swapped = symbols.slice(0, i) + symbols[i + 1] + symbols[i] + symbols.slice(i + 2);
    if (symbols[i] === symbols[i + 1]) {
      assert.deepEqual(decodeCode(kind, swapped, bits), original);
      continue;
    }
    assertTypo(kind, swapped, bits, [groupOf(i), groupOf(i + 1)], `${kind}: swap at ${i + 1}/${i + 2}`);
  }
}

/** Sample codes of every kind, as the air-gap functions make them (version 2). */
function sampleCodes(): Record<CodeKind, string[]> {
  const server = crypto.generateKeyPairSync('ed25519');
  const samples: Record<CodeKind, string[]> = { request: [], activation: [], deactivation: [], confirmation: [] };
  for (let i = 0; i < 2; i++) {
    const { code, request, secret } = createAirgapRequest({ product: 'ACME-CAD', hardwareId: `hw-${i}` });
    samples.request.push(code);
    const fields = { expiresDay: i * 4000, features: i ? 0b1011 : 0 };
    const signature = crypto.sign(
      null,
      airgapActivationMessage({
        ...fields,
        productCode: 'ACME-CAD',
        hardwareHash: request.hardwareHash,
        commitment: request.commitment,
        licenseKey: 'K-1',
      }),
      server.privateKey,
    );
    samples.activation.push(encodeActivationCode({ ...fields, signature }));
    samples.deactivation.push(createDeactivationCode({ hardwareHash: request.hardwareHash, secret }).code);
    samples.confirmation.push(confirmationCode({ secret, hardwareHash: request.hardwareHash }));
  }
  return samples;
}

/** Version 1 codes, still read: the kinds with a version 1 layout of their own (a v1 confirmation code has the v2 layout). */
function legacySamples(): Record<keyof typeof AIRGAP_LEGACY_BITS, string> {
  const bitsOf = (kind: keyof typeof AIRGAP_LEGACY_BITS) => {
    const data = randomData(AIRGAP_LEGACY_BITS[kind]);
    // The version field (4 bits for a request, 2 otherwise) says 1; an activation id must not be 0.
    data[0] = kind === 'request' ? (data[0] & 0x0f) | 0x10 : (data[0] & 0x3f) | 0x40;
    data[1] |= 1;
    return encodeCode(kind, data, AIRGAP_LEGACY_BITS[kind]);
  };
  return {
    request: bitsOf('request'),
    activation: bitsOf('activation'),
    deactivation: createLegacyDeactivationCode({ activationId: 4242, secret: crypto.randomBytes(16) }).code,
  };
}

describe('air-gap codes: the typed format (sdk/src/codes.ts)', () => {
  const samples = sampleCodes();
  const legacy = legacySamples();

  it('have the documented lengths (test/unit/airgap-lengths.test.ts checks the limits)', () => {
    assert.deepEqual({ ...AIRGAP_CODE_LENGTHS }, { request: 40, activation: 135, deactivation: 32, confirmation: 17 });
    assert.deepEqual({ ...AIRGAP_BITS }, { request: 160, activation: 538, deactivation: 122, confirmation: 64 });
    assert.deepEqual({ ...AIRGAP_LEGACY_BITS }, { request: 128, activation: 566, deactivation: 134 });
    for (const kind of CODE_KINDS) {
      for (const code of samples[kind]) {
        assert.equal(symbolsOf(code).length, AIRGAP_CODE_LENGTHS[kind], `${kind} code ${code}`);
        assert.match(code, /^([0-9A-HJKMNP-TV-Z]{5}-)*[0-9A-HJKMNP-TV-Z]{2,5}$/, 'groups of 5 joined by hyphens');
      }
    }
    // Every kind and version has its own length, so the length alone tells what a code is.
    const lengths = [...CODE_KINDS.map((k) => AIRGAP_BITS[k]), ...Object.values(AIRGAP_LEGACY_BITS)].map(
      (bits) => codeLayout(bits).symbols,
    );
    assert.equal(new Set(lengths).size, lengths.length, lengths.join(', '));
  });

  it('round-trip any bits, with the last group of every size', () => {
    for (const kind of CODE_KINDS) {
      for (let bits = 1; bits <= 140; bits++) {
        const data = randomData(bits);
        const code = encodeCode(kind, data, bits);
        assert.equal(symbolsOf(code).length, Math.ceil(bits / 5) + Math.ceil(Math.ceil(bits / 5) / 4));
        assert.deepEqual(Buffer.from(decodeCode(kind, code, bits)), data);
      }
    }
  });

  for (const kind of CODE_KINDS) {
    it(`${kind} codes: every substitution and every adjacent transposition is a typo in its group`, () => {
      for (const code of samples[kind]) assertEveryTypoCaught(kind, code, AIRGAP_BITS[kind]);
    });
  }

  it('exhaustively: every symbol pair at every position of a group, for every last-group size and kind', function () {
    this.timeout(20_000);
    // Two groups, no padding bits, so every data symbol takes all 32 values: a full group, then
    // 1 to 4 data symbols. Positions in a group differ only by weight, groups only by a constant.
    for (const kind of CODE_KINDS) {
      for (let last = 1; last <= 4; last++) {
        const dataSymbols = 4 + last;
        const bits = dataSymbols * 5;
        const shown = dataSymbols + 2;
        const dataPositions = [...Array(shown).keys()].filter((p) => p % GROUP !== 4 && p !== shown - 1);
        const dataIndex = (p: number) => p - Math.floor(p / GROUP);
        const codeWith = (base: Buffer, index: number, value: number) => {
          const data = Buffer.from(base);
          for (let b = 0; b < 5; b++) {
            const bit = index * 5 + b;
            data[bit >> 3] &= ~(0x80 >> (bit & 7));
            if ((value >> (4 - b)) & 1) data[bit >> 3] |= 0x80 >> (bit & 7);
          }
          return symbolsOf(encodeCode(kind, data, bits));
        };
        const base = randomData(bits);
        // Substitutions: every old value × every new value at every data position (check symbols:
        // any change of a check symbol with its data unchanged is caught, as the samples show).
        for (const p of dataPositions) {
          for (let value = 0; value < 32; value++) {
            const code = codeWith(base, dataIndex(p), value);
            assert.equal(code[p], CODE_ALPHABET[value]);
            for (const other of CODE_ALPHABET) {
              if (other === code[p]) continue;
              assertTypo(
                kind,
                code.slice(0, p) + other + code.slice(p + 1),
                bits,
                [groupOf(p)],
                `${kind}/${last}: ${code[p]}→${other} at ${p + 1}`,
              );
            }
          }
        }
        // Transpositions: for each adjacent pair, a data symbol of the pair runs through all 32
        // values, which gives every difference between the two (for a data symbol and its check,
        // s ↦ s + check(s) is one-to-one because no data weight is 1).
        for (let p = 0; p + 1 < shown; p++) {
          const control = dataPositions.includes(p + 1) ? p + 1 : p;
          for (let value = 0; value < 32; value++) {
            const code = codeWith(base, dataIndex(control), value);
            const swapped = code.slice(0, p) + code[p + 1] + code[p] + code.slice(p + 2);
            if (code[p] === code[p + 1]) continue;
            assertTypo(kind, swapped, bits, [groupOf(p), groupOf(p + 1)], `${kind}/${last}: swap at ${p + 1}/${p + 2}`);
            if (groupOf(p) === groupOf(p + 1))
              assert.equal((attempt(kind, swapped, bits) as { group: number }).group, groupOf(p));
          }
        }
      }
    }
  });

  it('groups cannot be reordered', () => {
    for (const kind of CODE_KINDS) {
      for (const code of samples[kind]) {
        const groups = code.split('-');
        for (let g = 0; g + 2 < groups.length; g++) {
          const reordered = [...groups];
          [reordered[g], reordered[g + 1]] = [reordered[g + 1], reordered[g]];
          if (reordered[g] === groups[g]) continue;
          assertTypo(
            kind,
            reordered.join('-'),
            AIRGAP_BITS[kind],
            [g + 1],
            `${kind}: groups ${g + 1} and ${g + 2} swapped`,
          );
        }
      }
    }
  });

  it('read case-insensitively, with I and L as 1, O as 0, and hyphens and white space anywhere', () => {
    for (const kind of CODE_KINDS) {
      for (const code of samples[kind]) {
        const bits = AIRGAP_BITS[kind];
        const data = decodeCode(kind, code, bits);
        const sloppy = symbolsOf(code)
          .toLowerCase()
          .replace(/1/g, (_, i: number) => ['i', 'I', 'l', 'L'][i % 4])
          .replace(/0/g, (_, i: number) => ['o', 'O'][i % 2])
          .replace(/(.{3})/g, '$1 ')
          .replace(/(.{7})/g, '$1-\n\t');
        assert.deepEqual(decodeCode(kind, sloppy, bits), data);
      }
    }
    const mapped = encodeCode('request', Buffer.alloc(16), 128);
    assert.match(mapped, /0/);
    assert.deepEqual(decodeCode('request', mapped.replace(/0/g, 'o'), 128), new Uint8Array(16));
    assert.equal(normaliseLicenseKey(' 7kq2 mx4p-oil1 '), '7KQ2-MX4P-0111');
  });

  it('refuse characters outside the alphabet and wrong lengths as format errors, not typos', () => {
    const code = samples.request[0];
    const bits = AIRGAP_BITS.request;
    const symbols = symbolsOf(code);
    for (const bad of ['U', 'u', '*', 'é', '_']) {
      const r = attempt('request', `${symbols.slice(0, 7)}${bad}${symbols.slice(8)}`, bits);
      assert.equal('code' in r && r.code, 'format', `"${bad}"`);
      assert.equal('group' in r && r.group, 2);
    }
    const refusal = (text: string) => {
      try {
        decodeCode('request', text, bits);
      } catch (err) {
        assert.ok(err instanceof CodeError);
        return err;
      }
      assert.fail(`"${text}" was accepted`);
    };
    const missing = refusal(symbols.slice(1));
    assert.equal(missing.code, 'format');
    assert.match(missing.message, /39 characters but should have 40: a character is missing/);
    assert.match(refusal(`${symbols}A`).message, /41 characters but should have 40: a character is extra/);
    const groups = code.split('-');
    groups[2] = groups[2].slice(1);
    const short = refusal(groups.join('-'));
    assert.equal(short.code, 'format');
    assert.equal(short.group, 3, 'with the groups typed apart, the short one is named');
    assert.equal(refusal('').code, 'format');
    assert.equal(refusal('A'.repeat(100_000)).code, 'format');
  });

  it('a code of one kind is refused where another is expected', () => {
    for (const kind of CODE_KINDS) {
      for (const expected of CODE_KINDS) {
        if (kind === expected) continue;
        const code = samples[kind][0];
        assert.throws(
          () => PARSE[expected](code),
          (err: unknown) => {
            assert.ok(err instanceof AirgapError && err instanceof CodeError);
            assert.equal(err.code, 'format');
            assert.equal(err.actualKind, kind);
            assert.match(err.message, new RegExp(`this is an? ${kind} code, not an? ${expected} code`));
            return true;
          },
        );
      }
      assert.equal(identifyAirgapCode(samples[kind][1].toLowerCase()), kind);
    }
    // Version 1 codes are still told apart: the portal can say "this is a request code".
    for (const [kind, code] of Object.entries(legacy) as Array<[keyof typeof legacy, string]>) {
      assert.equal(identifyAirgapCode(code), kind);
      for (const expected of CODE_KINDS) {
        if (expected === kind) continue;
        assert.throws(
          () => PARSE[expected](code),
          (err: unknown) => err instanceof AirgapError && err.code === 'format' && err.actualKind === kind,
          `v1 ${kind} as ${expected}`,
        );
      }
    }
    assert.equal(identifyAirgapCode(legacyConfirmationCode(Buffer.alloc(16, 1), 1, '000000')), 'confirmation');
    // Even at the same length the kind is in every check symbol: no group of one kind passes as another.
    const data = randomData(128);
    for (const kind of CODE_KINDS) {
      for (const other of CODE_KINDS) {
        if (kind !== other) assertTypo(other, encodeCode(kind, data, 128), 128, [1], `${kind} read as ${other}`);
      }
    }
  });

  describe('a missing, extra or foreign character is reported in its group, for every kind and version', () => {
    const all: Array<[string, CodeKind, string]> = [
      ...CODE_KINDS.map((kind): [string, CodeKind, string] => [`${kind} v2`, kind, samples[kind][0]]),
      ...(Object.entries(legacy) as Array<[CodeKind, string]>).map(([kind, code]): [string, CodeKind, string] => [
        `${kind} v1`,
        kind,
        code,
      ]),
    ];
    const refusalOf = (kind: CodeKind, text: string): AirgapError => {
      try {
        PARSE[kind](text);
      } catch (err) {
        assert.ok(err instanceof AirgapError, String(err));
        return err;
      }
      assert.fail(`"${text}" was accepted`);
    };

    for (const [name, kind, code] of all) {
      it(name, () => {
        const groups = code.split('-');
        const length = symbolsOf(code).length;
        for (let g = 0; g < groups.length; g++) {
          const typed = (group: string) => groups.map((part, i) => (i === g ? group : part)).join('-');
          const missing = refusalOf(kind, typed(groups[g].slice(1)));
          assert.equal(missing.code, 'format');
          assert.equal(missing.group, g + 1, `${name}: missing in group ${g + 1}: ${missing.message}`);
          assert.equal(missing.actualKind, undefined, 'not taken for a code of another kind or version');
          // One case is truly ambiguous: a v1 deactivation code (last group 4 + 1) short of one symbol
          // in its last group looks like a v2 one (last group 1 + 1) with one too many there. The
          // group is named either way; the current version wins the tie.
          const ambiguous = name === 'deactivation v1' && g === groups.length - 1;
          if (!ambiguous)
            assert.match(
              missing.message,
              new RegExp(
                `has ${length - 1} characters but should have ${length}: a character is missing \\(group ${g + 1} has too few\\)`,
              ),
            );

          const extra = refusalOf(kind, typed(`${groups[g]}${groups[g][0]}`));
          assert.equal(extra.code, 'format');
          assert.equal(extra.group, g + 1, `${name}: extra in group ${g + 1}: ${extra.message}`);
          assert.match(
            extra.message,
            new RegExp(`has ${length + 1} characters but should have ${length}: a character is extra`),
          );

          for (const foreign of ['U', '*']) {
            const bad = refusalOf(kind, typed(`${foreign}${groups[g].slice(1)}`));
            assert.equal(bad.code, 'format');
            assert.equal(bad.group, g + 1, `${name}: "${foreign}" in group ${g + 1}`);
            // Typed without hyphens the group is told by the position.
            assert.equal(refusalOf(kind, symbolsOf(typed(`${foreign}${groups[g].slice(1)}`))).group, g + 1);
          }
        }
      });
    }
  });
});

/** The reader of each kind, as the portal (request, deactivation) and the device (activation, confirmation) call it. */
const PARSE: Record<CodeKind, (code: string) => unknown> = {
  request: (c) => parseAirgapRequest(c),
  activation: parseActivationCode,
  deactivation: parseDeactivationCode,
  confirmation: (c) => verifyConfirmationCode(c, { secret: Buffer.alloc(10, 1), hardwareHash: '0000000000' }),
};
