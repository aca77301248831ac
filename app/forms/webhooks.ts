import { z } from 'zod';
import { WEBHOOK_EVENT_TYPES } from '../services/events.ts';
import { optionalText, requiredText } from './fields.ts';

/** A webhook endpoint: its URL (checked against the allowed targets by the service), a description and its events. */
export const endpointForm = z.object({
  url: requiredText(2000),
  description: optionalText(500),
  events: z.preprocess(
    (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]),
    z
      .array(z.enum(WEBHOOK_EVENT_TYPES, { message: 'validation.choice' }))
      .min(1, { message: 'webhooks.eventsRequired' }),
  ),
});

export type EndpointForm = z.infer<typeof endpointForm>;
