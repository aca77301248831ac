/**
 * `npm run screenshots`: seeds the demo data (db/seeds/demo.ts) into a scratch DATA_DIR, starts the
 * server there on a free port, and photographs the main pages of each role at desktop (1280 px) and
 * phone (390 px) width, in light and dark mode, into screenshots/ (ignored by git). Needs Chromium
 * (CHROMIUM_PATH, default /usr/bin/chromium). The scratch directory is removed afterwards.
 * SCREENSHOT_ROLES=admin,manager limits it to some roles (visitor, enduser, manager, admin).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from 'playwright-core';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'screenshots');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

function run(script: string, env: Record<string, string>): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: root, env: { ...process.env, ...env } });
  let out = '';
  child.stdout!.on('data', (d) => (out += d.toString()));
  child.stderr!.on('data', (d) => (out += d.toString()));
  return Object.assign(child, { output: () => out });
}

async function waitFor(child: ReturnType<typeof run>, pattern: RegExp, ms = 60_000): Promise<RegExpExecArray> {
  const started = Date.now();
  for (;;) {
    const m = pattern.exec(child.output());
    if (m) return m;
    if (child.exitCode !== null || Date.now() - started > ms)
      throw new Error(`did not see ${pattern}; output:\n${child.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null ? Promise.resolve() : new Promise<void>((r) => child.once('exit', () => r()));

async function main() {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-screenshots-'));
  const env = {
    DATA_DIR: dataDir,
    DATABASE_URL: `sqlite:${path.join(dataDir, 'portico.sqlite')}`,
    PORT: '0',
    WORKERS: '1',
    LOG_LEVEL: 'warn',
    NODE_ENV: 'development',
  };
  let server: ReturnType<typeof run> | undefined;
  try {
    const seed = run('db/seeds/demo.ts', env);
    await exited(seed);
    if (seed.exitCode !== 0) throw new Error(`the demo seed failed:\n${seed.output()}`);
    const logins = new Map<string, string>();
    for (const m of seed.output().matchAll(/^\s+\w+\s+(\S+@demo\.portico\.test)\s+(\S+)$/gm)) logins.set(m[1]!, m[2]!);
    const code = /Redeemable codes[^\n]*\n\s+(\S+)/.exec(seed.output())?.[1];

    server = run('server.ts', env);
    const url = (await waitFor(server, /listening on (http:\/\/\S+)/))[1]!.replace('localhost', '127.0.0.1');

    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    fs.mkdirSync(outDir, { recursive: true });
    const login = async (page: Page, email: string) => {
      await page.goto(`${url}/login`);
      await page.getByLabel('E-mail address').fill(email);
      await page.getByLabel('Password').fill(logins.get(email)!);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.waitForURL((u) => !u.pathname.startsWith('/login'));
    };
    const firstHref = async (page: Page, from: string, selector: string) => {
      await page.goto(url + from);
      const link = page.locator(selector).first();
      return (await link.count()) ? link.getAttribute('href') : null;
    };
    const roles: { name: string; email: string | null; pages: (page: Page) => Promise<[string, string][]> }[] = [
      {
        name: 'visitor',
        email: null,
        pages: async () => [
          ['login', '/login'],
          ['offline', '/offline'],
          ['airgap', '/airgap'],
          ['redeem', '/redeem'],
        ],
      },
      {
        name: 'enduser',
        email: 'enduser@demo.portico.test',
        pages: async () => [
          ['home', '/portal'],
          ['account', '/account'],
        ],
      },
      {
        name: 'manager',
        email: 'distributor@demo.portico.test',
        pages: async (page) => {
          const order = (await firstHref(page, '/portal/orders?q=ORD-1001', 'table a[href*="/portal/orders/"]'))!;
          const license = (await firstHref(page, order, 'table a[href*="/portal/licenses/"]'))!;
          return [
            ['dashboard', '/portal'],
            ['orders', '/portal/orders'],
            ['order', order],
            ['license', license],
            ['dispatch', `${order}/dispatch`],
            ['vouchers', `${order}/vouchers`],
            ['team', '/portal/team'],
          ];
        },
      },
      {
        name: 'admin',
        email: 'admin@demo.portico.test',
        pages: async (page) => {
          const license = (await firstHref(page, '/admin/licenses', 'table a[href*="/admin/licenses/"]'))!;
          const branding = await firstHref(page, '/admin/brandings', 'table a[href*="/admin/brandings/"]');
          return [
            ['dashboard', '/admin'],
            ['products', '/admin/products'],
            ['orders', '/admin/orders'],
            ['license', license],
            ['brandings', branding ?? '/admin/brandings'],
            ['new-branding', '/admin/brandings/new'],
            ['audit', '/admin/audit'],
          ];
        },
      },
    ];
    let count = 0;
    const only = process.env.SCREENSHOT_ROLES?.split(',');
    for (const role of roles.filter((r) => !only || only.includes(r.name))) {
      for (const scheme of ['light', 'dark'] as const) {
        for (const width of [1280, 390]) {
          const context = await browser.newContext({
            viewport: { width, height: width > 600 ? 800 : 844 },
            colorScheme: scheme,
          });
          const page = await context.newPage();
          if (role.email) await login(page, role.email);
          for (const [name, href] of await role.pages(page)) {
            await page.goto(url + href);
            const file = path.join(outDir, `${role.name}-${name}-${width}-${scheme}.png`);
            await page.screenshot({ path: file, fullPage: true });
            count++;
            process.stdout.write(`${path.relative(root, file)}\n`);
          }
          await context.close();
        }
      }
    }
    await browser.close();
    console.log(
      `${count} screenshots in ${path.relative(process.cwd(), outDir) || '.'}${code ? ` (a demo code to redeem: ${code})` : ''}`,
    );
  } finally {
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await exited(server);
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
