import crypto from 'node:crypto';

/** A URL-safe random token with 256 bits of entropy (reset links, setup links). */
export function randomToken(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/** Tokens are stored only as their SHA-256 so a database dump cannot be replayed. */
export function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * Paths whose last segment is a one-time token (the link is the credential): their pages are never
 * cached (middleware/no-store.ts) and the token never reaches a log line (lib/logger.ts). The offline
 * and air-gap download links (…/download/<token>) are redacted too.
 */
export const ONE_TIME_LINK_PATHS = ['/password/reset/', '/login/unlock/', '/setup/', '/invitations/'] as const;

/**
 * Every path whose last segment is a credential: the one-time links and the one-click unsubscribe
 * link (services/unsubscribe.ts: not single-use, but it names the address and acts for it). Never
 * cached, never logged.
 */
export const CREDENTIAL_LINK_PATHS = [...ONE_TIME_LINK_PATHS, '/unsubscribe/'] as const;
