import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import type { Config } from '../../config/index.ts';
import { isSqlite } from '../../db/knexfile.ts';
import { migrationStatus, openDatabase } from '../../db/index.ts';
import * as signingKeys from '../models/signing-keys.ts';
import { hasPrivateKey } from '../lib/key-files.ts';
import { secretFilesIn } from './backup.ts';

/**
 * `portico check` (docs/operations.md): what an operator wants to know before (or instead of)
 * starting the server. Each finding is ok, warn (works, but look) or fail (a start or a request
 * would fail, or a secret is exposed); any fail makes the command exit 1.
 */

export type Level = 'ok' | 'warn' | 'fail';
export interface Finding {
  level: Level;
  what: string;
  detail: string;
}

/** Largest difference between this machine's clock and the database server's before `check` fails. */
export const MAX_CLOCK_SKEW_MS = 5_000;
/** A recorded event this far in the future means the clock was set back (or the database is another machine's). */
const FUTURE_EVENT_MS = 60_000;

function dataDirFindings(config: Config): Finding[] {
  const out: Finding[] = [];
  const stat = fs.statSync(config.dataDir, { throwIfNoEntry: false });
  if (!stat?.isDirectory()) {
    out.push({ level: 'fail', what: 'data folder', detail: `${config.dataDir} does not exist or is not a folder` });
    return out;
  }
  const probe = path.join(config.dataDir, `.portico-check-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  try {
    fs.writeFileSync(probe, 'x', { flag: 'wx', mode: 0o600 });
    fs.rmSync(probe);
    out.push({ level: 'ok', what: 'data folder', detail: `${config.dataDir} is writable` });
  } catch (err) {
    out.push({
      level: 'fail',
      what: 'data folder',
      detail: `${config.dataDir} is not writable (${(err as Error).message})`,
    });
  }
  if (stat.mode & 0o077)
    out.push({
      level: 'warn',
      what: 'data folder',
      detail: `${config.dataDir} has mode ${(stat.mode & 0o777).toString(8)}: other users can list it (0700 expected)`,
    });
  const uid = process.getuid?.();
  for (const rel of secretFilesIn(config.dataDir)) {
    const file = path.join(config.dataDir, rel);
    const s = fs.statSync(file);
    const mode = (s.mode & 0o777).toString(8).padStart(4, '0');
    if (s.mode & 0o077)
      out.push({
        level: 'fail',
        what: 'secret file',
        detail: `${file} has mode ${mode}: other users can read it (chmod 600)`,
      });
    else if (uid !== undefined && s.uid !== uid)
      out.push({
        level: 'fail',
        what: 'secret file',
        detail: `${file} is owned by uid ${s.uid}, not by the user running this (uid ${uid}): run Portico and this command as the same user (chown)`,
      });
    else out.push({ level: 'ok', what: 'secret file', detail: `${file} (mode ${mode}, owned by this user)` });
  }
  return out;
}

async function clockFindings(db: Knex): Promise<Finding[]> {
  const out: Finding[] = [];
  if (!isSqlite(db)) {
    const before = Date.now();
    const [rows] = (await db.raw('SELECT UNIX_TIMESTAMP(NOW(3)) * 1000 AS t')) as [{ t: number | string }[]];
    const local = (before + Date.now()) / 2;
    const skew = Number(rows[0]!.t) - local;
    out.push({
      level: Math.abs(skew) > MAX_CLOCK_SKEW_MS ? 'fail' : 'ok',
      what: 'clock',
      detail: `the database server's clock is ${Math.round(Math.abs(skew))} ms ${skew >= 0 ? 'ahead of' : 'behind'} this machine's (at most ${MAX_CLOCK_SKEW_MS} ms allowed; run NTP on both)`,
    });
  }
  const latest = (await db.schema.hasTable('audit_events'))
    ? await db('audit_events').max({ at: 'occurred_at' }).first()
    : undefined;
  const at = latest?.at == null ? null : new Date(latest.at as string | number | Date);
  if (at && at.getTime() - Date.now() > FUTURE_EVENT_MS)
    out.push({
      level: 'fail',
      what: 'clock',
      detail: `the latest audit event is dated ${at.toISOString()}, after this machine's time ${new Date().toISOString()}: the clock was set back`,
    });
  else out.push({ level: 'ok', what: 'clock', detail: `this machine's time is ${new Date().toISOString()}` });
  return out;
}

async function databaseFindings(config: Config): Promise<Finding[]> {
  const out: Finding[] = [];
  let db: Knex;
  try {
    db = openDatabase(config.databaseUrl);
  } catch (err) {
    return [{ level: 'fail', what: 'database', detail: `cannot be opened: ${(err as Error).message}` }];
  }
  try {
    try {
      await db.raw('SELECT 1');
      out.push({ level: 'ok', what: 'database', detail: `reachable (${isSqlite(db) ? 'SQLite' : 'MySQL/MariaDB'})` });
    } catch (err) {
      out.push({ level: 'fail', what: 'database', detail: `not reachable: ${(err as Error).message}` });
      return out;
    }
    const status = await migrationStatus(db);
    if (status.unknown.length)
      out.push({
        level: 'fail',
        what: 'schema',
        detail: `the database has migrations this release does not know (${status.unknown.join(', ')}): it belongs to a newer release`,
      });
    else if (status.pending.length)
      out.push({
        level: 'warn',
        what: 'schema',
        detail: `${status.pending.length} migration(s) pending; a start applies them (\`portico migrate:status\` lists them)`,
      });
    else out.push({ level: 'ok', what: 'schema', detail: `up to date (${status.applied.at(-1)})` });

    if (status.applied.length && !status.unknown.length) {
      const active = await signingKeys.findActive(db);
      if (!active) out.push({ level: 'warn', what: 'signing key', detail: 'none yet; the first start makes one' });
      else if (!hasPrivateKey(config.dataDir, active.kid))
        out.push({
          level: 'fail',
          what: 'signing key',
          detail: `the active key ${active.kid} has no private key file in ${path.join(config.dataDir, 'keys')}: licenses cannot be signed`,
        });
      else out.push({ level: 'ok', what: 'signing key', detail: `active key ${active.kid} and its private key file` });
      if (!fs.existsSync(path.join(config.dataDir, 'secret-box.key'))) {
        const sealed = await db('accounts').whereNotNull('totp_secret').count({ n: '*' }).first();
        out.push(
          Number(sealed?.n ?? 0) > 0
            ? {
                level: 'fail',
                what: 'secret-box key',
                detail: `${path.join(config.dataDir, 'secret-box.key')} is missing but accounts have second factors sealed with it: restore it from a backup`,
              }
            : { level: 'ok', what: 'secret-box key', detail: 'not made yet (made on first use)' },
        );
      }
    }
    out.push(...(await clockFindings(db)));
  } finally {
    await db.destroy();
  }
  return out;
}

/** Every finding, in order: the data folder and its secret files, the database, schema, keys and clock. */
export async function runChecks(config: Config): Promise<Finding[]> {
  return [...dataDirFindings(config), ...(await databaseFindings(config))];
}
