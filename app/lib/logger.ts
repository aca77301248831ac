import pino, { type Logger } from 'pino';
import { CREDENTIAL_LINK_PATHS } from './tokens.ts';

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

/** Credential links (lib/tokens.ts: one-time links, unsubscribe links) and the offline and air-gap download links (served at /download/… on a bound host too). */
const TOKEN_IN_PATH = new RegExp(
  `(${[...CREDENTIAL_LINK_PATHS, '/download/'].map((p) => p.replace(/[/]/g, '\\/')).join('|')})[^/?#]+`,
);

/** URL path segments that are credentials themselves are masked in logs. */
export function redactUrl(url: string): string {
  return url.replace(TOKEN_IN_PATH, '$1[REDACTED]').replace(/([?&](?:token|code|key|_csrf)=)[^&#]+/gi, '$1[REDACTED]');
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '[REDACTED]' } }, destination);
}
