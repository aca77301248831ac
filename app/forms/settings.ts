import { z } from 'zod';
import { parseDayList, SETTING_LIMITS } from '../models/settings.ts';
import { checkbox, language, wholeNumber } from './fields.ts';

/** "60, 30, 7, 1": whole days, no repeats, at most eight (stored widest first). */
const dayList = z.preprocess(
  (v) => (typeof v === 'string' ? v.trim() : v),
  z
    .string({ message: 'validation.required' })
    .min(1, { message: 'validation.required' })
    .max(100, { message: 'validation.tooLong' })
    .transform((s, ctx) => {
      const days = parseDayList(s);
      if (!days) {
        ctx.addIssue({ code: 'custom', message: 'validation.dayList' });
        return z.NEVER;
      }
      return days;
    }),
);

export const settingsForm = z.object({
  end_user_self_service: checkbox,
  manager_second_factor: checkbox,
  default_language: language,
  offline_lease_days: wholeNumber(SETTING_LIMITS.offlineLeaseDays.min, SETTING_LIMITS.offlineLeaseDays.max),
  airgap_code_minutes: wholeNumber(SETTING_LIMITS.airgapCodeMinutes.min, SETTING_LIMITS.airgapCodeMinutes.max),
  accept_legacy_airgap_deactivation: checkbox,
  audit_retention_days: wholeNumber(SETTING_LIMITS.auditRetentionDays.min, SETTING_LIMITS.auditRetentionDays.max),
  webhook_private_targets: checkbox,
  notifications_enabled: checkbox,
  notification_expiry_windows: dayList,
  notification_maintenance_windows: dayList,
  notification_seats_threshold: wholeNumber(
    SETTING_LIMITS.seatsThresholdPercent.min,
    SETTING_LIMITS.seatsThresholdPercent.max,
  ),
  notification_lease_days: wholeNumber(SETTING_LIMITS.leaseWarningDays.min, SETTING_LIMITS.leaseWarningDays.max),
  notification_refusal_spike: wholeNumber(
    SETTING_LIMITS.refusalSpikeThreshold.min,
    SETTING_LIMITS.refusalSpikeThreshold.max,
  ),
  notification_manager_digest_hour: wholeNumber(SETTING_LIMITS.hour.min, SETTING_LIMITS.hour.max),
  notification_staff_digest_day: wholeNumber(SETTING_LIMITS.weekday.min, SETTING_LIMITS.weekday.max),
  notification_staff_digest_hour: wholeNumber(SETTING_LIMITS.hour.min, SETTING_LIMITS.hour.max),
});
