import { z } from 'zod';
import { email, id, language, requiredText, wholeNumber } from './fields.ts';
import { newPassword } from './auth.ts';
import { MAX_VOUCHER_DAYS, MAX_VOUCHERS_PER_BATCH } from '../services/vouchers.ts';

/** Generating a batch of redeemable codes: the policy, how many (1–500), valid for how many days. */
export const generateVouchersForm = z.object({
  policy_id: id,
  count: wholeNumber(1, MAX_VOUCHERS_PER_BATCH),
  days: wholeNumber(1, MAX_VOUCHER_DAYS),
});

export const voucherCode = requiredText(64);

/** A signed-in end user redeems a code. */
export const redeemForm = z.object({ code: voucherCode });

/** An anonymous visitor redeems a code and creates their end-user account with the same form. */
export const redeemSignUpForm = z
  .object({
    code: voucherCode,
    name: requiredText(200),
    email,
    language,
    password: newPassword,
    password_confirmation: z.string({ message: 'validation.required' }),
  })
  .refine((v) => v.password === v.password_confirmation, {
    message: 'validation.passwordMismatch',
    path: ['password_confirmation'],
  });
