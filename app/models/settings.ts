import type { Knex } from 'knex';
import { bumpGeneration } from '../lib/generation-cache.ts';
import { SUPPORTED_LANGUAGES, type Language } from '../../config/index.ts';

/** Installation-wide settings the vendor changes in the console (key/value text in `settings`). */
export interface Settings {
  /** End users may sign in to the User Portal and manage their own licenses. */
  endUserSelfService: boolean;
  /** License managers must use a second factor to sign in. */
  managerSecondFactor: boolean;
  defaultLanguage: Language;
  /** How long an offline license file works before it must be refreshed. */
  offlineLeaseDays: number;
  /** How long an air-gap code stays valid. */
  airgapCodeMinutes: number;
  /**
   * Whether deactivation codes of air-gap activations made with version 1 codes are still accepted.
   * Such a code cannot be proven to come from the device (anyone who saw the activation code can
   * make one), so the vendor decides (docs/file-formats.md, "Air-gap codes").
   */
  acceptLegacyAirgapDeactivation: boolean;
  /** How long audit events are kept; older ones are deleted in batches (services/retention.ts). */
  auditRetentionDays: number;
  /**
   * Whether webhooks may be sent to loopback and private addresses (docs/webhooks.md, "Allowed
   * targets"): off by default; intranet deployments turn it on. Link-local and metadata addresses stay refused.
   */
  webhookPrivateTargets: boolean;
  /** Notifications (docs/notifications.md): the master switch; off, no check runs and no digest is sent. */
  notificationsEnabled: boolean;
  /** Days before a license expires that its reminders go out (the narrowest window a license is in). */
  expiryWindowsDays: readonly number[];
  /** Days before a license's maintenance ends that its reminders go out. */
  maintenanceWindowsDays: readonly number[];
  /** An order's seats in use at or above this percentage is reported to its managers. */
  seatsThresholdPercent: number;
  /** Days before an offline device's lease runs out that its user is reminded. */
  leaseWarningDays: number;
  /** Refusals of a floating license within 24 hours that count as a spike. */
  refusalSpikeThreshold: number;
  /** The hour (UTC) the managers' daily digest goes out. */
  managerDigestHour: number;
  /** The day (ISO: 1 Monday … 7 Sunday) and hour (UTC) the staff's weekly digest goes out. */
  staffDigestDay: number;
  staffDigestHour: number;
}

export const SETTING_LIMITS = {
  offlineLeaseDays: { min: 1, max: 3650 },
  airgapCodeMinutes: { min: 5, max: 10080 },
  auditRetentionDays: { min: 30, max: 36500 },
  /** Each day of a window list, and how many windows a list may hold. */
  windowDays: { min: 1, max: 3650 },
  windowCount: { min: 1, max: 8 },
  seatsThresholdPercent: { min: 1, max: 100 },
  leaseWarningDays: { min: 1, max: 365 },
  refusalSpikeThreshold: { min: 1, max: 100000 },
  hour: { min: 0, max: 23 },
  weekday: { min: 1, max: 7 },
} as const;

/** The defaults for keys never saved; only the language depends on the configuration. */
export function settingDefaults(defaultLanguage: Language): Settings {
  return {
    endUserSelfService: false,
    managerSecondFactor: false,
    defaultLanguage,
    offlineLeaseDays: 30,
    airgapCodeMinutes: 60,
    acceptLegacyAirgapDeactivation: true,
    auditRetentionDays: 400,
    webhookPrivateTargets: false,
    notificationsEnabled: true,
    expiryWindowsDays: [60, 30, 7, 1],
    maintenanceWindowsDays: [30, 7],
    seatsThresholdPercent: 90,
    leaseWarningDays: 7,
    refusalSpikeThreshold: 10,
    managerDigestHour: 7,
    staffDigestDay: 1,
    staffDigestHour: 7,
  };
}

interface Codec<T> {
  key: string;
  /** The stored text as a value, or undefined when it is not a valid one (the default applies). */
  read(text: string): T | undefined;
}

