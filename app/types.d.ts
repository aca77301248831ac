import type { Account } from './models/accounts.ts';
import type { Actor } from './services/context.ts';
import type { TFunction } from 'i18next';
import type { Branding } from './models/brandings.ts';
import type { Permission } from './policies/permissions.ts';

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

export {};
