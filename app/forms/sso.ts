import { z } from 'zod';
import { checkbox, id, optionalText, requiredText } from './fields.ts';
import { SEAT_RULES } from '../models/identity-providers.ts';

/** An identity provider of a customer (docs/sso.md): the fields of its kind are checked by the controller. */
export const providerForm = z.object({
  kind: z.enum(['oidc', 'saml'], { message: 'validation.choice' }),
  name: requiredText(200),
  enabled: checkbox,
  groups_claim: z.preprocess(
    (v) => (typeof v === 'string' && v.trim() === '' ? 'groups' : typeof v === 'string' ? v.trim() : v),
    z.string().max(100, { message: 'validation.tooLong' }).default('groups'),
  ),
  oidc_issuer: optionalText(500),
  oidc_client_id: optionalText(255),
  oidc_client_secret: optionalText(1000),
  oidc_scopes: optionalText(255),
  saml_metadata_url: optionalText(500),
  saml_metadata_xml: optionalText(200_000),
});

export type ProviderForm = z.infer<typeof providerForm>;

export const domainForm = z.object({ domain: requiredText(253) });

export const mappingForm = z.object({
  group_name: requiredText(255),
  kind: z.enum(['role', 'seat'], { message: 'validation.choice' }),
  order_id: z.preprocess((v) => (v === '' ? undefined : v), id.optional()),
  role_id: z.preprocess((v) => (v === '' ? undefined : v), id.optional()),
  license_id: z.preprocess((v) => (v === '' ? undefined : v), id.optional()),
});

export const seatRuleForm = z.object({ rule: z.enum(SEAT_RULES, { message: 'validation.choice' }) });
