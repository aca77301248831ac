/**
 * Short codes a person types (or scans) between an air-gapped machine and the portal
 * (docs/file-formats.md, "Air-gap codes"). The bits are written in Crockford's base32 and every
 * group of up to 4 data symbols is followed by 1 check symbol, so a typo is caught and its group
 * named before anything else looks at the code.
 *
 * The check symbol of group g is  Σ wᵢ·sᵢ + c(kind, g)  in GF(32), so that  Σ wᵢ·sᵢ + 1·check = c.
 * Because GF(32) is a field (no zero divisors):
 *   - changing one data symbol by d ≠ 0 changes the sum by wᵢ·d ≠ 0 (every weight is non-zero);
 *   - swapping two different adjacent symbols changes it by (wᵢ + wⱼ)·(sᵢ + sⱼ) ≠ 0, as no two
 *     weights in a group are equal — the check symbol's own weight 1 included, which is why the
 *     data weights are 2, 3, 4, 5 and never 1 (a last data symbol of weight 1 could swap with its
 *     check unnoticed);
 *   - a swap across a group boundary changes the check symbol of the first group and a data
 *     symbol of the next: two substitutions, both caught;
 *   - c(kind, g) = α^(g + 8·kind) differs for every group of a code (at most 31 groups), so whole
 *     groups cannot be reordered, and depends on the kind, so a code of one kind does not pass as
 *     another of the same length.
 */

export const CODE_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const CODE_KINDS = ['request', 'activation', 'deactivation', 'confirmation'] as const;
export type CodeKind = (typeof CODE_KINDS)[number];

/** Data symbols per group; each group shows one more, its check symbol. */
export const CODE_GROUP_DATA_SYMBOLS = 4;
/** Distinct constants exist for 31 groups: 31 × 4 × 5 bits. */
const MAX_BITS = 31 * CODE_GROUP_DATA_SYMBOLS * 5;
/** Typed input longer than this is not read at all. */
const MAX_INPUT_CHARS = 1024;

const WEIGHTS = [2, 3, 4, 5] as const;
/** x⁵ + x² + 1, a primitive polynomial: α = x generates all 31 non-zero elements. */
const MODULUS = 0b100101;

export type CodeErrorCode = 'typo' | 'format';

/**
 * A typed code that cannot be read. `typo`: a check symbol does not match (`group`, 1-based, is the
 * first group that fails) — a slip of the hand, never an attempt. `format`: wrong length or a
 * character that is not in the alphabet (`group` when it can be told which). Subclasses (AirgapError)
 * add codes of their own.
 */
export class CodeError<C extends string = CodeErrorCode> extends Error {
  readonly code: C;
  readonly group?: number;
  /** When the text is a well-formed code of another kind (e.g. a request code where an activation code belongs). */
  readonly actualKind?: CodeKind;

  constructor(code: C, message: string, details: { group?: number; actualKind?: CodeKind; cause?: unknown } = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'CodeError';
    this.code = code;
    if (details.group !== undefined) this.group = details.group;
    if (details.actualKind !== undefined) this.actualKind = details.actualKind;
  }
}

// ---------------------------------------------------------------------------------------------
// GF(32)

const EXP: number[] = [];
const LOG: number[] = new Array<number>(32).fill(-1);
for (let i = 0, x = 1; i < 31; i++) {
  EXP.push(x);
  LOG[x] = i;
  x <<= 1;
  if (x & 0b100000) x ^= MODULUS;
}

function gfMul(a: number, b: number): number {
  return a === 0 || b === 0 ? 0 : EXP[(LOG[a] + LOG[b]) % 31];
}

function groupConstant(kind: CodeKind, group: number): number {
  return EXP[(group + 8 * CODE_KINDS.indexOf(kind)) % 31];
}

/** The check symbol of `symbols` (1 to 4 data symbols) as group `group` (0-based) of a code of `kind`. */
function checkSymbol(kind: CodeKind, group: number, symbols: readonly number[]): number {
  let sum = groupConstant(kind, group);
  symbols.forEach((s, i) => {
    sum ^= gfMul(WEIGHTS[i], s);
  });
  return sum;
}

// ---------------------------------------------------------------------------------------------
// Lengths and text

export interface CodeLayout {
  dataSymbols: number;
  groups: number;
  /** Symbols shown (data and check), hyphens not counted. */
  symbols: number;
}

