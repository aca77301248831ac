import type { TFunction } from '../lib/i18n.ts';
import { LICENSE_STATUSES } from '../models/licenses.ts';
import { VOUCHER_CHANNELS, VOUCHER_STATUSES } from '../models/vouchers.ts';
import { CHANNELS, DEACTIVATION_REASONS, HISTORY_EVENTS } from '../models/devices.ts';
import { MAIL_STATES } from '../models/outbox.ts';
import { AUDIT_ACTIONS } from './audit-actions.ts';
import { NOTIFICATION_KINDS } from './unsubscribe.ts';
import { REFUSALS } from './refusals.ts';
import { ARTIFACT_REFUSALS } from './requests.ts';
import { VOUCHER_REFUSALS } from './vouchers.ts';

/**
 * Every code the product stores or shows, from the lists the code itself uses, and the key of each
 * code's label. Pages show labels, never codes; test/unit/vocabulary.test.ts labels every code in
 * every language.
 */
export const VOCABULARY = {
  auditActions: { codes: AUDIT_ACTIONS, key: (c: string) => `auditActions.${c}` },
  refusals: {
    codes: [...REFUSALS, ...ARTIFACT_REFUSALS, ...VOUCHER_REFUSALS],
    key: (c: string) => `refusalReasons.${c}`,
  },
  historyEvents: { codes: HISTORY_EVENTS, key: (c: string) => `historyEvents.${c}` },
  licenseStatuses: { codes: LICENSE_STATUSES, key: (c: string) => `status.${c}` },
  voucherStatuses: { codes: VOUCHER_STATUSES, key: (c: string) => `vouchers.status.${c}` },
  voucherChannels: { codes: VOUCHER_CHANNELS, key: (c: string) => `vouchers.channel.${c}` },
  channels: { codes: CHANNELS, key: (c: string) => `channels.${c}` },
  deactivationReasons: { codes: DEACTIVATION_REASONS, key: (c: string) => `deactivationReasons.${c}` },
  mailStates: { codes: MAIL_STATES, key: (c: string) => `mailStates.${c}` },
  notificationKinds: { codes: NOTIFICATION_KINDS, key: (c: string) => `notificationPrefs.kinds.${c}` },
} as const;

export type Vocabulary = keyof typeof VOCABULARY;

/** Audit actions whose event records a refusal code in `after.code`. */
const REFUSAL_ACTIONS = new Set([
  'activation.refused',
  'deactivation.refused',
  'check.refused',
  'voucher.refused',
  'consumption.refused',
  'usage_report.refused',
]);
/** History events whose row records a refusal code in `detail`. */
const REFUSAL_EVENTS = new Set([
  'refused',
  'deactivation_refused',
  'check_refused',
  'consumption_refused',
  'usage_report_refused',
]);

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The labels pages show (res.locals.labels). A code no list knows (an event written by an older
 * version) shows as itself rather than as a key.
 */
export function labelsFor(t: TFunction) {
  const label = (vocabulary: Vocabulary, code: string) => t(VOCABULARY[vocabulary].key(code), { defaultValue: code });
  const withReason = (what: string, code: unknown) =>
    typeof code === 'string' && code ? t('labels.withReason', { what, why: label('refusals', code) }) : what;
  return {
    label,
    refusal: (code: string) => label('refusals', code),
    /** An audit event: its action, and for a refusal why. */
    auditEvent: (e: { action: string; after?: unknown }) => {
      const what = label('auditActions', e.action);
      return REFUSAL_ACTIONS.has(e.action) && isRecord(e.after) ? withReason(what, e.after.code) : what;
    },
    /** A license's history row: what happened, and for a refusal why. */
    historyEvent: (h: { event: string; detail?: string | null }) => {
      const what = label('historyEvents', h.event);
      return REFUSAL_EVENTS.has(h.event) ? withReason(what, h.detail) : what;
    },
  };
}

export type Labels = ReturnType<typeof labelsFor>;
