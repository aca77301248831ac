import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import request from 'supertest';
import type { Knex } from 'knex';
import { createApp, type PorticoApp } from '../../app/app.ts';
import { loadConfig, type Config } from '../../config/index.ts';
import { createLogger } from '../../app/lib/logger.ts';
import { ManualClock } from '../../app/lib/clock.ts';
import { ensureSigningKey } from '../../app/services/signing-keys.ts';
import { hashPassword } from '../../app/lib/passwords.ts';
import * as accounts from '../../app/models/accounts.ts';
import { openDatabase } from '../../db/index.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';

export interface TestApp {
  app: PorticoApp;
  db: Knex;
  clock: ManualClock;
  config: Config;
  dataDir: string;
  /** Every log line the app wrote, as parsed JSON. */
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

/**
 * A real app on a real, fresh database of its own (SQLite, or MySQL when DATABASE_URL says so). With
 * `installation`: the app on that existing database and DATA_DIR instead (nothing created, migrated
 * or dropped; close() only closes its connections).
 */
export async function buildTestApp(
  overrides: Partial<Config> = {},
  installation?: { databaseUrl: string; dataDir: string },
): Promise<TestApp> {
  const database: TestDatabase = installation
    ? { url: installation.databaseUrl, db: openDatabase(installation.databaseUrl), drop: async () => {} }
    : await createTestDatabase();
  if (installation) database.drop = () => database.db.destroy();
  const dataDir = installation?.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'portico-data-'));
  const config: Config = {
    ...loadConfig({ NODE_ENV: 'test', DATA_DIR: dataDir, LOG_LEVEL: 'info' }),
    databaseUrl: database.url,
    sessionSecret: 'test-session-secret-that-is-long-enough-1234567890',
    baseUrl: 'http://portico.test',
    ...overrides,
  };
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      done();
    },
  });
  const clock = new ManualClock();
  await ensureSigningKey(database.db, dataDir, clock.now());
  const app = createApp({ db: database.db, config, logger: createLogger(overrides.logLevel ?? 'info', sink), clock });
  return {
    app,
    db: database.db,
    clock,
    config,
    dataDir,
    logs,
    async close() {
      await database.drop();
      if (!installation) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

let counter = 0;

/** Creates an account directly in the database and returns it with its clear password. */
export async function createAccount(db: Knex, fields: Partial<accounts.NewAccount> & { password?: string } = {}) {
  counter += 1;
  const password = fields.password ?? `correct horse ${counter} battery`;
  const email = fields.email ?? `user${counter}-${Date.now()}@example.com`;
  const id = await accounts.insert(
    db,
    {
      email,
      name: fields.name ?? `User ${counter}`,
      passwordHash: await hashPassword(password),
      role: fields.role ?? 'manager',
      language: fields.language ?? 'en',
      mustChangePassword: fields.mustChangePassword,
    },
    new Date(),
  );
  return { id, email: email.toLowerCase(), password };
}

/** Reads the CSRF token out of a rendered form. */
export function csrfFrom(html: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(html);
  if (!match) throw new Error('no CSRF token in page');
  return match[1]!;
}

/** A cookie-keeping client that has logged in through the real form. */
export async function loginAgent(
  app: PorticoApp,
  email: string,
  password: string,
  headers: Record<string, string> = {},
) {
  const agent = request.agent(app);
  const page = await agent.get('/login').set(headers).expect(200);
  await agent
    .post('/login')
    .set(headers)
    .type('form')
    .send({ _csrf: csrfFrom(page.text), email, password })
    .expect(303);
  return agent;
}

/** GETs a page and POSTs a form from it with its CSRF token. */
export async function submitForm(
  agent: ReturnType<typeof request.agent>,
  pageUrl: string,
  actionUrl: string,
  fields: Record<string, string>,
) {
  const page = await agent.get(pageUrl).expect(200);
  return agent
    .post(actionUrl)
    .type('form')
    .send({ _csrf: csrfFrom(page.text), ...fields });
}

export async function auditActions(db: Knex): Promise<string[]> {
  return (await db('audit_events').orderBy('id').select('action')).map((r: { action: string }) => r.action);
}

/** A logged-in admin agent and its account. */
export async function adminAgent(t: TestApp, language = 'en') {
  const admin = await createAccount(t.db, { role: 'admin', language });
  return { agent: await loginAgent(t.app, admin.email, admin.password), admin };
}

/** The audit events of one object, oldest first, with parsed before/after. */
export async function auditOf(db: Knex, objectType: string, objectId: number | string) {
  const rows = await db('audit_events')
    .where({ object_type: objectType, object_id: String(objectId) })
    .orderBy('id');
  return rows.map((r: Record<string, unknown>) => ({
    action: String(r.action),
    actor: r.actor_account_id === null ? null : Number(r.actor_account_id),
    before: r.before_state ? JSON.parse(String(r.before_state)) : null,
    after: r.after_state ? JSON.parse(String(r.after_state)) : null,
  }));
}

export async function countRows(db: Knex, table: string, where: Record<string, unknown> = {}): Promise<number> {
  return Number((await db(table).where(where).count({ n: '*' }).first())?.n ?? 0);
}
