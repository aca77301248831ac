/**
 * `npm run bench:queries`: the SQL statements behind one request of each kind `npm run bench`
 * measures (offline activation and the license download after it, online activate and check,
 * /account, the order page, lookups by key), in order, with their time, and the mean time of TRACE_TIMES (20) more of the same. A tool for
 * whoever wants to know why a figure is what it is. A temporary SQLite file, or a scratch database
 * on DATABASE_URL's server (its name must contain "bench"; it is dropped).
 *
 * TRACE_PROFILE=<name of one kind, e.g. "order page"> writes a CPU profile of those TRACE_TIMES
 * requests (server and client share this process) to /tmp/trace-<name>.cpuprofile (open it in
 * Chrome DevTools).
 */
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../../config/index.ts';
import { createApp } from '../../app/app.ts';
import { createLogger } from '../../app/lib/logger.ts';
import { systemClock } from '../../app/lib/clock.ts';
import { ensureSigningKey } from '../../app/services/signing-keys.ts';
import { usingMysql } from '../helpers/db.ts';
import { mysqlDatabase, scratchDir, seed, sqliteDatabase } from './fixture.ts';
import { activationRequest, activationUploads, checkRequest, login, newDevice } from './scenarios.ts';
import { fetchOnce, type Call } from './load.ts';
import { Session } from 'node:inspector/promises';

const dir = scratchDir('portico-trace-');
const TIMES = Number(process.env.TRACE_TIMES ?? 20);
const d = usingMysql ? await mysqlDatabase(process.env.DATABASE_URL!) : await sqliteDatabase(dir);
const f = await seed(d.db, { activationsPerPhase: 4000, phases: 3, seatsPerLicense: 10 });
await ensureSigningKey(d.db, dir, new Date());
const config = {
  ...loadConfig({
    NODE_ENV: 'production',
    DATA_DIR: dir,
    LOG_LEVEL: 'warn',
    TRUST_PROXY: 'loopback',
    DATABASE_URL: d.url,
  }),
  sessionSecret: 'trace-session-secret-that-is-long-enough-0123456789',
};
const app = createApp({ db: d.db, config, logger: createLogger('warn'), clock: systemClock });
const server = app.listen(0, '127.0.0.1');
await new Promise((r) => server.once('listening', r));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

let log: { sql: string; ms: number }[] | null = null;
const started = new Map<string, bigint>();
d.db.on('query', (q: { __knexQueryUid: string }) => started.set(q.__knexQueryUid, process.hrtime.bigint()));
d.db.on('query-response', (_r: unknown, q: { __knexQueryUid: string; sql: string }) => {
  const t = started.get(q.__knexQueryUid);
  if (log && t) log.push({ sql: q.sql, ms: Number(process.hrtime.bigint() - t) / 1e6 });
});

async function traced(name: string, call: Call, times = TIMES) {
  for (let i = 0; i < 3; i++) await fetchOnce(base, typeof call === 'function' ? (call as () => Call)() : call);
  log = [];
  const t0 = process.hrtime.bigint();
  const res = await fetchOnce(base, typeof call === 'function' ? (call as () => Call)() : call);
  const total = Number(process.hrtime.bigint() - t0) / 1e6;
  const queries = log;
  log = null;
  let loop = 0;
  const profile = process.env.TRACE_PROFILE === name ? new Session() : null;
  if (profile) {
    profile.connect();
    await profile.post('Profiler.enable');
    await profile.post('Profiler.setSamplingInterval', { interval: 100 });
    await profile.post('Profiler.start');
  }
  const t1 = process.hrtime.bigint();
  for (let i = 0; i < times; i++) await fetchOnce(base, typeof call === 'function' ? (call as () => Call)() : call);
  loop = Number(process.hrtime.bigint() - t1) / 1e6 / times;
  if (profile) {
    const { profile: p } = await profile.post('Profiler.stop');
    fs.writeFileSync(`/tmp/trace-${name.replace(/\W+/g, '-')}.cpuprofile`, JSON.stringify(p));
  }
  console.log(
    `\n== ${name}: HTTP ${res.status}, ${total.toFixed(1)} ms (mean of ${times} more: ${loop.toFixed(2)} ms), ${queries.length} statements, ${queries.reduce((s, q) => s + q.ms, 0).toFixed(2)} ms in SQL`,
  );
  for (const q of queries)
    console.log(`  ${q.ms.toFixed(2).padStart(7)} ms  ${q.sql.replace(/\s+/g, ' ').slice(0, 220)}`);
}

const page = await fetchOnce(base, { method: 'GET', path: '/offline' });
const cookie = (page.headers['set-cookie'] as string[])[0]!.split(';')[0]!;
const action = /<form[^>]*action="([^"]*_csrf=[^"]*)"/.exec(page.body)![1]!.replace(/&amp;/g, '&');
const uploads = activationUploads(f.productCode, f.pools[0]!, TIMES + 10);
let u = 0;
let ip = 0;
const xff = () => `10.0.${(++ip >> 8) & 255}.${ip & 255}`;
{
  // The download of the license file behind the result page's link (the second half of an offline activation).
  const page = await fetchOnce(base, {
    method: 'POST',
    path: action,
    body: uploads[TIMES + 9]!.body,
    headers: { cookie, 'content-type': uploads[TIMES + 9]!.contentType, 'x-forwarded-for': xff() },
  });
  const link = /href="([^"]*\/download\/[^"]+)"/.exec(page.body)![1]!;
  await traced('license download', (() => ({
    method: 'GET',
    path: link,
    headers: { cookie, 'x-forwarded-for': xff() },
  })) as unknown as Call);
}
await traced('offline activation', (() => ({
  method: 'POST',
  path: action,
  body: uploads[u]!.body,
  headers: { cookie, 'content-type': uploads[u++]!.contentType, 'x-forwarded-for': xff() },
})) as unknown as Call);

const devices = Array.from({ length: TIMES + 10 }, () => newDevice());
let a = 0;
const apiJson = (p: string, request: string): Call => ({
  method: 'POST',
  path: p,
  body: Buffer.from(JSON.stringify({ request })),
  headers: { 'content-type': 'application/json', 'x-forwarded-for': xff() },
});
await traced('online activate', (() => {
  const dev = devices[a++]!;
  return apiJson('/api/v1/activate', activationRequest(dev, f.productCode, f.pools[1]![a % f.pools[1]!.length]!));
}) as unknown as Call);
const rows = await d.db('devices').where({ channel: 'online' }).select('id', 'license_id', 'hardware_id');
const dev0 = devices.find((x) => x.hardwareId === rows[0].hardware_id)!;
await traced('online check', (() =>
  apiJson(
    '/api/v1/check',
    checkRequest(dev0, f.productCode, Number(rows[0].license_id), Number(rows[0].id)),
  )) as unknown as Call);

const manager = await login(base, f.manager.email, f.manager.password);
const admin = await login(base, f.admin.email, f.admin.password);
await traced('/account', { method: 'GET', path: '/account', headers: { cookie: manager } });
await traced('order page', { method: 'GET', path: `/portal/orders/${f.order}`, headers: { cookie: manager } });
await traced('order page ?key=', {
  method: 'GET',
  path: `/portal/orders/${f.order}?key=${f.orderKeys[7]}`,
  headers: { cookie: manager },
});
await traced('console ?key=', {
  method: 'GET',
  path: `/admin/licenses?key=${f.orderKeys[7]}`,
  headers: { cookie: admin },
});
server.close();
await d.drop();
fs.rmSync(dir, { recursive: true, force: true });