export function codeLayout(bitLength: number): CodeLayout {
  if (!Number.isInteger(bitLength) || bitLength < 1 || bitLength > MAX_BITS) {
    throw new RangeError(`a code carries 1 to ${MAX_BITS} bits, not ${bitLength}`);
  }
  const dataSymbols = Math.ceil(bitLength / 5);
  const groups = Math.ceil(dataSymbols / CODE_GROUP_DATA_SYMBOLS);
  return { dataSymbols, groups, symbols: dataSymbols + groups };
}

/** What a person typed, as symbols only: case, hyphens and white space do not matter; I and L read as 1, O as 0. */
export function normaliseCodeText(text: string): string {
  return text.toUpperCase().replace(/[\s-]/g, '').replace(/[IL]/g, '1').replace(/O/g, '0');
}

/**
 * A license key as the portal stores and signs it: the same reading rules, in groups of 4 (the
 * server's normaliseLicenseKey). Idempotent.
 */
export function normaliseLicenseKey(input: string): string {
  return (
    normaliseCodeText(input)
      .match(/.{1,4}/g)
      ?.join('-') ?? ''
  );
}

// ---------------------------------------------------------------------------------------------
// Encoding and decoding

/**
 * The display form of `bitLength` bits of `data` (big-endian, the first bit is the high bit of
 * data[0]; data is exactly ⌈bitLength / 8⌉ bytes and the bits after bitLength are zero): groups of
 * 4 data symbols and their check symbol, joined with "-".
 */
export function encodeCode(kind: CodeKind, data: Uint8Array, bitLength: number): string {
  const layout = codeLayout(bitLength);
  checkKind(kind);
  if (data.length !== Math.ceil(bitLength / 8))
    throw new RangeError(`${bitLength} bits are ${Math.ceil(bitLength / 8)} bytes, not ${data.length}`);
  if (bitLength % 8 !== 0 && (data[data.length - 1] & (0xff >> (bitLength % 8))) !== 0) {
    throw new RangeError(`the bits after bit ${bitLength} must be zero`);
  }
  const symbols = bytesToSymbols(data, layout.dataSymbols);
  const groups: string[] = [];
  for (let g = 0; g < layout.groups; g++) {
    const part = symbols.slice(g * CODE_GROUP_DATA_SYMBOLS, (g + 1) * CODE_GROUP_DATA_SYMBOLS);
    groups.push([...part, checkSymbol(kind, g, part)].map((s) => CODE_ALPHABET[s]).join(''));
  }
  return groups.join('-');
}

/**
 * Reads a typed code of `kind` carrying `bitLength` bits; the inverse of encodeCode. Throws
 * CodeError `format` (length, characters) or `typo` (with the first group whose check fails).
 */
export function decodeCode(kind: CodeKind, text: string, bitLength: number): Uint8Array {
  return decodeCodeOf(kind, text, [bitLength]).data;
}

/**
 * Reads a typed code of `kind` that may carry any one of `bitLengths` bits (the layouts of several
 * versions of a code, which must differ in their number of symbols). The layout is the one whose
 * length the text has; when none has it, the one the person was most likely typing — the fewest
 * groups of the wrong size when the groups were typed apart, then the nearest length, then the
 * first listed — so that a missing, extra or foreign character is reported in its group of that
 * layout.
 */
export function decodeCodeOf(
  kind: CodeKind,
  text: string,
  bitLengths: readonly number[],
): { bitLength: number; data: Uint8Array } {
  const layouts = bitLengths.map(codeLayout);
  checkKind(kind);
  if (layouts.length === 0 || new Set(layouts.map((l) => l.symbols)).size !== layouts.length) {
    throw new RangeError('the layouts of a code must differ in length');
  }
  const { layout, symbols } = readSymbols(text, layouts);
  const bitLength = bitLengths[layouts.indexOf(layout)];
  const data: number[] = [];
  for (let g = 0; g < layout.groups; g++) {
    const shown = symbols.slice(g * (CODE_GROUP_DATA_SYMBOLS + 1), (g + 1) * (CODE_GROUP_DATA_SYMBOLS + 1));
    const part = shown.slice(0, -1);
    if (checkSymbol(kind, g, part) !== shown[shown.length - 1]) {
      throw new CodeError('typo', `group ${g + 1} looks mistyped: check its characters`, { group: g + 1 });
    }
    data.push(...part);
  }
  const padding = layout.dataSymbols * 5 - bitLength;
  if ((data[data.length - 1] & ((1 << padding) - 1)) !== 0) {
    throw new CodeError('format', 'the code is not one this software makes (its unused bits are set)');
  }
  return { bitLength, data: symbolsToBytes(data, bitLength) };
}

