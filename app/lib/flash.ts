import type { Request } from 'express';

/** A message shown once on the next page (after a 303 redirect). */
export function flash(req: Request, type: 'success' | 'error' | 'info', message: string): void {
  req.session.flash = [...(req.session.flash ?? []), { type, message }];
}

export function takeFlash(req: Request) {
  const messages = req.session?.flash ?? [];
  if (req.session?.flash) delete req.session.flash;
  return messages;
}
