import { z } from 'zod';

/** What the air-gap portal's forms take: a license key and a code, each required (the codes' own form is checked by the SDK). */
const required = (max: number) =>
  z.string({ error: 'validation.required' }).trim().max(max, 'validation.tooLong').min(1, 'validation.required');

export const airgapActivateForm = z.object({ license_key: required(64), request_code: required(80) });
export const airgapDeactivateForm = z.object({ license_key: required(64), deactivation_code: required(80) });
