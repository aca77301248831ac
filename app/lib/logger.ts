import pino, { type Logger } from 'pino';

export type { Logger };

/** Paths whose values never reach a log line. */
export const REDACT_PATHS = [
  'req.headers.cookie',
  'req.headers.authorization',
  'req.headers["x-csrf-token"]',
  'res.headers["set-cookie"]',
  '*.password',
  '*.password_hash',
  '*.passwordHash',
  '*.token',
  '*.secret',
  '*.privateKey',
];

/**
 * URL path segments that are credentials themselves are masked in logs: every one-time link
 * (password reset, first-admin setup, and the offline and air-gap download links, which a host
 * bound to one portal serves at /download/… too).
 */
export function redactUrl(url: string): string {
  return url
    .replace(/(\/(?:password\/reset|setup|download)\/)[^/?#]+/, '$1[REDACTED]')
    .replace(/([?&](?:token|code|key|_csrf)=)[^&#]+/gi, '$1[REDACTED]');
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '[REDACTED]' } }, destination);
}
