import { EnvelopeError } from './errors.ts';

/**
 * A strict JSON reader for hostile input (RFC 8259 grammar). Unlike JSON.parse it refuses duplicate
 * keys (two readers could otherwise see different values), the keys `__proto__`, `constructor` and
 * `prototype` anywhere (so no consumer can be tricked into prototype pollution), nesting deeper
 * than `maxDepth`, numbers that overflow to Infinity, and any byte order mark.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const LITERALS: ReadonlyArray<[string, JsonValue]> = [
  ['true', true],
  ['false', false],
  ['null', null],
];

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** UTF-8 bytes → text; malformed UTF-8 is refused, a BOM is kept (and then refused by the parser). */
export function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new EnvelopeError('json', `${what} is not valid UTF-8`);
  }
}

export function parseJsonStrict(text: string, what: string, maxDepth: number): JsonValue {
  let pos = 0;
  const fail = (reason: string): never => {
    throw new EnvelopeError('json', `${what} is not valid JSON: ${reason} at character ${pos}`);
  };

  const skipWhitespace = () => {
    while (pos < text.length) {
      const c = text.charCodeAt(pos);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      pos++;
    }
  };

  const readString = (): string => {
    const start = pos++; // the opening quote
    while (pos < text.length) {
      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        pos++;
        // The lexeme is now known to be a well-formed JSON string; let the engine unescape it.
        return JSON.parse(text.slice(start, pos)) as string;
      }
      if (c < 0x20) fail('control character in string');
      if (c === 0x5c) {
        const e = text[pos + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(pos + 2, pos + 6))) fail('bad \\u escape');
          pos += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          pos += 2;
        } else {
          fail('bad escape');
        }
      } else {
        pos++;
      }
    }
    return fail('unterminated string');
  };

  const readValue = (depth: number): JsonValue => {
    skipWhitespace();
    const c = text[pos];
    if (c === '{' || c === '[') {
      if (depth >= maxDepth) fail(`nested deeper than ${maxDepth} levels`);
      pos++;
      return c === '{' ? readObject(depth + 1) : readArray(depth + 1);
    }
    if (c === '"') return readString();
    for (const [word, value] of LITERALS) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return value;
      }
    }
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (!m) return fail(c === undefined ? 'unexpected end' : 'unexpected character');
    const n = Number(m[0]);
    if (!Number.isFinite(n)) fail('number out of range');
    pos += m[0].length;
    return n;
  };

  const readObject = (depth: number): JsonObject => {
    const obj: JsonObject = {};
    skipWhitespace();
    if (text[pos] === '}') {
      pos++;
      return obj;
    }
    for (;;) {
      skipWhitespace();
      if (text[pos] !== '"') fail('expected a key');
      const key = readString();
      if (FORBIDDEN_KEYS.has(key)) fail(`forbidden key "${key}"`);
      if (Object.hasOwn(obj, key)) fail(`duplicate key "${key}"`);
      skipWhitespace();
      if (text[pos] !== ':') fail('expected ":"');
      pos++;
      obj[key] = readValue(depth);
      skipWhitespace();
      const sep = text[pos++];
      if (sep === '}') return obj;
      if (sep !== ',') fail('expected "," or "}"');
    }
  };

  const readArray = (depth: number): JsonValue[] => {
    const arr: JsonValue[] = [];
    skipWhitespace();
    if (text[pos] === ']') {
      pos++;
      return arr;
    }
    for (;;) {
      arr.push(readValue(depth));
      skipWhitespace();
      const sep = text[pos++];
      if (sep === ']') return arr;
      if (sep !== ',') fail('expected "," or "]"');
    }
  };

  const value = readValue(0);
  skipWhitespace();
  if (pos !== text.length) fail('unexpected text after the value');
  return value;
}

export function isJsonObject(value: JsonValue): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
