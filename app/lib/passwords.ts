import fs from 'node:fs';
import { createRequire } from 'node:module';
import argon2 from 'argon2';

export const PASSWORD_MIN_LENGTH = 10;
export const PASSWORD_MAX_LENGTH = 200;

// OWASP's argon2id baseline (19 MiB, 2 passes): strong, yet quick enough for a login form on two cores.
const OPTIONS = { type: argon2.argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, OPTIONS);
}

export async function verifyPassword(hash: string | null | undefined, password: string): Promise<boolean> {
  if (!hash) return false;
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}

/** A hash to verify against when the account does not exist, so both answers take the same time. */
let dummyHash: Promise<string> | undefined;
export function dummyPasswordHash(): Promise<string> {
  dummyHash ??= hashPassword('portico-timing-equaliser');
  return dummyHash;
}

/**
 * The common-password list: zxcvbn-ts's ranked list of passwords seen most often in public breach
 * corpora (@zxcvbn-ts/language-common, MIT), shipped as plain JSON in the package. Read once per
 * process, on the first password a user chooses, into a Set of lower-case entries (about 49,000,
 * some 3 MB of heap).
 */
let commonPasswords: Set<string> | undefined;
function commonPasswordList(): Set<string> {
  if (!commonPasswords) {
    const file = createRequire(import.meta.url).resolve('@zxcvbn-ts/language-common/src/passwords.json');
    commonPasswords = new Set((JSON.parse(fs.readFileSync(file, 'utf8')) as string[]).map((p) => p.toLowerCase()));
  }
  return commonPasswords;
}

/** Digits, punctuation, symbols and spaces: what people put around a word to satisfy a policy. */
const DECORATION = /^[\d\p{P}\p{S}\s]+|[\d\p{P}\p{S}\s]+$/gu;
/** A shorter core says nothing: a 10-character password that is "ab" plus 8 symbols is no list entry. */
const MIN_CORE_LENGTH = 4;

/**
 * True when a chosen password is on the common-password list: compared lower-cased, as typed and
 * with the digits, punctuation, symbols and spaces at its start and end removed (when at least four
 * characters remain) — so `Password123!`, `password1234` and `!!Dragon2024` are all caught.
 */
export function isCommonPassword(password: string): boolean {
  const list = commonPasswordList();
  const lower = password.toLowerCase();
  if (list.has(lower)) return true;
  const core = lower.replace(DECORATION, '');
  return core.length >= MIN_CORE_LENGTH && list.has(core);
}
