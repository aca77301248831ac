import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import { notFound } from '../../lib/errors.ts';
import { isLanguage } from '../../lib/i18n.ts';
import * as brandings from '../../models/brandings.ts';
import { MAIL_KINDS, isMailKind, previewMail } from '../../services/mail.ts';

/** Brandings offered in the preview's select (a console has a handful). */
const BRANDING_CHOICES = 200;

/** Console → Mail templates: every mail kind, previewed for any branding and language with sample data. */
export function adminMailTemplatesController(ctx: AppContext) {
  return {
    async index(req: Request, res: Response) {
      res.render('admin/mail-templates/index', { title: req.t('mails.preview.title'), kinds: MAIL_KINDS });
    },

    /** `?branding=<id>` (empty: the built-in look) and `?language=`; an unknown kind, branding or language is a 404. */
    async show(req: Request, res: Response) {
      const kind = req.params.kind;
      const brandingParam = typeof req.query.branding === 'string' ? req.query.branding : '';
      const languageParam =
        typeof req.query.language === 'string' && req.query.language ? req.query.language : req.lang;
      if (!isMailKind(kind) || !isLanguage(languageParam) || (brandingParam && !/^[1-9]\d{0,9}$/.test(brandingParam)))
        throw notFound();
      const branding = brandingParam
        ? await brandings.findBranding(ctx.db, Number(brandingParam))
        : brandings.BUILT_IN_BRANDING;
      if (!branding) throw notFound();
      const mail = await previewMail(ctx, kind, branding, languageParam);
      res.render('admin/mail-templates/show', {
        title: req.t(`mails.preview.kinds.${kind}`),
        kind,
        mail,
        brandingChoices: await brandings.list(ctx.db, {}, BRANDING_CHOICES, 0),
        values: { branding: brandingParam, language: languageParam },
      });
    },
  };
}
