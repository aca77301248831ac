import type { Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import * as customers from '../models/customers.ts';
import * as idp from '../models/identity-providers.ts';
import * as roles from '../models/roles.ts';
import { dataDirSecretBox } from '../crypto/secret-box.ts';
import { AppError, notFound, ValidationError } from '../lib/errors.ts';
import { assertTargetAllowed, TargetRefused } from '../lib/webhook-target.ts';
import { formData } from '../forms/parse.ts';
import { domainForm, mappingForm, providerForm, seatRuleForm, type ProviderForm } from '../forms/sso.ts';
import * as service from '../services/sso.ts';
import { fetchIdpMetadata, parseIdpMetadata, spUrls } from '../services/sso-saml.ts';
import { onFailure } from '../middleware/errors.ts';
import { idParam, loader, onPage, orNotFound } from './helpers.ts';

declare global {
  namespace Express {
    interface Request {
      identityProvider?: idp.IdentityProvider;
    }
  }
}

const DOMAIN_CHANGES = ['verify', 'unverify', 'password_on', 'password_off', 'remove'] as const;
type DomainChange = (typeof DOMAIN_CHANGES)[number];
/** Confirming a domain routes other people's addresses: the vendor's act only (docs/sso.md). */
const VENDOR_ONLY_CHANGES: DomainChange[] = ['verify', 'unverify'];

/**
 * A customer's single sign-on pages: in the console (`admin`, under the customer) and in the User
 * Portal (`portal`, for a manager whose role on one of the customer's orders includes `edit_customer`;
 * a manager of none of its orders gets 404, one without the permission 403). The same views serve both.
 */
export function ssoConfigController(ctx: AppContext, area: 'admin' | 'portal') {
  const secretBox = dataDirSecretBox(ctx.config.dataDir);
  const deps = { ...ctx, secretBox };
  const links = (req: Request, res: Response) => res.locals.paths.sso(area, req.customer!.id);
  const limitOf = (req: Request) => (area === 'portal' ? { accountId: req.user!.id } : null);

  /** The provider's fields from the form: a SAML provider's metadata read (or fetched) and checked here. */
  async function inputFrom(form: ProviderForm, existing: idp.IdentityProvider | null): Promise<service.ProviderInput> {
    const kind = existing?.kind ?? form.kind;
    const allowPrivate = (await ctx.settings()).webhookPrivateTargets;
    const base = { kind, name: form.name, enabled: form.enabled, groupsClaim: form.groups_claim };
    if (kind === 'oidc') {
      const errors: Record<string, string> = {};
      if (!form.oidc_issuer) errors.oidc_issuer = 'validation.required';
      else
        try {
          const url = new URL(form.oidc_issuer);
          if (url.protocol === 'http:' && !allowPrivate) errors.oidc_issuer = 'sso.providers.httpsRequired';
          else await assertTargetAllowed(form.oidc_issuer, allowPrivate);
        } catch (err) {
          errors.oidc_issuer = err instanceof TargetRefused ? err.reason : 'sso.providers.urlInvalid';
        }
      if (!form.oidc_client_id) errors.oidc_client_id = 'validation.required';
      if (Object.keys(errors).length) throw new ValidationError(errors);
      return {
        ...base,
        oidcIssuer: form.oidc_issuer,
        oidcClientId: form.oidc_client_id,
        oidcClientSecret: form.oidc_client_secret,
        oidcScopes: form.oidc_scopes ?? 'openid email profile',
      };
    }
    let metadata: ReturnType<typeof parseIdpMetadata> = null;
    if (form.saml_metadata_xml) {
      metadata = parseIdpMetadata(form.saml_metadata_xml);
      if (!metadata) throw new ValidationError({ saml_metadata_xml: 'sso.providers.metadataInvalid' });
    } else if (form.saml_metadata_url) {
      try {
        await assertTargetAllowed(form.saml_metadata_url, allowPrivate);
      } catch (err) {
        throw new ValidationError({
          saml_metadata_url: err instanceof TargetRefused ? err.reason : 'sso.providers.urlInvalid',
        });
      }
      metadata = await fetchIdpMetadata(form.saml_metadata_url, allowPrivate);
      if (!metadata) throw new ValidationError({ saml_metadata_url: 'sso.providers.metadataUnreadable' });
    } else if (existing?.samlSsoUrl) {
      return {
        ...base,
        samlMetadataUrl: existing.samlMetadataUrl,
        samlEntityId: existing.samlEntityId,
        samlSsoUrl: existing.samlSsoUrl,
        samlCertificates: existing.samlCertificates,
      };
    } else throw new ValidationError({ saml_metadata_xml: 'sso.providers.metadataRequired' });
    return {
      ...base,
      samlMetadataUrl: form.saml_metadata_url,
      samlEntityId: metadata.entityId,
      samlSsoUrl: metadata.ssoUrl,
      samlCertificates: metadata.certificates.join('\n'),
    };
  }

  const renderIndex = async (req: Request, res: Response, status = 200, errors: object = {}, values: object = {}) => {
    const customer = req.customer!;
    const [providers, overview] = await Promise.all([
      idp.ofCustomer(ctx.db, customer.id),
      service.seatOverview(ctx.db, customer.id, ctx.clock.now()),
    ]);
    res.status(status).render('sso/index', {
      title: req.t('sso.title', { customer: customer.name }),
      area,
      customer,
      providers,
      overview,
      values: { kind: 'oidc', groups_claim: 'groups', ...values },
      errors,
    });
  };

  const renderShow = async (req: Request, res: Response, status = 200, errors: object = {}, values: object = {}) => {
    const provider = req.identityProvider!;
    const [domains, mappings, targets, roleList] = await Promise.all([
      idp.domainsOf(ctx.db, provider.id),
      idp.mappingViews(ctx.db, provider.id),
      idp.customerTargets(ctx.db, req.customer!.id),
      roles.list(ctx.db),
    ]);
    res.status(status).render('sso/show', {
      title: provider.name,
      area,
      customer: req.customer!,
      provider,
      domains,
      mappings,
      targets,
      roles: roleList,
      callbackUrl: ctx.baseUrl + res.locals.paths.ssoOidcCallback(provider.id),
      saml: spUrls(ctx.baseUrl, provider.id),
      values: {
        name: provider.name,
        enabled: provider.enabled,
        groups_claim: provider.groupsClaim,
        oidc_issuer: provider.oidcIssuer,
        oidc_client_id: provider.oidcClientId,
        oidc_scopes: provider.oidcScopes,
        saml_metadata_url: provider.samlMetadataUrl,
        ...values,
      },
      errors,
    });
  };

  return {
    /** Portal: the customer of `:id` when the manager's role on one of its orders includes edit_customer; else 404. */
    customer: loader(async (req) => {
      const customer = orNotFound(await customers.findById(ctx.db, idParam(req)));
      // Outside the manager's orders: 404; on them without edit_customer: 403 (like every portal action).
      if (area === 'portal' && req.user!.role !== 'admin') {
        if (!(await idp.managesCustomer(ctx.db, req.user!.id, customer.id))) throw notFound();
        const perms = await roles.permissionsOnCustomer(ctx.db, req.user!.id, customer.id);
        if (!perms.includes('edit_customer')) throw AppError.forbidden();
      }
      req.customer = customer;
    }),
    provider: loader(async (req) => {
      const provider = await idp.find(ctx.db, idParam(req, 'providerId'));
      if (!provider || provider.customerId !== req.customer!.id) throw notFound();
      req.identityProvider = provider;
    }),

    index: (req: Request, res: Response) => renderIndex(req, res),

    async create(req: Request, res: Response) {
      onFailure(res, { rerender: (err) => renderIndex(req, res, 422, err.fieldErrors, req.body) });
      const form = formData(providerForm, req.body);
      const id = await service.createProvider(deps, req.actor, req.customer!.id, await inputFrom(form, null));
      onPage(req, res, links(req, res).show(id))('sso.providers.created');
    },

    async seatRule(req: Request, res: Response) {
      const ok = onPage(req, res, links(req, res).index());
      const { rule } = formData(seatRuleForm, req.body);
      await service.setSeatRule(ctx, req.actor, req.customer!.id, rule);
      ok('sso.seats.ruleSaved');
    },

    show: (req: Request, res: Response) => renderShow(req, res),

    async update(req: Request, res: Response) {
      onFailure(res, { rerender: (err) => renderShow(req, res, 422, err.fieldErrors, req.body) });
      const provider = req.identityProvider!;
      const form = formData(providerForm, { ...req.body, kind: provider.kind });
      await service.updateProvider(deps, req.actor, provider, await inputFrom(form, provider));
      onPage(req, res, links(req, res).show(provider.id))('sso.providers.updated');
    },

    async destroy(req: Request, res: Response) {
      const ok = onPage(req, res, links(req, res).index());
      await service.deleteProvider(ctx, req.actor, req.identityProvider!);
      ok('sso.providers.deleted');
    },

    async addDomain(req: Request, res: Response) {
      const ok = onPage(req, res, links(req, res).show(req.identityProvider!.id), (errors) =>
        renderShow(req, res, 422, errors, {}),
      );
      const { domain } = formData(domainForm, req.body);
      await service.addDomain(ctx, req.actor, req.identityProvider!, domain);
      ok('sso.domains.added');
    },

    async changeDomain(req: Request, res: Response) {
      const change = String(req.params.change) as DomainChange;
      if (!DOMAIN_CHANGES.includes(change)) throw notFound();
      if (area === 'portal' && VENDOR_ONLY_CHANGES.includes(change)) throw notFound();
      const ok = onPage(req, res, links(req, res).show(req.identityProvider!.id));
      await service.changeDomain(ctx, req.actor, req.identityProvider!, idParam(req, 'domainId'), change);
      ok(`sso.domains.changed.${change}`);
    },

    async addMapping(req: Request, res: Response) {
      const ok = onPage(req, res, links(req, res).show(req.identityProvider!.id), (errors) =>
        renderShow(req, res, 422, errors, {}),
      );
      const form = formData(mappingForm, req.body);
      await service.addMapping(
        ctx,
        req.actor,
        req.identityProvider!,
        {
          groupName: form.group_name,
          kind: form.kind,
          orderId: form.order_id ?? null,
          roleId: form.role_id ?? null,
          licenseId: form.license_id ?? null,
        },
        limitOf(req),
      );
      ok('sso.mappings.added');
    },

    async removeMapping(req: Request, res: Response) {
      const ok = onPage(req, res, links(req, res).show(req.identityProvider!.id));
      await service.removeMapping(ctx, req.actor, req.identityProvider!, idParam(req, 'mappingId'));
      ok('sso.mappings.removed');
    },
  };
}
