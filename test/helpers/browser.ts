import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { PorticoApp } from '../../app/app.ts';
import { buildTestApp, type TestApp } from './app.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const axeSource = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Debian's Chromium driven by playwright-core (never a downloaded browser). Without Chromium the
 * browser tests skip, unless REQUIRE_BROWSER=1 (set by .ci/run), where its absence fails them.
 */
export function browserAvailable(): boolean {
  if (fs.existsSync(CHROMIUM)) return true;
  if (process.env.REQUIRE_BROWSER === '1')
    throw new Error(`Chromium not found at ${CHROMIUM} (apt-get install chromium)`);
  return false;
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
}

/**
 * Serves the app on a free port. Idle connections stay open longer than a client keeps them (Node's
 * 5 s default raced fetch's pool: a reused socket the server had just closed failed with ECONNRESET).
 */
export async function listen(app: PorticoApp): Promise<{ url: string; server: Server }> {
  return new Promise((resolve) => {
    const server = app.listen(0, '127.0.0.1', () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }),
    );
    server.keepAliveTimeout = 60_000;
  });
}

export interface ServedApp {
  t: TestApp;
  /** The app's URL on loopback. */
  base: string;
  /** An empty folder of the suite's own (device state, files carried between machine and portal). */
  work: string;
}

/**
 * Registers the suite's hooks: a test app served on loopback (what a CLI or fetch talks to over real
 * HTTP) and a work folder, removed after the suite. Read the fields inside tests, after `before` ran.
 */
export function useServedApp(name: string): ServedApp {
  const s = {} as ServedApp & { server?: Server };
  before(async () => {
    s.t = await buildTestApp();
    const listening = await listen(s.t.app);
    s.base = listening.url;
    s.server = listening.server;
    s.work = fs.mkdtempSync(path.join(os.tmpdir(), `portico-${name}-`));
  });
  after(async () => {
    s.server?.close();
    await s.t?.close();
    if (s.work) fs.rmSync(s.work, { recursive: true, force: true });
  });
  return s;
}

/** Opens a page that records CSP violations and script errors, which every browser test asserts are none. */
export async function openPage(browser: Browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    // A page answered with 4xx on purpose (a refused login) logs "Failed to load resource": not a problem.
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text()))
      problems.push(m.text());
  });
  page.on('response', (r) => {
    if (r.request().resourceType() !== 'document' && r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
  });
  page.on('pageerror', (e) => problems.push(e.message));
  return { page, problems, close: () => context.close() };
}

/** Runs axe-core (WCAG 2.1 A/AA rules) on the current page and returns its violations. */
export async function axeViolations(page: Page): Promise<string[]> {
  // Evaluated through the DevTools protocol, so the page's strict CSP stays on.
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    const axe = (
      globalThis as unknown as {
        axe: {
          run(
            ctx: unknown,
            opts: unknown,
          ): Promise<{ violations: { id: string; help: string; nodes: { target: unknown }[] }[] }>;
        };
      }
    ).axe;
    return axe.run('html', {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    });
  });
  return result.violations.map(
    (v) => `${v.id}: ${v.help} (${v.nodes.map((n) => JSON.stringify(n.target)).join(', ')})`,
  );
}

export interface BrowserApp {
  t: TestApp;
  browser: Browser;
  url: string;
}

/**
 * Registers the suite's hooks: a test app listening on loopback and one Chromium; the suite skips
 * without Chromium (unless REQUIRE_BROWSER=1). Read the fields inside tests, after `before` ran.
 */
export function useBrowserApp(): BrowserApp {
  const s = {} as BrowserApp & { server?: Server };
  before(async function () {
    if (!browserAvailable()) return this.skip();
    s.t = await buildTestApp();
    const listening = await listen(s.t.app);
    s.url = listening.url;
    s.server = listening.server;
    s.browser = await launchBrowser();
  });
  after(async () => {
    await s.browser?.close();
    s.server?.close();
    await s.t?.close();
  });
  return s;
}

/** Logs in through the real form and waits for the home page (the portal's welcome, or the vendor console). */
export async function logIn(page: Page, url: string, account: { email: string; password: string }): Promise<void> {
  await page.goto(`${url}/login`);
  await page.getByLabel('E-mail address').fill(account.email);
  await page.getByLabel('Password').fill(account.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: /^(Welcome|Vendor console)/ }).waitFor();
}
