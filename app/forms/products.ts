import { z } from 'zod';
import { code, oneOf, optionalText, requiredText } from './fields.ts';

export const productCreateForm = z.object({
  name: requiredText(200),
  code,
  authorization_method: oneOf(['key', 'user'] as const),
  description: optionalText(2000),
});

export const productUpdateForm = productCreateForm.omit({ code: true });

export const featureCreateForm = z.object({
  code,
  name: requiredText(200),
  type: oneOf(['activation', 'consumption'] as const),
});

export const featureUpdateForm = z.object({ name: requiredText(200) });
