import { z } from 'zod';
import { SUPPORTED_LANGUAGES } from '../../config/index.ts';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, isCommonPassword } from '../lib/passwords.ts';

const text = (max: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' ? v.trim() : v),
    z
      .string({ message: 'validation.required' })
      .min(1, { message: 'validation.required' })
      .max(max, { message: 'validation.tooLong' }),
  );

export const email = z.preprocess(
  (v) => (typeof v === 'string' ? v.trim() : v),
  z
    .string({ message: 'validation.required' })
    .min(1, { message: 'validation.required' })
    .max(254, { message: 'validation.tooLong' })
    .pipe(z.email({ message: 'validation.email' })),
);

/** THE rule for a password a person chooses (first admin, change, reset, invitation, forced change). */
export const newPassword = z
  .string({ message: 'validation.required' })
  .min(PASSWORD_MIN_LENGTH, { message: 'validation.passwordTooShort' })
  .max(PASSWORD_MAX_LENGTH, { message: 'validation.tooLong' })
  .refine((password) => !isCommonPassword(password), { message: 'validation.passwordTooCommon' });

const language = z.enum(SUPPORTED_LANGUAGES, { message: 'validation.language' });

function withConfirmation<T extends z.ZodRawShape>(shape: T) {
  return z
    .object({ ...shape, password: newPassword, password_confirmation: z.string({ message: 'validation.required' }) })
    .refine(
      (v) => (v as { password: string }).password === (v as { password_confirmation: string }).password_confirmation,
      { message: 'validation.passwordMismatch', path: ['password_confirmation'] },
    );
}

export const loginForm = z.object({
  email,
  password: z
    .string({ message: 'validation.required' })
    .min(1, { message: 'validation.required' })
    .max(PASSWORD_MAX_LENGTH, { message: 'validation.tooLong' }),
});

export const forgotPasswordForm = z.object({ email });

export const resetPasswordForm = withConfirmation({});

export const changePasswordForm = withConfirmation({
  current_password: z
    .string({ message: 'validation.required' })
    .min(1, { message: 'validation.required' })
    .max(PASSWORD_MAX_LENGTH, { message: 'validation.tooLong' }),
});

export const setupForm = withConfirmation({ name: text(200), email, language });

export const languageForm = z.object({ language, return_to: z.string().max(2000).optional() });

export const profileForm = z.object({ name: text(200), language });
