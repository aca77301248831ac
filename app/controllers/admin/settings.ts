import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import { settingDefaults, type Settings } from '../../models/settings.ts';
import * as devices from '../../models/devices.ts';
import { formData } from '../../forms/parse.ts';
import { settingsForm } from '../../forms/settings.ts';
import * as service from '../../services/settings.ts';
import { done } from '../helpers.ts';
import { onFailure } from '../../middleware/errors.ts';
import { ldapForm } from '../../forms/ldap.ts';
import { AppError } from '../../lib/errors.ts';
import { settingsProblems, transportProblem, type LdapSettings } from '../../lib/ldap.ts';
import {
  EMPTY_LDAP,
  hasStoredBindPassword,
  ldapSource,
  saveLdapSettings,
  type LdapSource,
} from '../../services/ldap.ts';

const valuesOf = (s: Settings) => ({
  end_user_self_service: s.endUserSelfService,
  manager_second_factor: s.managerSecondFactor,
  default_language: s.defaultLanguage,
  offline_lease_days: s.offlineLeaseDays,
  airgap_code_minutes: s.airgapCodeMinutes,
  accept_legacy_airgap_deactivation: s.acceptLegacyAirgapDeactivation,
  audit_retention_days: s.auditRetentionDays,
  webhook_private_targets: s.webhookPrivateTargets,
  notifications_enabled: s.notificationsEnabled,
  notification_expiry_windows: s.expiryWindowsDays.join(', '),
  notification_maintenance_windows: s.maintenanceWindowsDays.join(', '),
  notification_seats_threshold: s.seatsThresholdPercent,
  notification_lease_days: s.leaseWarningDays,
  notification_refusal_spike: s.refusalSpikeThreshold,
  notification_manager_digest_hour: s.managerDigestHour,
  notification_staff_digest_day: s.staffDigestDay,
  notification_staff_digest_hour: s.staffDigestHour,
});

/** The LDAP section's values: the environment's (read-only), the console's, or the empty form. */
function ldapValuesOf(source: LdapSource) {
  const s =
    source.source === 'environment'
      ? { ...source.settings, enabled: true, timeoutSeconds: source.settings.timeoutMs / 1000 }
      : source.source === 'console'
        ? source.stored
        : EMPTY_LDAP;
  return {
    ldap_enabled: s.enabled,
    ldap_url: s.url,
    ldap_start_tls: s.startTls,
    ldap_allow_plain: s.allowPlain,
    ldap_ca_pem: s.caPem ?? '',
    ldap_bind_dn: s.bindDn,
    ldap_user_base: s.userBase,
    ldap_user_filter: s.userFilter,
    ldap_admin_group: s.adminGroup,
    ldap_timeout_seconds: s.timeoutSeconds,
  };
}

/** The checks every LDAP source gets (lib/ldap.ts settingsProblems), as the form's messages. */
const LDAP_MESSAGES: Partial<Record<keyof LdapSettings, [string, string]>> = {
  url: ['ldap_url', 'ldap.validation.url'],
  startTls: ['ldap_start_tls', 'ldap.validation.startTlsLdaps'],
  userFilter: ['ldap_user_filter', 'ldap.validation.userFilter'],
  bindDn: ['ldap_bind_dn', 'ldap.validation.dn'],
  userBase: ['ldap_user_base', 'ldap.validation.dn'],
  adminGroup: ['ldap_admin_group', 'ldap.validation.dn'],
  bindPassword: ['ldap_bind_password', 'validation.required'],
  caPem: ['ldap_ca_pem', 'ldap.validation.caPem'],
};

