import type { Knex } from 'knex';
import type { TokenKind } from '../crypto/api-tokens.ts';
import { isApiScope, type ApiScope } from '../policies/api-scopes.ts';
import { affected, parseJson, toDate } from './normalise.ts';

/** A Management API credential: an API client of the vendor or a manager's personal access token. */
export interface ApiToken {
  id: number;
  kind: TokenKind;
  name: string;
  displayPrefix: string;
  scopes: ApiScope[];
  ownerAccountId: number | null;
  createdByAccountId: number | null;
  expiresAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  createdAt: Date;
}

export interface NewApiToken {
  kind: TokenKind;
  name: string;
  tokenHash: string;
  displayPrefix: string;
  scopes: ApiScope[];
  ownerAccountId: number | null;
  createdByAccountId: number | null;
  expiresAt: Date;
}

function fromRow(r: Record<string, unknown>): ApiToken {
  return {
    id: Number(r.id),
    kind: r.kind as TokenKind,
    name: String(r.name),
    displayPrefix: String(r.display_prefix),
    scopes: (parseJson<string[]>(r.scopes) ?? []).filter(isApiScope),
    ownerAccountId: r.owner_account_id == null ? null : Number(r.owner_account_id),
    createdByAccountId: r.created_by_account_id == null ? null : Number(r.created_by_account_id),
    expiresAt: toDate(r.expires_at)!,
    lastUsedAt: toDate(r.last_used_at),
    revokedAt: toDate(r.revoked_at),
    createdAt: toDate(r.created_at)!,
  };
}

export async function insert(db: Knex, t: NewApiToken, now: Date): Promise<number> {
  const [id] = await db('api_tokens').insert({
    kind: t.kind,
    name: t.name,
    token_hash: t.tokenHash,
    display_prefix: t.displayPrefix,
    scopes: JSON.stringify(t.scopes),
    owner_account_id: t.ownerAccountId,
    created_by_account_id: t.createdByAccountId,
    expires_at: t.expiresAt,
    created_at: now,
  });
  return Number(id);
}

export async function findByHash(db: Knex, tokenHash: string): Promise<ApiToken | undefined> {
  const row = await db('api_tokens').where({ token_hash: tokenHash }).first();
  return row ? fromRow(row) : undefined;
}

export async function findById(db: Knex, id: number): Promise<ApiToken | undefined> {
  const row = await db('api_tokens').where({ id }).first();
  return row ? fromRow(row) : undefined;
}

/** API clients (owner null) or one manager's personal tokens, newest first. */
export async function list(
  db: Knex,
  f: { kind: TokenKind; ownerAccountId?: number },
  limit = 500,
): Promise<ApiToken[]> {
  const q = db('api_tokens').where({ kind: f.kind });
  if (f.ownerAccountId !== undefined) q.where({ owner_account_id: f.ownerAccountId });
  return (await q.orderBy('id', 'desc').limit(limit)).map(fromRow);
}

/** Marks a token revoked once (a guarded update); false when it was already. */
export async function revoke(db: Knex, id: number, byAccountId: number | null, now: Date): Promise<boolean> {
  return (
    affected(
      await db('api_tokens')
        .where({ id })
        .whereNull('revoked_at')
        .update({ revoked_at: now, revoked_by_account_id: byAccountId }),
    ) > 0
  );
}

/** Notes a use at most once a minute: no write per request. */
export async function touch(db: Knex, id: number, now: Date): Promise<void> {
  await db('api_tokens')
    .where({ id })
    .where((w) => w.whereNull('last_used_at').orWhere('last_used_at', '<', new Date(now.getTime() - 60_000)))
    .update({ last_used_at: now });
}

/** What an audit row keeps of a token: never its hash. */
export function auditView(t: ApiToken) {
  return {
    kind: t.kind,
    name: t.name,
    prefix: t.displayPrefix,
    scopes: t.scopes,
    owner_account_id: t.ownerAccountId,
    expires_at: t.expiresAt.toISOString(),
    revoked_at: t.revokedAt?.toISOString() ?? null,
  };
}
