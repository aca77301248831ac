import type { Knex } from 'knex';
import * as apiTokens from '../models/api-tokens.ts';
import * as accounts from '../models/accounts.ts';
import type { Account } from '../models/accounts.ts';
import { displayPrefix, generateApiToken, hashApiToken, parseApiToken, type TokenKind } from '../crypto/api-tokens.ts';
import { MAX_TOKEN_DAYS, PERSONAL_SCOPES, type ApiScope } from '../policies/api-scopes.ts';
import { permissionsFor } from '../policies/portal.ts';
import { AppError, ValidationError, notFound } from '../lib/errors.ts';
import { auditedChange } from './changes.ts';
import type { Actor, ServiceDeps } from './context.ts';

/**
 * Management API credentials (docs/api.md, "Tokens"): made here, shown once (the caller gets the
 * token, nothing stores it readable — not the audit row, not a log line), revoked here, and checked
 * for every API request by authenticateApiToken.
 */

export interface TokenInput {
  name: string;
  scopes: ApiScope[];
  /** Days from now; 1 … MAX_TOKEN_DAYS. */
  days: number;
}

export interface CreatedToken {
  id: number;
  /** The token itself: shown once, then only its hash exists. */
  token: string;
}

async function create(
  deps: ServiceDeps,
  actor: Actor,
  kind: TokenKind,
  ownerAccountId: number | null,
  input: TokenInput,
): Promise<CreatedToken> {
  if (!Number.isInteger(input.days) || input.days < 1 || input.days > MAX_TOKEN_DAYS)
    throw new ValidationError({ days: 'api.tokens.daysRange' });
  if (input.scopes.length === 0) throw new ValidationError({ scopes: 'api.tokens.scopesRequired' });
  const token = generateApiToken(kind);
  return auditedChange(deps, actor, async (trx, now) => {
    const id = await apiTokens.insert(
      trx,
      {
        kind,
        name: input.name,
        tokenHash: hashApiToken(token),
        displayPrefix: displayPrefix(token),
        scopes: [...new Set(input.scopes)],
        ownerAccountId,
        createdByAccountId: actor.accountId,
        expiresAt: new Date(now.getTime() + input.days * 86_400_000),
      },
      now,
    );
    const row = (await apiTokens.findById(trx, id))!;
    return {
      result: { id, token },
      audit: { action: 'api_token.created', objectType: 'api_token', objectId: id, after: apiTokens.auditView(row) },
    };
  });
}

/** A vendor API client (console): any scopes. */
export function createApiClient(deps: ServiceDeps, actor: Actor, input: TokenInput): Promise<CreatedToken> {
  return create(deps, actor, 'client', null, input);
}

/** Whether a manager may hold and use personal access tokens now. */
export async function mayUsePersonalTokens(db: Knex, account: Account): Promise<boolean> {
  return (
    account.role === 'manager' && !account.disabled && (await permissionsFor(db, account)).has('manage_api_clients')
  );
}

/** A manager's personal access token: only the non-vendor scopes, and only with `manage_api_clients`. */
export async function createPersonalToken(
  deps: ServiceDeps,
  actor: Actor,
  manager: Account,
  input: TokenInput,
): Promise<CreatedToken> {
  if (!(await mayUsePersonalTokens(deps.db, manager))) throw AppError.forbidden();
  const outside = input.scopes.filter((s) => !PERSONAL_SCOPES.includes(s));
  if (outside.length) throw new ValidationError({ scopes: 'api.tokens.scopeNotAllowed' });
  return create(deps, actor, 'personal', manager.id, input);
}

/**
 * Revokes a token (irreversible). `ownerAccountId`: the manager whose own token it must be (portal);
 * undefined for the console, which revokes API clients.
 */