export function adminSettingsController(ctx: AppContext) {
  const defaults = settingDefaults(ctx.config.defaultLanguage);
  const render = async (
    req: Request,
    res: Response,
    status: number,
    values: object,
    errors: object,
    ldap?: { values: object; errors: object },
  ) => {
    const source = await ldapSource(ctx);
    res.status(status).render('admin/settings/show', {
      title: req.t('admin.settings.title'),
      values,
      errors,
      ldapSource: source.source,
      ldapValues: ldap?.values ?? ldapValuesOf(source),
      ldapErrors: ldap?.errors ?? {},
      ldapPasswordStored: source.source === 'environment' || hasStoredBindPassword(source),
      legacyAirgap: await devices.listLegacyAirgap(ctx.db, 100),
      legacyAirgapCount: await devices.countLegacyAirgap(ctx.db),
      hours: Array.from({ length: 24 }, (_, h) => ({ value: h, label: `${String(h).padStart(2, '0')}:00 UTC` })),
      weekdays: [1, 2, 3, 4, 5, 6, 7].map((d) => ({ value: d, label: req.t(`notifications.weekdays.${d}`) })),
    });
  };

  return {
    async show(req: Request, res: Response) {
      render(req, res, 200, valuesOf(await ctx.settings()), {});
    },

    async update(req: Request, res: Response) {
      onFailure(res, { rerender: (err) => render(req, res, 422, req.body, err.fieldErrors) });
      const form = formData(settingsForm, req.body);
      const d = form;
      await service.updateSettings(ctx, req.actor, defaults, {
        endUserSelfService: d.end_user_self_service,
        managerSecondFactor: d.manager_second_factor,
        defaultLanguage: d.default_language,
        offlineLeaseDays: d.offline_lease_days,
        airgapCodeMinutes: d.airgap_code_minutes,
        acceptLegacyAirgapDeactivation: d.accept_legacy_airgap_deactivation,
        auditRetentionDays: d.audit_retention_days,
        webhookPrivateTargets: d.webhook_private_targets,
        notificationsEnabled: d.notifications_enabled,
        expiryWindowsDays: d.notification_expiry_windows,
        maintenanceWindowsDays: d.notification_maintenance_windows,
        seatsThresholdPercent: d.notification_seats_threshold,
        leaseWarningDays: d.notification_lease_days,
        refusalSpikeThreshold: d.notification_refusal_spike,
        managerDigestHour: d.notification_manager_digest_hour,
        staffDigestDay: d.notification_staff_digest_day,
        staffDigestHour: d.notification_staff_digest_hour,
      });
      done(req, res, res.locals.paths.adminSettings(), 'admin.settings.saved');
    },

    /** The LDAP section (services/ldap.ts): checked as a whole when enabled; the bind password kept when left empty. */
    async updateLdap(req: Request, res: Response) {
      const current = await ldapSource(ctx);
      onFailure(res, {
        rerender: async (err) =>
          render(
            req,
            res,
            err.status,
            valuesOf(await ctx.settings()),
            {},
            {
              values: { ...req.body, ldap_bind_password: '' },
              errors: err.kind === 'validation' ? err.fieldErrors : { _form: err.messageKey },
            },
          ),
        rerenderKinds: ['validation', 'conflict'],
      });
      if (current.source === 'environment') throw AppError.conflict('ldap.settings.fromEnvironment');
      const d = formData(ldapForm, req.body);
      const input = {
        enabled: d.ldap_enabled,
        url: d.ldap_url,
        startTls: d.ldap_start_tls && d.ldap_url.startsWith('ldap://'),
        allowPlain: d.ldap_allow_plain,
        caPem: d.ldap_ca_pem,
        bindDn: d.ldap_bind_dn,
        bindPassword: d.ldap_bind_password || null,
        userBase: d.ldap_user_base,
        userFilter: d.ldap_user_filter,
        adminGroup: d.ldap_admin_group,
        timeoutSeconds: d.ldap_timeout_seconds,
      };
      if (input.enabled) {
        const problems = settingsProblems({
          ...input,
          bindPassword: input.bindPassword ?? (hasStoredBindPassword(current) ? 'stored' : ''),
          timeoutMs: input.timeoutSeconds * 1000,
        });
        const errors: Record<string, string> = {};
        for (const field of Object.keys(problems) as (keyof LdapSettings)[]) {
          const [name, key] = LDAP_MESSAGES[field] ?? ['ldap_url', 'ldap.validation.url'];
          errors[name] = field === 'url' && transportProblem(input) ? 'ldap.validation.plain' : key;
        }
        if (Object.keys(errors).length) throw AppError.validation(errors);
      }
      await saveLdapSettings(ctx, req.actor, input);
      done(req, res, res.locals.paths.adminSettings(), 'ldap.settings.saved');
    },
  };
}
