import { z } from 'zod';
import { requiredText, wholeNumber } from './fields.ts';
import { API_SCOPES, MAX_TOKEN_DAYS } from '../policies/api-scopes.ts';

/** A new API client or personal access token: a name, scopes (checkboxes) and how many days it lives. */
export const apiTokenForm = z.object({
  name: requiredText(100),
  scopes: z.preprocess(
    (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]),
    z.array(z.enum(API_SCOPES, { message: 'validation.choice' })).min(1, { message: 'api.tokens.scopesRequired' }),
  ),
  days: wholeNumber(1, MAX_TOKEN_DAYS),
});

export const DEFAULT_TOKEN_DAYS = 90;
