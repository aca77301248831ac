import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { z } from 'zod';
import { parseAllowList, type MetricsAccess } from '../app/lib/metrics-access.ts';
import { DEFAULT_TIMEOUT_SECONDS, DEFAULT_USER_FILTER, settingsProblems, type LdapSettings } from '../app/lib/ldap.ts';

export const SUPPORTED_LANGUAGES = ['en', 'de', 'fr', 'es'] as const;
export type Language = (typeof SUPPORTED_LANGUAGES)[number];

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const port = z.coerce
  .number({ message: 'must be a whole number' })
  .int({ message: 'must be a whole number' })
  .min(0, { message: 'must be between 0 and 65535' })
  .max(65535, { message: 'must be between 0 and 65535' });

/** Every setting Portico reads from the environment, with a default that works out of the box. */
const schema = z.object({
  NODE_ENV: z
    .enum(['development', 'production', 'test'], { message: 'must be development, production or test' })
    .default('development'),
  PORT: port.default(3000),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATA_DIR: z.string().min(1).default('data'),
  DATABASE_URL: z
    .string()
    .regex(/^(sqlite:|mysql:\/\/|mariadb:\/\/)/, {
      message: 'must start with sqlite: or mysql:// (for example mysql://user:pass@127.0.0.1:3306/portico)',
    })
    .optional(),
  BASE_URL: z.url({ message: 'must be an absolute http(s) URL such as https://licenses.example.com' }).optional(),
  SESSION_SECRET: z.string().min(32, { message: 'must be at least 32 characters long' }).optional(),
  SESSION_MAX_AGE_MINUTES: z.coerce
    .number({ message: 'must be a number' })
    .int()
    .min(5)
    .max(60 * 24 * 30)
    .default(480),
  SESSION_ABSOLUTE_HOURS: z.coerce
    .number({ message: 'must be a whole number of hours' })
    .int({ message: 'must be a whole number of hours' })
    .min(1, { message: 'must be between 1 and 720' })
    .max(720, { message: 'must be between 1 and 720' })
    .default(12),
  COOKIE_SECURE: bool.optional(),
  TRUST_PROXY: z.string().default('false'),
  SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\//, { message: 'must start with smtp:// or smtps://' })
    .optional(),
  MAIL_FROM: z.string().min(3).default('Portico <no-reply@localhost>'),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      message: 'must be one of fatal, error, warn, info, debug, trace, silent',
    })
    .default('info'),
  DEFAULT_LANGUAGE: z
    .enum(SUPPORTED_LANGUAGES, { message: `must be one of ${SUPPORTED_LANGUAGES.join(', ')}` })
    .default('en'),
  OFFLINE_UPLOAD_SLOTS: z.coerce
    .number({ message: 'must be a whole number' })
    .int({ message: 'must be a whole number' })
    .min(1, { message: 'must be between 1 and 1000' })
    .max(1000, { message: 'must be between 1 and 1000' })
    .default(8),
  WORKERS: z.coerce
    .number({ message: 'must be a whole number' })
    .int({ message: 'must be a whole number' })
    .min(1, { message: 'must be between 1 and 256' })
    .max(256, { message: 'must be between 1 and 256' })
    .optional(),
  // Prometheus metrics at /metrics (docs/operations.md, "Metrics"): off unless one of these is set.
  METRICS_TOKEN: z
    .string()
    .min(32, { message: 'must be at least 32 characters long (for example: openssl rand -hex 32)' })
    .regex(/^[\x21-\x7e]+$/, { message: 'must be printable ASCII without spaces' })
    .optional(),
  METRICS_ALLOW: z.string().optional(),
  QUEUE_RUNNER: z.enum(['on', 'off'], { message: 'must be on or off' }).default('on'),
  // LDAP for the vendor's staff (docs/operations.md): set LDAP_URL and the console's LDAP settings are read-only.
  LDAP_URL: z.string().optional(),
  LDAP_STARTTLS: bool.optional(),
  LDAP_ALLOW_PLAIN: bool.default(false),
  LDAP_CA_FILE: z.string().optional(),
  LDAP_BIND_DN: z.string().optional(),
  LDAP_BIND_PASSWORD: z.string().optional(),
  LDAP_USER_BASE: z.string().optional(),
  LDAP_USER_FILTER: z.string().default(DEFAULT_USER_FILTER),
  LDAP_ADMIN_GROUP: z.string().optional(),
  LDAP_TIMEOUT_SECONDS: z.coerce
    .number({ message: 'must be a whole number' })
    .int({ message: 'must be a whole number' })
    .min(1, { message: 'must be between 1 and 60' })
    .max(60, { message: 'must be between 1 and 60' })
    .default(DEFAULT_TIMEOUT_SECONDS),
});

