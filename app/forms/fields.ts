import { z } from 'zod';
import { SUPPORTED_LANGUAGES } from '../../config/index.ts';

/** Building blocks for form schemas. Messages are i18n keys (see forms/parse.ts). */

const trim = (v: unknown) => (typeof v === 'string' ? v.trim() : v);
const emptyToNull = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? null : trim(v));

export const requiredText = (max: number) =>
  z.preprocess(
    trim,
    z
      .string({ message: 'validation.required' })
      .min(1, { message: 'validation.required' })
      .max(max, { message: 'validation.tooLong' }),
  );

export const optionalText = (max: number) =>
  z.preprocess(emptyToNull, z.string().max(max, { message: 'validation.tooLong' }).nullable().default(null));

/** An HTML checkbox: present ("on") is true, absent is false. */
export const checkbox = z.preprocess((v) => v === 'on' || v === 'true' || v === '1' || v === true, z.boolean());

export const wholeNumber = (min: number, max: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && v.trim() !== '' ? Number(v.trim()) : v),
    z
      .number({ message: 'validation.number' })
      .int({ message: 'validation.number' })
      .min(min, { message: 'validation.numberRange' })
      .max(max, { message: 'validation.numberRange' }),
  );

export const optionalWholeNumber = (min: number, max: number) =>
  z.preprocess(
    (v) =>
      v === undefined || (typeof v === 'string' && v.trim() === '')
        ? null
        : typeof v === 'string'
          ? Number(v.trim())
          : v,
    z
      .number({ message: 'validation.number' })
      .int({ message: 'validation.number' })
      .min(min, { message: 'validation.numberRange' })
      .max(max, { message: 'validation.numberRange' })
      .nullable(),
  );

export const id = wholeNumber(1, 2_147_483_647);

export const email = z.preprocess(
  trim,
  z
    .string({ message: 'validation.required' })
    .min(1, { message: 'validation.required' })
    .max(254, { message: 'validation.tooLong' })
    .pipe(z.email({ message: 'validation.email' })),
);

export const optionalEmail = z.preprocess(
  emptyToNull,
  z.email({ message: 'validation.email' }).max(254, { message: 'validation.tooLong' }).nullable().default(null),
);

/** Letters, digits and dashes (product codes, feature codes). */
export const code = z.preprocess(
  trim,
  z
    .string({ message: 'validation.required' })
    .min(1, { message: 'validation.required' })
    .max(64, { message: 'validation.tooLong' })
    .regex(/^[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*$/, { message: 'validation.code' }),
);

export const hexColor = z.preprocess(trim, z.string().regex(/^#[0-9a-fA-F]{6}$/, { message: 'validation.color' }));

export const language = z.enum(SUPPORTED_LANGUAGES, { message: 'validation.language' });

/** A yyyy-mm-dd date from an <input type="date">, as midnight UTC; empty is null. */
export const optionalDate = z.preprocess(
  (v) => (v === undefined || (typeof v === 'string' && v.trim() === '') ? null : v),
  z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}$/, { message: 'validation.date' })
    .transform((s, ctx) => {
      const d = new Date(`${s}T00:00:00.000Z`);
      if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== s) {
        ctx.addIssue({ code: 'custom', message: 'validation.date' });
        return z.NEVER;
      }
      return d;
    })
    .nullable(),
);

/** One of a fixed list of values. */
export const oneOf = <T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { message: 'validation.choice' });