const flag = (key: string): Codec<boolean> => ({
  key,
  read: (s) => (s === 'true' ? true : s === 'false' ? false : undefined),
});
const whole = (key: string, { min, max }: { min: number; max: number }): Codec<number> => ({
  key,
  read: (s) => (/^\d{1,9}$/.test(s) && Number(s) >= min && Number(s) <= max ? Number(s) : undefined),
});
/**
 * A list of days ("60,30,7,1"): whole numbers within the limits, no repeats, widest first. The form
 * (forms/settings.ts) parses what the vendor typed with the same rule.
 */
export function parseDayList(text: string): number[] | undefined {
  const parts = text.split(/[\s,;]+/).filter(Boolean);
  const { windowDays, windowCount } = SETTING_LIMITS;
  if (parts.length < windowCount.min || parts.length > windowCount.max) return undefined;
  if (!parts.every((p) => /^\d{1,5}$/.test(p))) return undefined;
  const days = parts.map(Number);
  if (days.some((d) => d < windowDays.min || d > windowDays.max) || new Set(days).size !== days.length)
    return undefined;
  return days.sort((a, b) => b - a);
}
const dayList = (key: string): Codec<readonly number[]> => ({ key, read: parseDayList });
const languageCodec = (key: string): Codec<Language> => ({
  key,
  read: (s) => SUPPORTED_LANGUAGES.find((l) => l === s),
});

const CODECS: { [K in keyof Settings]: Codec<Settings[K]> } = {
  endUserSelfService: flag('end_user_self_service'),
  managerSecondFactor: flag('manager_second_factor'),
  defaultLanguage: languageCodec('default_language'),
  offlineLeaseDays: whole('offline_lease_days', SETTING_LIMITS.offlineLeaseDays),
  airgapCodeMinutes: whole('airgap_code_minutes', SETTING_LIMITS.airgapCodeMinutes),
  acceptLegacyAirgapDeactivation: flag('accept_legacy_airgap_deactivation'),
  auditRetentionDays: whole('audit_retention_days', SETTING_LIMITS.auditRetentionDays),
  webhookPrivateTargets: flag('webhook_private_targets'),
  notificationsEnabled: flag('notifications_enabled'),
  expiryWindowsDays: dayList('notification_expiry_windows'),
  maintenanceWindowsDays: dayList('notification_maintenance_windows'),
  seatsThresholdPercent: whole('notification_seats_threshold', SETTING_LIMITS.seatsThresholdPercent),
  leaseWarningDays: whole('notification_lease_days', SETTING_LIMITS.leaseWarningDays),
  refusalSpikeThreshold: whole('notification_refusal_spike', SETTING_LIMITS.refusalSpikeThreshold),
  managerDigestHour: whole('notification_manager_digest_hour', SETTING_LIMITS.hour),
  staffDigestDay: whole('notification_staff_digest_day', SETTING_LIMITS.weekday),
  staffDigestHour: whole('notification_staff_digest_hour', SETTING_LIMITS.hour),
};

const NAMES = Object.keys(CODECS) as (keyof Settings)[];

/** Every setting, typed; a key that was never saved (or holds an unreadable value) has its default. */
export async function getSettings(db: Knex, defaults: Settings): Promise<Settings> {
  const rows: { key: string; value: string }[] = await db('settings')
    .whereIn(
      'key',
      NAMES.map((n) => CODECS[n].key),
    )
    .select('key', 'value');
  const stored = new Map(rows.map((r) => [r.key, String(r.value)]));
  const out = { ...defaults };
  for (const name of NAMES) {
    const text = stored.get(CODECS[name].key);
    const value = text === undefined ? undefined : CODECS[name].read(text);
    if (value !== undefined) (out as Record<keyof Settings, unknown>)[name] = value;
  }
  return out;
}

/** Writes the given settings (insert or update per key: ON CONFLICT on SQLite, ON DUPLICATE KEY on MySQL). */
export async function saveSettings(db: Knex, values: Partial<Settings>, now: Date): Promise<void> {
  await bumpGeneration(db, now);
  const rows = NAMES.filter((n) => values[n] !== undefined).map((n) => ({
    key: CODECS[n].key,
    value: Array.isArray(values[n]) ? (values[n] as number[]).join(',') : String(values[n]),
    updated_at: now,
  }));
  if (rows.length) await db('settings').insert(rows).onConflict('key').merge(['value', 'updated_at']);
}
