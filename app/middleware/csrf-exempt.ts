import type { Request } from 'express';

const UNSUBSCRIBE_PATH = /^\/unsubscribe\/[^/]+$/;

/**
 * The one request exempt from the CSRF token and the Origin check: `POST /unsubscribe/:token`.
 * RFC 8058 mail clients unsubscribe by POSTing `List-Unsubscribe=One-Click` to the link of the
 * `List-Unsubscribe` header, with no cookie, no session and no token of ours — and from wherever
 * they run. That is safe here because:
 * - the signed token in the URL is the credential (an HMAC of the address and kind with a key only
 *   this installation holds): a forged request must already know the link, which is exactly what
 *   lets anyone who has it unsubscribe — what the link is for;
 * - the action can only turn one kind of mail off for the token's own address (never on, never
 *   anything else) and is idempotent: replaying it changes nothing;
 * - it reads no session: a cross-site request borrows nothing of the visitor's.
 * The path is matched exactly (method and one segment), so nothing else slips through.
 */
export const isOneClickUnsubscribe = (req: Pick<Request, 'method' | 'path'>): boolean =>
  req.method === 'POST' && UNSUBSCRIBE_PATH.test(req.path);
