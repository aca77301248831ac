import type { Request, RequestHandler, Response } from 'express';
import type { AppContext } from '../app.ts';
import type { License } from '../models/licenses.ts';
import type { Device } from '../models/devices.ts';
import * as accounts from '../models/accounts.ts';
import * as brandings from '../models/brandings.ts';
import * as licenseUsers from '../models/license-users.ts';
import * as managers from '../models/managers.ts';
import * as products from '../models/products.ts';
import * as signingKeys from '../models/signing-keys.ts';
import * as vouchers from '../models/vouchers.ts';
import { notFound } from '../lib/errors.ts';
import { managersBelow } from '../services/delegation.ts';
import { idParam, orNotFound } from './helpers.ts';

/**
 * The confirmation step of an irreversible or wide action (docs/decisions.md, "Confirmation"): the
 * action's POST without `confirmed=1` does nothing and answers a page that names exactly what will
 * happen, whose form posts the same fields again with `confirmed=1` (and a fresh CSRF token). A link,
 * an old page or a forged form without the field cannot act in one click. public/js/confirm.js reads
 * the same page (it posts the form without the field) and shows its text in a <dialog>.
 */
export const CONFIRM_FIELD = 'confirmed';

export interface Confirmation {
  /** The question, as the page's heading and the dialog's label. */
  title: string;
  /** What exactly happens, naming the object (and whether it can be undone). */
  text: string;
  /** The confirming button's label (the action's own word). */
  button: string;
  /** Where "Cancel" leads without JavaScript: the page the action was offered on. */
  back: string;
}

/** Names what the action will do; may read (never change) what it names, and 404 for anything outside the scope. */
export type Describe = (req: Request, res: Response) => Confirmation | Promise<Confirmation>;

/** The route-line guard: passes a confirmed POST on, answers the confirm page for anything else. */
export const confirmFirst =
  (describe: Describe): RequestHandler =>
  async (req, res, next) => {
    if (req.body?.[CONFIRM_FIELD] === '1') return next();
    const confirmation = await describe(req, res);
    // The submitted fields travel on (a mode like `credentials`), never the old token or the flag.
    const fields = Object.entries((req.body ?? {}) as Record<string, unknown>).filter(
      (e): e is [string, string] => e[0] !== '_csrf' && e[0] !== CONFIRM_FIELD && typeof e[1] === 'string',
    );
    res.set('Cache-Control', 'no-store').render('confirm', {
      title: confirmation.title,
      confirmation,
      action: req.originalUrl,
      fields,
    });
  };

/** A license as the pages name it: its key, or "User license #n". */
const licenseName = (req: Request, l: License) => l.licenseKey ?? req.t('admin.licenses.userBased', { id: l.id });
/** A machine as the pages name it: its hardware id, with its hostname when it reported one. */
const machineName = (d: Device) => (d.hostname ? `${d.hardwareId} (${d.hostname})` : d.hardwareId);
/** A confirmation whose title and text are `<key>.title` and `<key>.text` with the same variables. */
const question = (
  req: Request,
  key: string,
  vars: Record<string, unknown>,
  button: string,
  back: string,
): Confirmation => ({
  title: req.t(`${key}.title`, vars),
  text: req.t(`${key}.text`, vars),
  button,
  back,
});

/**
 * The confirmations of the User Portal and the console, one per action (docs/decisions.md lists
 * which actions have one and why the others do not). `area` picks the page "Cancel" returns to.
 */
