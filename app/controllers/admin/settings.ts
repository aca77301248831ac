import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import { settingDefaults, type Settings } from '../../models/settings.ts';
import * as devices from '../../models/devices.ts';
import { formData } from '../../forms/parse.ts';
import { settingsForm } from '../../forms/settings.ts';
import * as service from '../../services/settings.ts';
import { done } from '../helpers.ts';
import { onFailure } from '../../middleware/errors.ts';

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

export function adminSettingsController(ctx: AppContext) {
  const defaults = settingDefaults(ctx.config.defaultLanguage);
  const render = async (req: Request, res: Response, status: number, values: object, errors: object) =>
    res.status(status).render('admin/settings/show', {
      title: req.t('admin.settings.title'),
      values,
      errors,
      legacyAirgap: await devices.listLegacyAirgap(ctx.db, 100),
      legacyAirgapCount: await devices.countLegacyAirgap(ctx.db),
      hours: Array.from({ length: 24 }, (_, h) => ({ value: h, label: `${String(h).padStart(2, '0')}:00 UTC` })),
      weekdays: [1, 2, 3, 4, 5, 6, 7].map((d) => ({ value: d, label: req.t(`notifications.weekdays.${d}`) })),
    });

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
  };
}
