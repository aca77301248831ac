import { z } from 'zod';
import { oneOf, optionalText, optionalWholeNumber } from './fields.ts';
import { RENEWAL_KINDS } from '../models/renewal-requests.ts';
import { HANDLING_STATES, MAX_SEATS_REQUESTED } from '../services/renewals.ts';

/** A renewal request: its kind, the seats wanted (more seats only, then required) and a message to the vendor. */
export const renewalRequestForm = z
  .object({
    kind: oneOf(RENEWAL_KINDS),
    seats: optionalWholeNumber(1, MAX_SEATS_REQUESTED),
    message: optionalText(2000),
  })
  .refine((v) => v.kind !== 'more_seats' || v.seats !== null, {
    message: 'renewals.errors.seatsRequired',
    path: ['seats'],
  })
  .transform((v) => ({ ...v, message: v.message ?? '' }));

/** The vendor handles a request: the new state and a note back to the requester. */
export const handleRenewalForm = z.object({
  state: oneOf(HANDLING_STATES),
  note: optionalText(2000),
});
