/**
 * `npm run bench`: speed figures printed next to a baseline measured in the same run, on this
 * machine, never as pass/fail tests. Loopback only, bounded in time. Uses SQLite unless
 * DATABASE_URL points at MySQL/MariaDB (a scratch database is created there and dropped).
 */
import type { AddressInfo } from 'node:net';
import http from 'node:http';
import { buildTestApp, createAccount, csrfFrom } from '../helpers/app.ts';
import * as catalog from '../../app/models/catalog.ts';
import { generateLicenseKey } from '../../app/lib/license-keys.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 200);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Sequential GETs with a cookie: latency per request in milliseconds. */
async function measure(base: string, path: string, cookie: string, rounds: number): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const one = () =>
    new Promise<number>((resolve, reject) => {
      const started = process.hrtime.bigint();
      http
        .get(`${base}${path}`, { agent, headers: { cookie } }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - started) / 1e6) : reject(new Error(`${path}: HTTP ${res.statusCode}`))));
        })
        .on('error', reject);
    });
  for (let i = 0; i < 20; i++) await one(); // warm-up: compiled views, prepared statements, JIT
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) times.push(await one());
  agent.destroy();
  return times.sort((a, b) => a - b);
}

async function seedOrder(db: Parameters<typeof catalog.insertProduct>[0], licenses: number) {
  const now = new Date();
  const product = await catalog.insertProduct(db, { name: 'Bench CAD', code: `bench-${Date.now()}`, authorizationMethod: 'key' }, now);
  const policy = await catalog.insertPolicy(db, { productId: product, name: 'Standard', isDefault: true, entitlements: catalog.DEFAULT_ENTITLEMENTS }, now);
  const customer = await catalog.insertCustomer(db, { kind: 'company', name: 'Bench Customer' }, now);
  const order = await catalog.insertOrder(db, { orderRef: `BENCH-${licenses}`, customerId: customer }, now);
  const rows = Array.from({ length: licenses }, (_, i) => ({
    order_id: order,
    product_id: product,
    policy_id: policy,
    license_key: generateLicenseKey(),
    enabled: i % 50 !== 0,
    ...catalog.entitlementColumns(catalog.DEFAULT_ENTITLEMENTS),
    start_date: now,
    times_activated: i % 3 === 0 ? 1 : 0,
    transfer_count: 0,
    created_at: now,
    updated_at: now,
  }));
  for (let i = 0; i < rows.length; i += 200) await db('licenses').insert(rows.slice(i, i + 200));
  return order;
}

async function main() {
  const t = await buildTestApp({ env: 'production', logLevel: 'silent' });
  const server = t.app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const order = await seedOrder(t.db, 10_000);
    const manager = await createAccount(t.db, { role: 'manager' });
    await catalog.assignManager(t.db, manager.id, order, new Date());

    // Log in through the real form to get a session cookie.
    const loginPage = await fetch(`${base}/login`);
    const anonCookie = loginPage.headers.get('set-cookie')!.split(';')[0]!;
    const login = await fetch(`${base}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: anonCookie },
      body: new URLSearchParams({ _csrf: csrfFrom(await loginPage.text()), email: manager.email, password: manager.password }),
    });
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;

    const db = t.config.databaseUrl.startsWith('sqlite') ? 'SQLite' : 'MySQL/MariaDB';
    const rows: [string, number[]][] = [
      ['baseline: /account (same layout, no data)', await measure(base, '/account', cookie, ROUNDS)],
      ['User Portal order page, 10,000 licenses', await measure(base, `/portal/orders/${order}`, cookie, ROUNDS)],
      ['  … filtered by status (inactive)', await measure(base, `/portal/orders/${order}?status=inactive`, cookie, ROUNDS)],
      ['  … last page', await measure(base, `/portal/orders/${order}?page=200`, cookie, ROUNDS)],
    ];
    const baseline = rows[0]![1];
    console.log(`\nPortico benchmark — ${db}, ${ROUNDS} sequential requests each, node ${process.version}\n`);
    console.log(`${'page'.padEnd(46)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'req/s'.padStart(8)} ${'p50 vs baseline'.padStart(16)}`);
    for (const [name, times] of rows) {
      const p50 = percentile(times, 50);
      const mean = times.reduce((a, b) => a + b, 0) / times.length;
      console.log(`${name.padEnd(46)} ${p50.toFixed(1).padStart(8)} ${percentile(times, 99).toFixed(1).padStart(8)} ${(1000 / mean).toFixed(0).padStart(8)} ${(p50 / percentile(baseline, 50)).toFixed(2).padStart(15)}×`);
    }
    console.log(`\npeak RSS of this process (server + client): ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
  } finally {
    server.close();
    await t.close();
  }
}

await main();
