import type { NextFunction, Request, Response } from 'express';
import type session from 'express-session';

/** The session's contents as express-session compares them: everything but the cookie. */
function contentsOf(sess: session.Session | undefined): string {
  if (!sess) return '';
  return JSON.stringify(sess, function (this: unknown, key, value) {
    return this === sess && key === 'cookie' ? undefined : value;
  });
}

/**
 * A redirect leaves only once the session it depends on is stored. express-session writes a changed
 * session when the response ends, but sends the status line and headers before the store has answered,
 * and a browser follows a 303 as soon as it has the headers: the next request (the page after a login,
 * the login page after a logout with its flash message and the identity provider's sign-out link) could
 * reach the server before the write and find no session, or the old one. On one SQLite file the write
 * nearly always wins; on a MySQL/MariaDB pool, under load, it sometimes loses. So a redirect whose
 * session changed (or was regenerated) in this request saves it first, then redirects.
 *
 * The explicit save makes express-session's own save at the end of the response redundant: the session
 * it would store is the one just stored, unless something changed it after the redirect (then it is
 * stored again, as before). That keeps a late second write from overwriting what the next request did.
 */
export function saveSessionBeforeRedirect() {
  return (req: Request, res: Response, next: NextFunction) => {
    const startId = req.sessionID;
    const startContents = contentsOf(req.session);
    const redirect = res.redirect.bind(res) as (...args: unknown[]) => void;
    res.redirect = ((...args: unknown[]) => {
      const sess = req.session;
      if (!sess || (req.sessionID === startId && contentsOf(sess) === startContents)) return redirect(...args);
      sess.save((err) => {
        if (err) return next(err);
        const stored = contentsOf(sess);
        const save = sess.save;
        sess.save = function (this: session.Session, callback?: (err?: unknown) => void) {
          if (contentsOf(this) !== stored) return save.call(this, callback);
          callback?.();
          return this;
        };
        redirect(...args);
      });
    }) as Response['redirect'];
    next();
  };
}
