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
      });
      done(req, res, res.locals.paths.adminSettings(), 'admin.settings.saved');
    },
  };
}