export async function revokeToken(
  deps: ServiceDeps,
  actor: Actor,
  id: number,
  owner: { kind: TokenKind; ownerAccountId?: number },
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await apiTokens.findById(trx, id);
    if (!before || before.kind !== owner.kind) throw notFound();
    if (owner.ownerAccountId !== undefined && before.ownerAccountId !== owner.ownerAccountId) throw notFound();
    if (!(await apiTokens.revoke(trx, id, actor.accountId, now))) throw AppError.conflict('api.tokens.alreadyRevoked');
    return {
      result: undefined,
      audit: {
        action: 'api_token.revoked',
        objectType: 'api_token',
        objectId: id,
        before: apiTokens.auditView(before),
        after: apiTokens.auditView((await apiTokens.findById(trx, id))!),
      },
    };
  });
}

/** Who an API request acts as (app/api/manage/auth.ts puts it on the request). */
export interface ApiPrincipal {
  token: apiTokens.ApiToken;
  /**
   * Whose order scope and permissions apply: the manager for a personal token; for an API client the
   * vendor, i.e. an administrator's scope (every order, every permission).
   */
  account: Account;
  /** The manager of a personal token (services that act "as a manager" take it). */
  manager: Account | null;
  actor: Actor;
}

/**
 * The account an API client acts as: the vendor, with an administrator's scope. It is no row (id 0 is
 * never stored: audit rows take the actor's null accountId, and admins' paths use no account id).
 */
function vendorAccount(name: string): Account {
  const epoch = new Date(0);
  return {
    id: 0,
    email: '',
    name,
    passwordHash: null,
    language: 'en',
    role: 'admin',
    mustChangePassword: false,
    disabled: false,
    totpSecret: null,
    totpEnabledAt: null,
    lastLoginAt: null,
    directoryDn: null,
    createdAt: epoch,
    updatedAt: epoch,
  };
}

/** The 401 answers: one shape, a stable code (docs/api.md, "Errors"). */
export type TokenRefusal = 'token_missing' | 'token_invalid' | 'token_revoked' | 'token_expired';

/**
 * An API actor's label as audit rows show it: the token's kind, name and display prefix — in lower
 * case, as the console's actor filter matches labels (e-mail addresses, `system`), so that filtering
 * by `api client "shop"` or `personal token` finds them.
 */
export function tokenLabel(token: apiTokens.ApiToken, owner: Account | null): string {
  const label =
    token.kind === 'client'
      ? `api client "${token.name}" (${token.displayPrefix}…)`
      : `personal token "${token.name}" of ${owner?.email ?? '?'} (${token.displayPrefix}…)`;
  return label.toLowerCase();
}

/**
 * Checks a bearer token: shape and checksum first (no lookup for a typo), then the hash. An unknown
 * token and a malformed one get the same answer; a revoked or expired one says so (its holder has the
 * token). A personal token stops working while its manager is disabled or lacks `manage_api_clients`
 * (answered like a revoked one: the holder must ask the vendor).
 */
export async function authenticateApiToken(
  deps: ServiceDeps,
  token: string,
  request: { ip: string | null; requestId: string | null },
): Promise<ApiPrincipal | TokenRefusal> {
  if (!parseApiToken(token)) return 'token_invalid';
  const row = await apiTokens.findByHash(deps.db, hashApiToken(token));
  if (!row) return 'token_invalid';
  const now = deps.clock.now();
  if (row.revokedAt) return 'token_revoked';
  if (row.expiresAt.getTime() <= now.getTime()) return 'token_expired';
  let manager: Account | null = null;
  if (row.kind === 'personal') {
    manager = (row.ownerAccountId && (await accounts.findById(deps.db, row.ownerAccountId))) || null;
    if (!manager || !(await mayUsePersonalTokens(deps.db, manager))) return 'token_revoked';
  }
  await apiTokens.touch(deps.db, row.id, now);
  return {
    token: row,
    account: manager ?? vendorAccount(row.name),
    manager,
    actor: {
      accountId: manager?.id ?? null,
      label: tokenLabel(row, manager),
      ip: request.ip,
      requestId: request.requestId,
      sessionId: null,
    },
  };
}
