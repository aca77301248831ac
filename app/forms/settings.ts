import { z } from 'zod';
import { SETTING_LIMITS } from '../models/settings.ts';
import { checkbox, language, wholeNumber } from './fields.ts';

export const settingsForm = z.object({
  end_user_self_service: checkbox,
  manager_second_factor: checkbox,
  default_language: language,
  offline_lease_days: wholeNumber(SETTING_LIMITS.offlineLeaseDays.min, SETTING_LIMITS.offlineLeaseDays.max),
  airgap_code_minutes: wholeNumber(SETTING_LIMITS.airgapCodeMinutes.min, SETTING_LIMITS.airgapCodeMinutes.max),
  accept_legacy_airgap_deactivation: checkbox,
  audit_retention_days: wholeNumber(SETTING_LIMITS.auditRetentionDays.min, SETTING_LIMITS.auditRetentionDays.max),
  webhook_private_targets: checkbox,
});
