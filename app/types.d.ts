import type { Account } from './models/accounts.ts';
import type { Actor } from './services/context.ts';
import type { TFunction } from 'i18next';
import type { Branding, BrandingRecord } from './models/brandings.ts';
import type { Product } from './models/products.ts';
import type { Policy } from './models/policies.ts';
import type { Customer } from './models/customers.ts';
import type { Permission } from './policies/permissions.ts';
import type { Role } from './models/roles.ts';
import type { Order } from './models/orders.ts';
import type { License } from './models/licenses.ts';
import type { Device } from './models/devices.ts';
import type { ApiPrincipal } from './services/api-tokens.ts';
import type { Endpoint } from './models/webhooks.ts';
import type { BatchSummary, VoucherWithBatch } from './models/vouchers.ts';

declare global {
  namespace Express {
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type
    interface User extends Account {}
    interface Request {
      id: string | number | object;
      actor: Actor;
      t: TFunction;
      lang: string;
      branding: Branding;
      /** The portal this request's host is bound to (served at `/`), or null for path-based routing. */
      boundPortal: string | null;
      /** The User Portal permissions of the signed-in account (set on portal routes). */
      permissions: Set<Permission>;
      /** What the route's loaders resolved through the account's scope (controllers/portal/context.ts). */
      order?: Order;
      license?: License;
      device?: Device;
      /** The console's loaders (controllers/admin/loaders.ts). */
      product?: Product;
      policy?: Policy;
      customer?: Customer;
      editedBranding?: BrandingRecord;
      /** A manager or an end user, by the route. */
      account?: Account;
      /** The Management API's principal: the bearer token and whom it acts as (app/api/manage/auth.ts). */
      api?: ApiPrincipal;
      /** The role a console route addresses (`:id`). */
      role?: Role;
      /** The webhook endpoint a route addresses, one of the signed-in owner's (controllers/webhooks.ts). */
      webhookEndpoint?: Endpoint;
      /** A batch of redeemable codes a route addresses, with its order and counts (console and Management API loaders). */
      voucherBatch?: BatchSummary;
      /** A code with its batch (the Management API's loader checks the order). */
      voucher?: VoucherWithBatch;
    }
  }
}

declare module 'express-session' {
  interface SessionData {
    flash?: { type: 'success' | 'error' | 'info'; message: string }[];
    lang?: string;
    returnTo?: string;
    csrfToken?: string;
  }
}
