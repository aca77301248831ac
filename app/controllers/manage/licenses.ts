import type { Request, Response } from 'express';
import { z } from 'zod';
import type { AppContext } from '../../app.ts';
import * as licenses from '../../models/licenses.ts';
import type { License } from '../../models/licenses.ts';
import * as devices from '../../models/devices.ts';
import type { Device } from '../../models/devices.ts';
import { issueForm, licenseEditForm, noteForm } from '../../forms/console.ts';
import { portalIssueForm } from '../../forms/portal.ts';
import { email, oneOf, optionalText, optionalWholeNumber } from '../../forms/fields.ts';
import { entitlementFields, entitlementValues, toEntitlements } from '../../forms/policies.ts';
import { normaliseLicenseKey } from '../../lib/license-keys.ts';
import { AppError } from '../../lib/errors.ts';
import { deviceActions } from '../../policies/devices.ts';
import type { Permission } from '../../policies/permissions.ts';
import * as service from '../../services/licenses.ts';
import { issueAndInvite } from '../../services/portal.ts';
import { issueRefreshFile } from '../../services/license-files.ts';
import { dispatchLicenses } from '../../services/dispatch.ts';
import { body, bodyObject, isoTime, parsed, query } from '../../api/manage/input.ts';
import { cursorPage, pageParams } from '../../api/manage/pagination.ts';
import { manageScope } from '../../api/manage/loaders.ts';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** A license as the Management API shows it: its state, dates and the entitlements it carries. */
export function licenseJson(l: License) {
  return {
    id: l.id,
    order_id: l.orderId,
    order_ref: l.orderRef,
    customer_name: l.customerName,
    product_id: l.productId,
    product_code: l.productCode,
    product_name: l.productName,
    policy_id: l.policyId,
    authorization_method: l.authorizationMethod,
    license_key: l.licenseKey,
    enabled: l.enabled,
    status: l.status,
    start_date: iso(l.startDate),
    expires_at: iso(l.expiresAt),
    maintenance_until: iso(l.maintenanceUntil),
    times_activated: l.timesActivated,
    transfer_count: l.transferCount,
    note: l.note,
    dispatched_to: l.dispatchedTo,
    dispatched_at: iso(l.dispatchedAt),
    entitlements: entitlementValues(l),
    created_at: l.createdAt.toISOString(),
    updated_at: l.updatedAt.toISOString(),
  };
}

/** A device (one activation, active or not) and what the token may do to it (policies/devices.ts). */
export function deviceJson(license: License, d: Device, permissions?: ReadonlySet<Permission>) {
  const may = deviceActions(license, d, permissions);
  return {
    id: d.id,
    license_id: d.licenseId,
    license_user_id: d.licenseUserAccountId,
    hardware_id: d.hardwareId,
    hostname: d.hostname,
    os: d.os,
    app_version: d.appVersion,
    channel: d.channel,
    active: d.active,
    blacklisted: d.blacklisted,
    activated_at: d.activatedAt.toISOString(),
    last_seen_at: iso(d.lastSeenAt),
    deactivated_at: iso(d.deactivatedAt),
    deactivation_reason: d.deactivationReason,
    borrowed_until: iso(d.borrowedUntil),
    actions: { reset: may.reset, blacklist: may.blacklist, unblacklist: may.unblacklist, refresh: may.refresh },
  };
}

const flag = z.preprocess(
  (v) => (v === undefined || v === '' ? undefined : v === 'true' ? true : v === 'false' ? false : v),
  z.boolean({ message: 'validation.invalid' }).optional(),
);

const anyId = optionalWholeNumber(1, 2_147_483_647);

const listFilter = z.object({
  order_id: anyId,
  product_id: anyId,
  policy_id: anyId,
  status: z.preprocess((v) => (v === '' ? undefined : v), oneOf(licenses.LICENSE_STATUSES).optional()),
  enabled: flag,
  key: optionalText(64),
  user: optionalText(254),
  updated_since: isoTime,
  ...pageParams,
});

/** The entitlement switches: JSON booleans (the console's checkbox reading would take "yes" as false). */
const SWITCHES = ['is_trial', 'unlimited_activations', 'allow_offline', 'floating', 'can_borrow'] as const;
const strictSwitches = z.object(
  Object.fromEntries(SWITCHES.map((f) => [f, z.boolean({ message: 'validation.invalid' }).optional()])),
);

