import { z } from 'zod';
import { DEFAULT_USER_FILTER } from '../lib/ldap.ts';
import { checkbox, optionalText, wholeNumber } from './fields.ts';

const text = (max: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' ? v.trim() : (v ?? '')),
    z.string().max(max, { message: 'validation.tooLong' }),
  );

/** Console → Settings → LDAP for the vendor's staff (services/ldap.ts). Checked as a whole by the controller when enabled. */
export const ldapForm = z.object({
  ldap_enabled: checkbox,
  ldap_url: text(500),
  ldap_start_tls: checkbox,
  ldap_allow_plain: checkbox,
  ldap_ca_pem: optionalText(20_000),
  ldap_bind_dn: text(1000),
  // Never shown back: empty keeps the stored one.
  ldap_bind_password: z.preprocess(
    (v) => (typeof v === 'string' ? v : ''),
    z.string().max(1000, { message: 'validation.tooLong' }),
  ),
  ldap_user_base: text(1000),
  ldap_user_filter: z.preprocess(
    (v) => (typeof v === 'string' && v.trim() !== '' ? v.trim() : DEFAULT_USER_FILTER),
    z.string().max(1000, { message: 'validation.tooLong' }),
  ),
  ldap_admin_group: text(1000),
  ldap_timeout_seconds: wholeNumber(1, 60),
});
