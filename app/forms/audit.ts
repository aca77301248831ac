import { z } from 'zod';
import { optionalDate } from './fields.ts';
import { parseForm, type FieldErrors } from './parse.ts';
import type { AuditSearch } from '../models/audit-events.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

/** Optional text, trimmed and lower-cased: e-mail labels and action codes are stored in lower case. */
const optionalLower = (max: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && v.trim() !== '' ? v.trim().toLowerCase() : undefined),
    z.string().max(max, { message: 'validation.tooLong' }).optional(),
  );

const optionalExact = (max: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined),
    z.string().max(max, { message: 'validation.tooLong' }).optional(),
  );

/** The GET filters of the audit log (the list page and its CSV export). Lengths are the columns'. */
export const auditFilterForm = z.object({
  actor: optionalLower(254),
  action: optionalLower(64),
  object_type: optionalExact(32),
  object_id: optionalExact(64),
  from: optionalDate.optional(),
  to: optionalDate.optional(),
});

/**
 * Parses the filters into a search. Dates are whole UTC days, both inclusive. An object id needs its
 * type: ids are only unique within a type, and the index is on (type, id).
 */
export function parseAuditFilter(
  query: Record<string, string>,
): { ok: true; search: AuditSearch } | { ok: false; errors: FieldErrors } {
  const form = parseForm(auditFilterForm, query);
  const errors: FieldErrors = form.ok ? {} : { ...form.errors };
  if (form.ok) {
    const { from, to } = form.data;
    if (from && to && from > to) errors.to = 'admin.audit.errors.toBeforeFrom';
    if (form.data.object_id && !form.data.object_type) errors.object_type = 'admin.audit.errors.objectIdNeedsType';
  }
  if (!form.ok || Object.keys(errors).length) return { ok: false, errors };
  const d = form.data;
  return {
    ok: true,
    search: {
      actor: d.actor,
      action: d.action,
      objectType: d.object_type,
      objectId: d.object_id,
      from: d.from ?? undefined,
      to: d.to ? new Date(d.to.getTime() + DAY_MS) : undefined,
    },
  };
}