/** Fixed when the license was issued: a PATCH may repeat them, never change them. */
const FIXED = ['license_type', 'airgapped'] as const;
const DATES = ['start_date', 'expires_at', 'maintenance_until'] as const;

/** What an API client's PATCH may send: the console's license edit form. */
const VENDOR_EDITABLE: string[] = [...Object.keys(entitlementFields), ...DATES, 'note'];

const dateOnly = (d: Date | null) => (d ? d.toISOString().slice(0, 10) : null);

/** /api/manage/v1/licenses and /orders/:id/licenses: the console's and the portal's license services. */
export function manageLicensesController(ctx: AppContext) {
  const { orderIds } = manageScope(ctx);
  const isClient = (req: Request) => req.api!.token.kind === 'client';
  const reload = async (id: number) => (await licenses.findById(ctx.db, id, ctx.clock.now()))!;
  const showLicense = async (res: Response, id: number, status = 200) =>
    res.status(status).json(licenseJson(await reload(id)));
  const showDevice = async (req: Request, res: Response) => {
    const license = await reload(req.license!.id);
    const device = (await devices.findForLicense(ctx.db, license.id, req.device!.id))!;
    res.json(deviceJson(license, device, isClient(req) ? undefined : req.permissions));
  };

  return {
    async index(req: Request, res: Response) {
      const f = query(listFilter, req);
      const now = ctx.clock.now();
      const q = licenses.apiQuery(
        ctx.db,
        orderIds(req),
        {
          orderId: f.order_id ?? undefined,
          productId: f.product_id ?? undefined,
          policyId: f.policy_id ?? undefined,
          status: f.status,
          enabled: f.enabled,
          key: f.key ? normaliseLicenseKey(f.key) : undefined,
          userEmail: f.user ?? undefined,
          updatedSince: f.updated_since,
        },
        now,
      );
      res.json(
        await cursorPage(q, f, (rows) => rows.map((r) => licenseJson(licenses.fromApiRow(r, now))), 'licenses.id'),
      );
    },

    show: (req: Request, res: Response) => res.json(licenseJson(req.license!)),

    /**
     * POST /orders/:id/licenses: the portal's issue (services/portal.ts issueAsManager: a manager's
     * token only from its allowed policies, within its quota; users of user-based licenses placed
     * or invited as the portal does). `start_date` is the console's field: API clients only.
     */
    async issue(req: Request, res: Response) {
      const raw = bodyObject(req);
      const client = isClient(req);
      if (!client && raw.start_date !== undefined)
        throw AppError.validation({ start_date: 'api.licenses.vendorOnlyField' });
      const input = { ...raw, emails: Array.isArray(raw.emails) ? raw.emails.join('\n') : raw.emails };
      const f = parsed(client ? issueForm : portalIssueForm, input);
      const issued = await issueAndInvite(ctx, req.actor, req.api!.account, req.order!.id, {
        policyId: f.policy_id,
        quantity: f.quantity ?? undefined,
        emails: f.emails,
        startDate: 'start_date' in f ? (f.start_date as Date | null) : null,
      });
      res.status(201).json({
        order_id: req.order!.id,
        product_id: issued.productId,
        policy_id: f.policy_id,
        count: issued.licenseIds.length,
        licenses: await licenses.summariesOf(ctx.db, issued.licenseIds),
      });
    },

    /**
     * PATCH: what the principal may edit where it works by hand. A manager's token (with
     * `edit_license`) changes the note, as in the portal; an API client edits as the console does —
     * entitlements, dates and note, the type and the air-gapped flag fixed, an air-gapped license's
     * entitlements frozen (services/licenses.ts updateLicense).
     */
    async update(req: Request, res: Response) {
      const l = req.license!;
      const raw = bodyObject(req);
      // A field this principal cannot change here is named, never dropped: a shop sending
      // `enabled: false` must not get a 200 for a license still enabled.
      const editable = isClient(req) ? VENDOR_EDITABLE : ['note'];
      const refused = Object.keys(raw).filter((k) => !editable.includes(k));
      if (refused.length)
        throw AppError.validation(
          Object.fromEntries(
            refused.map((k) => [
              k,
              VENDOR_EDITABLE.includes(k) ? 'api.licenses.vendorOnlyField' : 'api.licenses.notEditable',
            ]),
          ),
        );
      if (Object.keys(raw).every((k) => k === 'note')) {
        if ('note' in raw) await service.setLicenseNote(ctx, req.actor, l.id, body(noteForm, req).note);
        return showLicense(res, l.id);
      }
      if (l.airgapped) throw AppError.conflict('admin.licenses.airgappedFrozen');
      parsed(strictSwitches, raw);
      const fixed = FIXED.filter((k) => k in raw && raw[k] !== entitlementValues(l)[k]);
      if (fixed.length) throw AppError.validation(Object.fromEntries(fixed.map((k) => [k, 'api.licenses.fixed'])));
      const form = parsed(licenseEditForm, {
        ...entitlementValues(l),
        start_date: dateOnly(l.startDate),
        expires_at: dateOnly(l.expiresAt),
        maintenance_until: dateOnly(l.maintenanceUntil),
        note: l.note,
        ...raw,
        license_type: l.licenseType,
        airgapped: l.airgapped,
      });
      // A date not sent keeps its time of day (the form's fields are whole days).
      const date = (k: (typeof DATES)[number], current: Date | null) => (k in raw ? form[k] : current);
      await service.updateLicense(ctx, req.actor, l.id, {
        entitlements: toEntitlements(form),
        startDate: date('start_date', l.startDate),
        expiresAt: date('expires_at', l.expiresAt),
        maintenanceUntil: date('maintenance_until', l.maintenanceUntil),
        note: form.note,
      });
      await showLicense(res, l.id);
    },

    async enable(req: Request, res: Response) {
      await service.setLicenseEnabled(ctx, req.actor, req.license!.id, true);
      await showLicense(res, req.license!.id);
    },

    async disable(req: Request, res: Response) {
      await service.setLicenseEnabled(ctx, req.actor, req.license!.id, false);
      await showLicense(res, req.license!.id);
    },

    /** Deactivates every device of the license. */
    async reset(req: Request, res: Response) {
      const count = await service.resetLicense(ctx, req.actor, req.license!.id);
      res.json({ ...licenseJson(await reload(req.license!.id)), devices_deactivated: count });
    },

    /** Records to whom the key was sent and mails it (services/dispatch.ts, as the portal's dispatch). */
    async dispatch(req: Request, res: Response) {
      const f = body(z.object({ email }), req);
      const result = await dispatchLicenses(ctx, req.actor, req.license!.orderId, [
        { licenseId: req.license!.id, email: f.email },
      ]);
      res.json({ ...licenseJson(await reload(req.license!.id)), mail: result.sending ? 'sending' : 'outbox' });
    },

    async devices(req: Request, res: Response) {
      const f = query(z.object(pageParams), req);
      const license = req.license!;
      const permissions = isClient(req) ? undefined : req.permissions;
      res.json(
        await cursorPage(
          devices.forLicenseQuery(ctx.db, license.id),
          f,
          (rows) => rows.map((r) => deviceJson(license, devices.fromApiRow(r), permissions)),
          'devices.id',
        ),
      );
    },

    async resetDevice(req: Request, res: Response) {
      await service.resetDevice(ctx, req.actor, req.license!.id, req.device!.id);
      await showDevice(req, res);
    },

    async blacklistDevice(req: Request, res: Response) {
      await service.blacklistDevice(ctx, req.actor, req.license!.id, req.device!.id);
      await showDevice(req, res);
    },

    async unblacklistDevice(req: Request, res: Response) {
      await service.unblacklistDevice(ctx, req.actor, req.license!.id, req.device!.id);
      await showDevice(req, res);
    },

    /**
     * A refresh license file for an active offline device (services/license-files.ts, the portal's
     * and console's download): the armoured file in JSON, with the name the download would have.
     */
    async refresh(req: Request, res: Response) {
      const file = await issueRefreshFile(ctx, req.actor, req.license!.id, req.device!.id);
      res.set('Cache-Control', 'no-store').status(201).json({
        device_id: req.device!.id,
        filename: file.filename,
        content_type: 'application/x-portico-license',
        license_file: file.text,
      });
    },
  };
}
