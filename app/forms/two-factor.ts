import { z } from 'zod';
import { PASSWORD_MAX_LENGTH } from '../lib/passwords.ts';

/** A six-digit code from the app, or (where accepted) a recovery code such as 7KQ2-MX4P-0A9C-ZT3H. */
const code = z.preprocess(
  (v) => (typeof v === 'string' ? v.trim() : v),
  z
    .string({ message: 'validation.required' })
    .min(1, { message: 'validation.required' })
    .max(64, { message: 'validation.tooLong' }),
);

export const twoFactorCodeForm = z.object({ code });

export const disableTwoFactorForm = z.object({
  current_password: z
    .string({ message: 'validation.required' })
    .min(1, { message: 'validation.required' })
    .max(PASSWORD_MAX_LENGTH, { message: 'validation.tooLong' }),
  code,
});