export function confirmations(ctx: AppContext) {
  const licensePage = (req: Request, res: Response) =>
    req.baseUrl === '/admin'
      ? res.locals.paths.adminLicense(req.license!.id)
      : res.locals.paths.portalLicense(req.license!.id);
  const onLicense =
    (title: string, text: string, button: string, vars: (req: Request) => Record<string, unknown> = () => ({})) =>
    (req: Request, res: Response): Confirmation => {
      const all = { license: licenseName(req, req.license!), ...vars(req) };
      return { title: req.t(title, all), text: req.t(text, all), button: req.t(button), back: licensePage(req, res) };
    };
  const onDevice = (title: string, text: string, button: string) =>
    onLicense(title, text, button, (req) => ({ machine: machineName(req.device!) }));
  const assignedEmail = async (req: Request) => {
    const accountId = idParam(req, 'accountId');
    orNotFound(await licenseUsers.find(ctx.db, req.license!.id, accountId));
    return orNotFound(await accounts.findById(ctx.db, accountId)).email;
  };

  /** Voiding the URL's code (`:voucherId`) of an order (and of a batch, when given): 404 for any other. */
  const voidQuestion = async (req: Request, orderId: number, orderRef: string, back: string, batchId?: number) => {
    const v = await vouchers.findInOrder(ctx.db, orderId, idParam(req, 'voucherId'), ctx.clock.now());
    if (!v || (batchId !== undefined && v.batchId !== batchId)) throw notFound();
    return question(req, 'confirm.void', { code: v.hint, order: orderRef }, req.t('vouchers.void'), back);
  };

  return {
    // --- licenses and devices (both areas) ---
    disableLicense: confirmFirst(
      onLicense('confirm.disable.title', 'confirm.disable.text', 'admin.licenses.disable', (req) => ({
        machines: req.license!.timesActivated,
      })),
    ),
    resetLicense: confirmFirst(
      onLicense('confirm.reset.title', 'confirm.reset.text', 'admin.licenses.reset', (req) => ({
        machines: req.license!.timesActivated,
      })),
    ),
    resetDevice: confirmFirst(
      onDevice('confirm.resetDevice.title', 'confirm.resetDevice.text', 'confirm.resetDevice.button'),
    ),
    /** Releasing an idle device from a usage page: the device reset, "Cancel" back to that usage page. */
    releaseDevice: confirmFirst((req, res) => {
      const vars = { license: licenseName(req, req.license!), machine: machineName(req.device!) };
      return question(
        req,
        'usage.release',
        vars,
        req.t('usage.release.button'),
        res.locals.paths.usage(req.baseUrl === '/admin' ? 'admin' : 'portal').license(req.license!.id),
      );
    }),
    blacklistDevice: confirmFirst(
      onDevice('confirm.blacklist.title', 'confirm.blacklist.text', 'confirm.blacklist.button'),
    ),
    unassignUser: confirmFirst(async (req, res) => {
      const email = await assignedEmail(req);
      return onLicense('confirm.unassign.title', 'confirm.unassign.text', 'admin.licenses.unassign', () => ({ email }))(
        req,
        res,
      );
    }),
    withdrawInvitation: confirmFirst(async (req, res) => {
      const id = idParam(req, 'invitationId');
      const invited = (await licenseUsers.invitedToLicense(ctx.db, req.license!.id, ctx.clock.now())).find(
        (i) => i.invitationId === id,
      );
      const email = orNotFound(invited).email;
      return onLicense('confirm.withdraw.title', 'confirm.withdraw.text', 'ownership.list.withdraw', () => ({ email }))(
        req,
        res,
      );
    }),

    // --- orders (User Portal) ---
    voidVoucher: confirmFirst((req, res) =>
      voidQuestion(req, req.order!.id, req.order!.orderRef, res.locals.paths.portalOrderVouchers(req.order!.id)),
    ),
    removeManager: confirmFirst(async (req, res) => {
      const accountId = idParam(req, 'accountId');
      // The managers below the signed-in one (an admin: all), as removeFromOrder allows.
      if (!(await managersBelow(ctx.db, req.user!, req.order!.id)).has(accountId)) throw notFound();
      const vars = { email: orNotFound(await accounts.findById(ctx.db, accountId)).email, order: req.order!.orderRef };
      return question(
        req,
        'confirm.removeManager',
        vars,
        req.t('admin.managers.unassign'),
        res.locals.paths.portalOrder(req.order!.id),
      );
    }),

    // --- the console ---
    /** One code on the console's batch page (the batch's own codes only: else 404). */
    voidBatchVoucher: confirmFirst((req, res) => {
      const batch = req.voucherBatch!;
      return voidQuestion(req, batch.orderId, batch.orderRef, res.locals.paths.adminVoucherBatch(batch.id), batch.id);
    }),
    /** Every code of a batch not redeemed or voided yet, and whose quota gets the units back. */
    voidBatchRest: confirmFirst((req, res) => {
      const batch = req.voucherBatch!;
      const vars = {
        count: batch.counts.open + batch.counts.expired,
        batch: batch.id,
        order: batch.orderRef,
        creator: batch.createdByName ?? '—',
      };
      return {
        title: req.t('consoleVouchers.confirmRest.title', vars),
        text: req.t(
          batch.quotaCounted ? 'consoleVouchers.confirmRest.quota' : 'consoleVouchers.confirmRest.text',
          vars,
        ),
        button: req.t('consoleVouchers.voidRest'),
        back: res.locals.paths.adminVoucherBatch(batch.id),
      };
    }),
    unassignManagerOrder: confirmFirst(async (req, res) => {
      const orderId = idParam(req, 'orderId');
      const assigned = (await managers.ordersOf(ctx.db, req.account!.id)).find((o) => o.id === orderId);
      const vars = { email: req.account!.email, order: orNotFound(assigned).orderRef };
      return question(
        req,
        'confirm.removeManager',
        vars,
        req.t('admin.managers.unassign'),
        res.locals.paths.adminManager(req.account!.id),
      );
    }),
    removeQuota: confirmFirst(async (req, res) => {
      const productId = idParam(req, 'productId');
      const quota = orNotFound(
        (await managers.quotasOf(ctx.db, req.account!.id)).find((q) => q.productId === productId),
      );
      const vars = { email: req.account!.email, product: quota.productName };
      return question(
        req,
        'confirm.quota',
        vars,
        req.t('actions.delete'),
        res.locals.paths.adminManager(req.account!.id),
      );
    }),
    deleteProduct: confirmFirst((req, res) =>
      deletion(req, req.product!.name, res.locals.paths.adminProduct(req.product!.id)),
    ),
    deleteFeature: confirmFirst(async (req, res) => {
      const productId = idParam(req);
      const feature = orNotFound(await products.findFeature(ctx.db, productId, idParam(req, 'featureId')));
      return deletion(req, `${feature.name} (${feature.code})`, res.locals.paths.adminProduct(productId));
    }),
    deleteWebhook: confirmFirst((req, res) =>
      deletion(
        req,
        req.webhookEndpoint!.url,
        res.locals.paths.webhooks(req.baseUrl === '/admin' ? 'admin' : 'portal').show(req.webhookEndpoint!.id),
      ),
    ),
    deleteCustomer: confirmFirst((req, res) =>
      deletion(req, req.customer!.name, res.locals.paths.adminCustomer(req.customer!.id)),
    ),
    deleteOrder: confirmFirst((req, res) =>
      deletion(req, req.order!.orderRef, res.locals.paths.adminOrder(req.order!.id)),
    ),
    deleteRole: confirmFirst((req, res) => deletion(req, req.role!.name, res.locals.paths.adminRoles())),
    deleteBranding: confirmFirst(async (req, res) => {
      const branding = orNotFound(await brandings.findById(ctx.db, idParam(req)));
      return deletion(req, branding.name, res.locals.paths.adminBranding(branding.id));
    }),
    removeHost: confirmFirst(async (req, res) => {
      const brandingId = idParam(req);
      const host = orNotFound(await brandings.findHost(ctx.db, brandingId, idParam(req, 'hostId')));
      return {
        title: req.t('confirm.host.title', { hostname: host.hostname }),
        text: req.t('confirm.host.text', { hostname: host.hostname }),
        button: req.t('actions.delete'),
        back: res.locals.paths.adminBranding(brandingId),
      };
    }),
    removeLogo: confirmFirst(async (req, res) => {
      const branding = orNotFound(await brandings.findById(ctx.db, idParam(req)));
      return {
        title: req.t('confirm.logo.title', { name: branding.name }),
        text: req.t('confirm.logo.text', { name: branding.name }),
        button: req.t('admin.brandings.removeLogo'),
        back: res.locals.paths.adminBranding(branding.id),
      };
    }),
    retireKey: confirmFirst(async (req, res) => {
      const key = orNotFound(await signingKeys.find(ctx.db, String(req.params.kid ?? '')));
      return {
        title: req.t('confirm.retireKey.title', { kid: key.kid }),
        text: req.t('confirm.retireKey.text', { kid: key.kid }),
        button: req.t('admin.keys.retire'),
        back: res.locals.paths.adminKeys(),
      };
    }),
  };
}

/** A console deletion: "Delete X? X is deleted for good; this cannot be undone." */
function deletion(req: Request, name: string, back: string): Confirmation {
  return {
    title: req.t('confirm.delete.title', { name }),
    text: req.t('confirm.delete.text', { name }),
    button: req.t('actions.delete'),
    back,
  };
}