export interface Config {
  env: 'development' | 'production' | 'test';
  port: number;
  host: string;
  dataDir: string;
  databaseUrl: string;
  baseUrl: string;
  sessionSecret?: string;
  sessionMaxAgeMs: number;
  /** How long a login lasts at most, however active the session (SESSION_ABSOLUTE_HOURS). */
  sessionAbsoluteMs: number;
  cookieSecure: boolean;
  trustProxy: boolean | number | string;
  smtpUrl?: string;
  mailFrom: string;
  logLevel: string;
  defaultLanguage: Language;
  /** Anonymous offline uploads one process reads at once (the others get 503 + Retry-After). */
  offlineUploadSlots: number;
  /**
   * Server processes answering requests (WORKERS, default: one per available core). Above 1, server.ts
   * forks that many cluster workers sharing the port; 1 serves in the process itself.
   */
  workers: number;
  /** Whether this process runs the job queue's runner (QUEUE_RUNNER=on|off, default on; docs/operations.md). */
  queueRunner: boolean;
  /**
   * Who may read /metrics: a bearer token (METRICS_TOKEN) and/or an address allow-list (METRICS_ALLOW);
   * null (neither set, the default): /metrics answers 404.
   */
  metrics: MetricsAccess | null;
  /** Staff login by LDAP from the environment (LDAP_URL and friends), which wins over the console's; null when unset. */
  ldap: LdapSettings | null;
}

export class ConfigError extends Error {}

function parseTrustProxy(value: string): boolean | number | string {
  if (value === 'true') return true;
  if (value === 'false' || value === '') return false;
  if (/^\d+$/.test(value)) return Number(value);
  return value; // an address list such as "loopback, 10.0.0.0/8", handed to Express as is
}

/** Reads the configuration; a bad value throws a ConfigError whose message is one line naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0]);
    throw new ConfigError(`Invalid configuration: ${name} ${issue.message} (got ${JSON.stringify(input[name] ?? '')})`);
  }
  const c = parsed.data;
  const dataDir = path.resolve(c.DATA_DIR);
  const baseUrl = (c.BASE_URL ?? `http://localhost:${c.PORT || 3000}`).replace(/\/+$/, '');
  return {
    env: c.NODE_ENV,
    port: c.PORT,
    host: c.HOST,
    dataDir,
    databaseUrl: c.DATABASE_URL ?? `sqlite:${path.join(dataDir, 'portico.sqlite')}`,
    baseUrl,
    sessionSecret: c.SESSION_SECRET,
    sessionMaxAgeMs: c.SESSION_MAX_AGE_MINUTES * 60_000,
    sessionAbsoluteMs: c.SESSION_ABSOLUTE_HOURS * 3_600_000,
    cookieSecure: c.COOKIE_SECURE ?? baseUrl.startsWith('https://'),
    trustProxy: parseTrustProxy(c.TRUST_PROXY),
    smtpUrl: c.SMTP_URL,
    mailFrom: c.MAIL_FROM,
    logLevel: c.LOG_LEVEL,
    defaultLanguage: c.DEFAULT_LANGUAGE,
    offlineUploadSlots: c.OFFLINE_UPLOAD_SLOTS,
    workers: c.WORKERS ?? os.availableParallelism(),
    queueRunner: c.QUEUE_RUNNER === 'on',
    metrics: metricsFromEnvironment(c),
    ldap: ldapFromEnvironment(c),
  };
}

function metricsFromEnvironment(c: z.infer<typeof schema>): MetricsAccess | null {
  let allow: string[] = [];
  if (c.METRICS_ALLOW !== undefined)
    try {
      allow = parseAllowList(c.METRICS_ALLOW);
    } catch (err) {
      throw new ConfigError(`Invalid configuration: METRICS_ALLOW ${(err as Error).message}`);
    }
  if (!c.METRICS_TOKEN && !allow.length) return null;
  return { token: c.METRICS_TOKEN ?? null, allow };
}

const LDAP_ENV_NAMES: Record<string, string> = {
  url: 'LDAP_URL',
  startTls: 'LDAP_STARTTLS',
  caPem: 'LDAP_CA_FILE',
  bindDn: 'LDAP_BIND_DN',
  bindPassword: 'LDAP_BIND_PASSWORD',
  userBase: 'LDAP_USER_BASE',
  userFilter: 'LDAP_USER_FILTER',
  adminGroup: 'LDAP_ADMIN_GROUP',
};

function ldapFromEnvironment(c: z.infer<typeof schema>): LdapSettings | null {
  if (!c.LDAP_URL) return null;
  let caPem: string | null = null;
  if (c.LDAP_CA_FILE)
    try {
      caPem = fs.readFileSync(c.LDAP_CA_FILE, 'utf8');
    } catch (err) {
      throw new ConfigError(`Invalid configuration: LDAP_CA_FILE cannot be read (${(err as Error).message})`);
    }
  const settings: LdapSettings = {
    url: c.LDAP_URL,
    startTls: c.LDAP_STARTTLS ?? c.LDAP_URL.startsWith('ldap://'),
    allowPlain: c.LDAP_ALLOW_PLAIN,
    caPem,
    bindDn: c.LDAP_BIND_DN ?? '',
    bindPassword: c.LDAP_BIND_PASSWORD ?? '',
    userBase: c.LDAP_USER_BASE ?? '',
    userFilter: c.LDAP_USER_FILTER,
    adminGroup: c.LDAP_ADMIN_GROUP ?? '',
    timeoutMs: c.LDAP_TIMEOUT_SECONDS * 1000,
  };
  const [field, problem] = Object.entries(settingsProblems(settings))[0] ?? [];
  if (field) throw new ConfigError(`Invalid configuration: ${LDAP_ENV_NAMES[field] ?? field} ${problem}`);
  return settings;
}
