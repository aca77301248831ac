import type { NextFunction, Request, Response } from 'express';
import type { SessionClient } from '../models/sessions.ts';

/**
 * Remembers, once per signed-in session, where it was used from (address, browser), for the account
 * page's list of sessions. Written on the first request after the login (the session id changes at
 * login, so a new session starts with no client); when the login happened is its `loginAt`.
 */
export function sessionClient() {
  return (req: Request, _res: Response, next: NextFunction) => {
    const session = req.session as (typeof req.session & { client?: SessionClient }) | undefined;
    if (req.user && session && !session.client) {
      session.client = { ip: req.ip ?? null, agent: String(req.headers['user-agent'] ?? '').slice(0, 200) || null };
    }
    next();
  };
}
