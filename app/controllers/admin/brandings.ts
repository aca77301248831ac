import type { Request, Response } from 'express';
import type { z } from 'zod';
import type { AppContext } from '../../app.ts';
import * as brandings from '../../models/brandings.ts';
import { formData, type FieldErrors } from '../../forms/parse.ts';
import { LOGO_MAX_BYTES, brandingForm, checkLogo, hostForm } from '../../forms/brandings.ts';
import { pageCount, pageFrom } from '../../lib/pagination.ts';
import { singleUpload } from '../../middleware/uploads.ts';
import * as service from '../../services/brandings.ts';
import { done, idParam, listQuery, orNotFound } from '../helpers.ts';
import { onFailure } from '../../middleware/errors.ts';

const toInput = (data: z.infer<typeof brandingForm>): service.BrandingInput => ({
  name: data.name,
  displayName: data.display_name,
  primaryColor: data.primary_color,
  accentColor: data.accent_color,
  supportEmail: data.support_email,
  defaultLanguage: data.default_language,
  showPoweredBy: data.show_powered_by,
  logoAsFavicon: data.logo_as_favicon,
  mailFromName: data.mail_from_name ?? null,
  mailReplyTo: data.mail_reply_to ?? null,
  mailFooter: data.mail_footer ?? null,
});

const valuesOf = (b: brandings.BrandingRecord) => ({
  name: b.name,
  display_name: b.displayName,
  primary_color: b.primaryColor,
  accent_color: b.accentColor,
  support_email: b.supportEmail,
  default_language: b.defaultLanguage,
  show_powered_by: b.showPoweredBy,
  logo_as_favicon: b.logoAsFavicon,
  mail_from_name: b.mailFromName,
  mail_reply_to: b.mailReplyTo,
  mail_footer: b.mailFooter,
});

interface ShowForms {
  hostValues?: object;
  hostErrors?: FieldErrors;
  logoErrors?: FieldErrors;
}

/** Views get the branding being edited as `record`: `branding` is the request host's own, used by the layout. */
export function adminBrandingsController(ctx: AppContext) {
  interface FormPage {
    status: number;
    view: 'new' | 'edit';
    values: object;
    errors?: object;
    branding?: brandings.BrandingRecord;
  }
  const formView = (req: Request, res: Response, { status, view, values, errors = {}, branding }: FormPage) =>
    res.status(status).render(`admin/brandings/${view}`, {
      title: req.t(view === 'new' ? 'admin.brandings.new' : 'admin.brandings.edit'),
      values,
      errors,
      record: branding,
    });

  const showView = async (res: Response, branding: brandings.BrandingRecord, status = 200, forms: ShowForms = {}) => {
    const hosts = await brandings.listHosts(ctx.db, branding.id);
    res.status(status).render('admin/brandings/show', {
      title: branding.displayName,
      record: branding,
      hosts,
      hostValues: forms.hostValues ?? {},
      hostErrors: forms.hostErrors ?? {},
      logoErrors: forms.logoErrors ?? {},
    });
  };

  return {
    async index(req: Request, res: Response) {
      const query = listQuery(req, ['q']);
      const { page, limit, offset } = pageFrom(req.query);
      const [rows, total] = await Promise.all([
        brandings.list(ctx.db, query, limit, offset),
        brandings.count(ctx.db, query),
      ]);
      const hosts = await brandings.hostsByBranding(
        ctx.db,
        rows.map((b) => b.id),
      );
      res.render('admin/brandings/index', {
        title: req.t('admin.brandings.title'),
        brandings: rows,
        hosts,
        query,
        page,
        pages: pageCount(total),
        total,
      });
    },

    new(req: Request, res: Response) {
      const b = brandings.BUILT_IN_BRANDING;
      formView(req, res, {
        status: 200,
        view: 'new',
        values: {
          primary_color: b.primaryColor,
          accent_color: b.accentColor,
          default_language: ctx.config.defaultLanguage,
          show_powered_by: true,
        },
      });
    },

    async create(req: Request, res: Response) {
      onFailure(res, {
        back: res.locals.paths.adminBrandings(),
        rerender: (err) => formView(req, res, { status: 422, view: 'new', values: req.body, errors: err.fieldErrors }),
      });
      const form = formData(brandingForm, req.body);
      const brandingId = await service.createBranding(ctx, req.actor, toInput(form));
      done(req, res, res.locals.paths.adminBranding(brandingId), 'admin.brandings.created');
    },

    async show(req: Request, res: Response) {
      await showView(res, req.editedBranding!);
    },

    async edit(req: Request, res: Response) {
      const branding = req.editedBranding!;
      formView(req, res, { status: 200, view: 'edit', values: valuesOf(branding), branding });
    },

    async update(req: Request, res: Response) {
      const branding = req.editedBranding!;
      onFailure(res, {
        back: res.locals.paths.adminBranding(branding.id),
        rerender: (err) =>
          formView(req, res, { status: 422, view: 'edit', values: req.body, errors: err.fieldErrors, branding }),
      });
      const form = formData(brandingForm, req.body);
      await service.updateBranding(ctx, req.actor, branding.id, toInput(form));
      done(req, res, res.locals.paths.adminBranding(branding.id), 'admin.brandings.updated');
    },

    async destroy(req: Request, res: Response) {
      await service.deleteBranding(ctx, req.actor, idParam(req));
      done(req, res, res.locals.paths.adminBrandings(), 'admin.brandings.deleted');
    },

    async addHost(req: Request, res: Response) {
      const branding = req.editedBranding!;
      onFailure(res, {
        back: res.locals.paths.adminBranding(branding.id),
        rerender: (err) => showView(res, branding, 422, { hostValues: req.body, hostErrors: err.fieldErrors }),
      });
      const form = formData(hostForm, req.body);
      await service.addHost(ctx, req.actor, branding.id, form);
      done(req, res, res.locals.paths.adminBranding(branding.id), 'admin.brandings.hostAdded', {
        hostname: form.hostname,
      });
    },

    async removeHost(req: Request, res: Response) {
      const id = idParam(req);
      await service.removeHost(ctx, req.actor, id, idParam(req, 'hostId'));
      done(req, res, res.locals.paths.adminBranding(id), 'admin.brandings.hostRemoved');
    },

    /** Parses the multipart upload (CSRF token in the action URL); over the size limit: 413. */
    logoUpload: singleUpload('logo', LOGO_MAX_BYTES),

    async uploadLogo(req: Request, res: Response) {
      const branding = req.editedBranding!;
      const check =
        req.file && req.file.size > 0
          ? checkLogo(req.file.buffer)
          : { ok: false as const, error: 'brandings.logoMissing' };
      if (!check.ok) return showView(res, branding, 422, { logoErrors: { logo: check.error } });
      await service.setLogo(ctx, req.actor, branding.id, { data: req.file!.buffer, mime: check.mime });
      done(req, res, res.locals.paths.adminBranding(branding.id), 'admin.brandings.logoUploaded');
    },

    async removeLogo(req: Request, res: Response) {
      const id = idParam(req);
      await service.removeLogo(ctx, req.actor, id);
      done(req, res, res.locals.paths.adminBranding(id), 'admin.brandings.logoRemoved');
    },

    /** The logo of any branding, for the console's preview (/branding/logo serves only the host's own). */
    async logo(req: Request, res: Response) {
      const logo = orNotFound(await brandings.findLogo(ctx.db, idParam(req)));
      res
        .set({
          'Content-Type': logo.mime,
          'Cache-Control': 'private, no-cache',
          'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        })
        .send(logo.data);
    },
  };
}