function checkKind(kind: CodeKind): void {
  if (!CODE_KINDS.includes(kind)) throw new RangeError(`unknown code kind "${String(kind)}"`);
}

function readSymbols(text: string, layouts: readonly CodeLayout[]): { layout: CodeLayout; symbols: number[] } {
  if (typeof text !== 'string' || text.length > MAX_INPUT_CHARS) {
    throw new CodeError('format', `the code is too long: it should have ${layouts[0].symbols} characters`);
  }
  const characters = [...normaliseCodeText(text)];
  const typed = typedGroups(text);
  const layout = likeliestLayout(characters.length, typed, layouts);
  // Only when the person kept the groups apart can a group be named by what was typed.
  const apart = typed.length === layout.groups;
  const symbols: number[] = [];
  for (const [i, ch] of characters.entries()) {
    const s = CODE_ALPHABET.indexOf(ch);
    if (s < 0) {
      const group = apart
        ? typedGroupAt(typed, i)
        : i < layout.symbols
          ? Math.floor(i / (CODE_GROUP_DATA_SYMBOLS + 1)) + 1
          : undefined;
      throw new CodeError(
        'format',
        `"${ch}" is not a code character (character ${i + 1}${group ? `, group ${group}` : ''}): codes use 0–9 and A–Z without U`,
        { group },
      );
    }
    symbols.push(s);
  }
  if (symbols.length !== layout.symbols) {
    const wrong = apart ? wrongSizedGroups(typed, layout) : [];
    const group = wrong.length > 0 ? wrong[0] + 1 : undefined;
    const fewer = symbols.length < layout.symbols;
    const which = group === undefined ? '' : ` (group ${group} has ${fewer ? 'too few' : 'too many'})`;
    throw new CodeError(
      'format',
      `the code has ${symbols.length} characters but should have ${layout.symbols}: a character is ${fewer ? 'missing' : 'extra'}${which}`,
      { group },
    );
  }
  return { layout, symbols };
}

/** The pieces the person typed between hyphens and white space, normalised: the groups, when they were kept apart. */
function typedGroups(text: string): string[][] {
  return text
    .trim()
    .split(/[\s-]+/)
    .filter(Boolean)
    .map((part) => [...normaliseCodeText(part)]);
}

/** The 1-based typed group holding character `index` of the normalised text. */
function typedGroupAt(typed: readonly string[][], index: number): number {
  let end = 0;
  for (const [g, part] of typed.entries()) {
    end += part.length;
    if (index < end) return g + 1;
  }
  return typed.length;
}

/** The 0-based indices of the typed groups whose size is not the layout's (typed.length must be layout.groups). */
function wrongSizedGroups(typed: readonly string[][], layout: CodeLayout): number[] {
  return typed.flatMap((part, g) =>
    part.length === Math.min(CODE_GROUP_DATA_SYMBOLS, layout.dataSymbols - g * CODE_GROUP_DATA_SYMBOLS) + 1 ? [] : [g],
  );
}

function likeliestLayout(length: number, typed: readonly string[][], layouts: readonly CodeLayout[]): CodeLayout {
  const exact = layouts.find((l) => l.symbols === length);
  if (exact !== undefined) return exact;
  const score = (l: CodeLayout) => [
    typed.length === l.groups ? wrongSizedGroups(typed, l).length : Infinity,
    Math.abs(l.symbols - length),
  ];
  return layouts.reduce((best, l) => {
    const [a, b] = [score(l), score(best)];
    return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]) ? l : best;
  });
}

function bytesToSymbols(data: Uint8Array, count: number): number[] {
  const symbols: number[] = [];
  for (let i = 0; i < count; i++) {
    let s = 0;
    for (let b = 0; b < 5; b++) {
      const bit = i * 5 + b;
      const byte = bit >> 3;
      s = (s << 1) | (byte < data.length ? (data[byte] >> (7 - (bit & 7))) & 1 : 0);
    }
    symbols.push(s);
  }
  return symbols;
}

function symbolsToBytes(symbols: readonly number[], bitLength: number): Uint8Array {
  const bytes = new Uint8Array(Math.ceil(bitLength / 8));
  for (let bit = 0; bit < bitLength; bit++) {
    if ((symbols[Math.floor(bit / 5)] >> (4 - (bit % 5))) & 1) bytes[bit >> 3] |= 0x80 >> (bit & 7);
  }
  return bytes;
}
