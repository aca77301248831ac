import { z } from 'zod';

/** The console's throttle look-up: an e-mail address, a client address, or both. */
export const throttleLookupForm = z
  .object({
    email: z
      .string()
      .trim()
      .max(254)
      .optional()
      .transform((v) => (v ? v : null)),
    ip: z
      .string()
      .trim()
      .max(64)
      .optional()
      .transform((v) => (v ? v : null))
      .refine((v) => v === null || /^[0-9a-fA-F:.]+$/.test(v), { message: 'validation.ipAddress' }),
  })
  .refine((v) => v.email !== null || v.ip !== null, { message: 'admin.throttles.needOne', path: ['email'] });
