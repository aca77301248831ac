import assert from 'node:assert/strict';
import { createEndpoint, webhookDepsOf } from '../../app/services/webhooks.ts';
import { WEBHOOK_EVENT_TYPES } from '../../app/services/events.ts';
import { insertAttempt, insertDelivery, insertEvent } from '../../app/models/webhooks.ts';
import type { Page } from 'playwright-core';
import { type Area, routeTable } from '../../app/routes.ts';
import * as brandings from '../../app/models/brandings.ts';
import { createBranding } from '../../app/services/brandings.ts';
import { systemActor } from '../../app/services/context.ts';
import { generateVouchers, redeemVoucher } from '../../app/services/vouchers.ts';
import * as accounts from '../../app/models/accounts.ts';
import { portalWorld } from '../helpers/portal.ts';
import { axeViolations, openPage, useBrowserApp } from '../helpers/browser.ts';

type World = Awaited<ReturnType<typeof portalWorld>>;
type Role = 'admin' | 'manager' | 'endUser' | 'visitor';

/**
 * Every page of the route table at phone width (390 px) for the role that sees it: nothing may be wider
 * than the screen, and no element may reach past its right edge (not even inside a box that scrolls). The list comes from the route table (app/routes.ts), so a new page is checked as soon
 * as it is routed; a GET route that is not a page says why in NOT_PAGES.
 */
const NOT_PAGES: Record<string, string> = {
  '/portal/orders/:id/export.csv': 'a CSV download',
  '/portal/orders/:id/vouchers/new-codes.csv': 'a CSV download (only right after generating)',
  '/portal/orders/:id/vouchers/new-codes/print':
    'only right after generating codes (the browser test of codes prints it)',
  '/portal/licenses/:id/devices/:deviceId/refresh': 'a license file download',
  '/admin/licenses/:id/devices/:deviceId/refresh': 'a license file download',
  '/admin/audit.csv': 'a CSV download',
  '/admin/orders/:id/vouchers/new-codes.csv': 'a CSV download (only right after generating)',
  '/admin/orders/:id/vouchers/new-codes/print': 'only right after generating codes (the request tests print it)',
  '/portal/orders/:id/usage.csv': 'a CSV download',
  '/portal/licenses/:id/usage.csv': 'a CSV download',
  '/admin/usage.csv': 'a CSV download',
  '/admin/orders/:id/usage.csv': 'a CSV download',
  '/admin/licenses/:id/usage.csv': 'a CSV download',
  '/admin/brandings/:id/logo': 'an image',
  '/offline/download/:token': 'a file download',
  '/airgap/download/:token': 'a file download',
  '/': 'a redirect to the home page of the role',
  '/login/two-factor': 'needs a password login first (the two-factor browser tests)',
  '/sso/:id/start': "a redirect to the customer's identity provider",
  '/sso/:id/oidc/callback': "the identity provider's answer (the single sign-on tests)",
  '/sso/:id/saml/complete': 'the return from the SAML assertion consumer (the single sign-on tests)',
};

/** Which role opens the pages of an area (account pages: every role that has an account). */
const ROLES_BY_AREA: Record<Exclude<Area, 'public' | 'api' | 'manage'>, Role[]> = {
  admin: ['admin'],
  portal: ['manager'],
  offline: ['visitor'],
  airgap: ['visitor'],
  account: ['admin', 'manager', 'endUser', 'visitor'],
};

/** Account pages only for someone logged in, or only for a visitor. */
const ACCOUNT_LOGGED_IN = /^\/account/;
const VISITOR_ONLY = /^\/(login|password|setup|invitations)/;

async function fillParams(t: { db: import('knex').Knex }, w: World, brandingId: number, path: string) {
  const ids: Record<string, number | string> = { token: 'no-such-token-0123456789' };
  const auditId = (await t.db('audit_events').orderBy('id', 'desc').first('id'))?.id;
  const mailId = (await t.db('mail_outbox').orderBy('id').first('id'))?.id;
  const managersMail = (await t.db('mail_outbox').where({ caused_by_account_id: w.managerAll.id }).first('id'))?.id;
  const role = (await t.db('roles').orderBy('id').first('id'))?.id;
  const vendorHook = (await t.db('webhook_endpoints').whereNull('owner_account_id').first('id'))?.id;
  const managersHook = (await t.db('webhook_endpoints').where({ owner_account_id: w.managerAll.id }).first('id'))?.id;
  const renewal = (await t.db('renewal_requests').orderBy('id').first('id'))?.id;
  const provider = (await t.db('identity_providers').orderBy('id').first('id'))?.id;
  const batch = (await t.db('voucher_batches').orderBy('id').first('id'))?.id;
  const byPrefix: [RegExp, Record<string, number | string>][] = [
    [/^\/admin\/products\//, { id: w.product }],
    [/^\/admin\/customers\//, { id: w.customer, providerId: provider }],
    [/^\/portal\/customers\//, { id: w.customer, providerId: provider }],
    [/^\/login\/sso\//, { id: provider }],
    [/^\/admin\/orders\//, { id: w.orderA }],
    [/^\/admin\/licenses\//, { id: w.licenseA, deviceId: w.deviceA }],
    [/^\/admin\/license-users\//, { id: w.endUser.id }],
    [/^\/admin\/managers\//, { id: w.managerAll.id }],
    [/^\/admin\/roles\//, { id: role }],
    [/^\/admin\/brandings\//, { id: brandingId }],
    [/^\/admin\/audit\//, { id: auditId }],
    [/^\/admin\/policies\//, { id: w.policy }],
    [/^\/admin\/outbox\//, { id: mailId }],
    [/^\/portal\/orders\//, { id: w.orderA }],
    [/^\/portal\/licenses\//, { id: w.licenseA, deviceId: w.deviceA }],
    [/^\/portal\/mail\//, { mailId: managersMail }],
    [/^\/admin\/webhooks\//, { id: vendorHook }],
    [/^\/portal\/webhooks\//, { id: managersHook }],
    [/^\/portal\/my\/licenses\//, { id: w.userLicense }],
    [/^\/admin\/renewals\//, { id: renewal }],
    [/^\/admin\/mail-templates\//, { kind: 'dispatch' }],
    [/^\/admin\/vouchers\//, { id: batch }],
  ];
  for (const [re, values] of byPrefix) if (re.test(path)) Object.assign(ids, values);
  return path.replace(/:(\w+)/g, (_m, name: string) => {
    if (ids[name] === undefined) throw new Error(`no value for :${name} in ${path}`);
    return String(ids[name]);
  });
}

async function logInAs(page: Page, url: string, account: { email: string; password: string }) {
  await page.goto(`${url}/login`);
  await page.getByLabel('E-mail address').fill(account.email);
  await page.getByLabel('Password').fill(account.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL((u) => !u.pathname.startsWith('/login'));
}

/**
 * The page's width and the first elements that reach past the right edge: the console's tab row scrolls on
 * purpose, and the headers of a table shown as cards are only there for screen readers (clipped to 1 px).
 */
async function overflow(page: Page): Promise<{ scrollWidth: number; width: number; wide: string[] }> {
  return page.evaluate(`(() => {
    const width = window.innerWidth;
    const wide = [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > width + 0.5 && !e.closest('.console-nav ul, .visually-hidden, .table-wrap thead'))
      .slice(0, 3)
      .map((e) => e.tagName.toLowerCase() + '.' + [...e.classList].join('.') + ' "' + (e.textContent || '').trim().slice(0, 40) + '"');
    return { scrollWidth: document.documentElement.scrollWidth, width, wide };
  })()`);
}

describe('browser: the phone layout (390 px) and the design', function () {
  this.timeout(600_000);
  const app = useBrowserApp();
  let w: World;
  let brandingId: number;
  before(async function () {
    if (!app.t) return this.skip();
    w = await portalWorld(app.t.db);
    const now = new Date();
    // Through the service, so the audit log has an entry to show.
    brandingId = await createBranding(app.t.app.locals.ctx, systemActor('layout test'), {
      name: 'acme',
      displayName: 'Acme Licensing',
      primaryColor: '#1f4e79',
      accentColor: '#d9822b',
      supportEmail: 'support@acme.example',
      defaultLanguage: 'en',
      showPoweredBy: false,
      logoAsFavicon: false,
      mailFromName: 'Acme Licensing Team',
      mailReplyTo: 'help@acme.example',
      mailFooter: 'Acme Corporation International, 1 Long Street, with a footer that goes on',
    });
    await brandings.insertHost(app.t.db, brandingId, 'licenses.acme-corporation-international.example', 'portal', now);
    await app.t.db('settings').insert({ key: 'end_user_self_service', value: 'true', updated_at: now });
    // A webhook endpoint of the vendor and one of the manager, with a long URL and a delivery log entry.
    const hooks = webhookDepsOf(app.t.app.locals.ctx);
    for (const owner of [null, w.managerAll.id]) {
      const hook = await createEndpoint(hooks, systemActor('layout test'), owner, {
        url: 'https://93.184.216.34/integrations/portico-license-events/receiver-endpoint-with-a-long-name',
        description: 'The CRM of the sales department, for licenses and activations',
        events: [...WEBHOOK_EVENT_TYPES],
      });
      const eventId = await insertEvent(
        app.t.db,
        { uid: `msg_layout${owner ?? 0}`, type: 'license.issued', orderId: w.orderA, dedupeKey: null, payload: '{}' },
        now,
      );
      const deliveryId = await insertDelivery(app.t.db, eventId!, hook.id, now);
      await insertAttempt(app.t.db, {
        deliveryId,
        endpointId: hook.id,
        attempt: 1,
        manual: false,
        statusCode: 500,
        durationMs: 120,
        responseExcerpt: `{"error":"${'an-unbroken-error-message-from-the-receiver'.repeat(5)}"}`,
        error: 'HTTP 500',
        startedAt: now,
      });
    }
    await app.t.db('mail_outbox').insert({
      to_address: 'engineer@globex-international-engineering.example',
      subject: 'Your licenses for Acme CAD',
      text_body:
        `Hello,\n\nyour license key: AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA\n\n${'A very long line without spaces '.replace(/ /g, '')}x`.repeat(
          2,
        ),
      reason: 'no_smtp',
      created_at: now,
    });
    // A mail the manager caused (their Sent mail page).
    await app.t.db('mail_outbox').insert({
      to_address: 'reseller-with-a-rather-long-address@globex-international-engineering.example',
      subject: 'Your Portico account at Acme Licensing, with a subject that goes on',
      text_body: 'Hello',
      reason: 'no_smtp',
      caused_by_account_id: w.managerAll.id,
      created_at: now,
    });
    // A renewal request with a long message (console → Renewal requests, the order's page).
    await app.t.db('renewal_requests').insert({
      order_id: w.orderA,
      license_id: w.licenseA,
      kind: 'more_seats',
      seats: 25,
      message: `Please add seats for the new engineering team ${'without-any-spaces-at-all'.repeat(6)}`,
      requester_account_id: w.managerAll.id,
      state: 'new',
      open_key: `more_seats:license:${w.licenseA}`,
      created_at: now,
      updated_at: now,
    });
    // A customer's identity provider with a domain and a group (single sign-on pages).
    const [providerId] = await app.t.db('identity_providers').insert({
      customer_id: w.customer,
      kind: 'saml',
      name: 'Globex Okta (SAML)',
      enabled: true,
      saml_entity_id: `http://www.okta.com/${'exk1a2b3c4d5e6f7g8h9'.repeat(2)}`,
      saml_sso_url: `https://globex.okta.com/app/globex_portico_1/${'exk1a2b3c4d5e6f7g8h9'.repeat(2)}/sso/saml`,
      saml_certificates: 'MIIB',
      groups_claim: 'http://schemas.microsoft.com/ws/2008/06/identity/claims/groups',
      created_at: now,
      updated_at: now,
    });
    await app.t.db('sso_domains').insert({
      provider_id: providerId,
      domain: 'globex-engineering-department.example',
      password_login: false,
      verified_at: now,
      created_at: now,
    });
    await app.t.db('sso_mappings').insert({
      provider_id: providerId,
      group_name: 'portico-license-managers-of-globex',
      kind: 'seat',
      license_id: w.userLicense,
      created_at: now,
    });
    // A batch of redeemable codes by the manager, one redeemed in the portal (console → Codes, the batch page).
    const ctx = app.t.app.locals.ctx;
    const creator = (await accounts.findById(app.t.db, w.managerAll.id))!;
    const batch = await generateVouchers(ctx, systemActor('layout test'), creator, w.orderA, {
      policyId: w.policy,
      count: 3,
      days: 30,
    });
    await redeemVoucher(ctx, systemActor('layout test'), batch.codes[0]!, {
      accountId: w.endUser.id,
      channel: 'portal',
    });
    // A failed job with a long error and a queued one (console → Jobs: both action buttons).
    const job = { payload: '{}', max_attempts: 8, run_at: now, created_at: now };
    await app.t.db('jobs').insert([
      {
        ...job,
        kind: 'mail.send',
        state: 'failed',
        attempts: 8,
        last_error: `connect ECONNREFUSED 127.0.0.1:25 ${'a-long-error-without-spaces'.repeat(6)}`,
      },
      { ...job, kind: 'mail.send', state: 'queued', attempts: 0 },
    ]);
  });

  it('no page of any role is wider than a 390 px screen', async () => {
    const { t, browser, url } = app;

    const routes = routeTable(t.app.locals.ctx).filter(
      (r) => r.method === 'get' && r.area !== 'public' && r.area !== 'api' && r.area !== 'manage',
    );
    const pages: Record<Role, string[]> = { admin: [], manager: [], endUser: [], visitor: [] };
    for (const r of routes) {
      const prefix = r.area === 'account' ? '' : `/${r.area}`;
      const pattern = r.path === '/' && prefix ? prefix : prefix + r.path;
      if (NOT_PAGES[pattern]) continue;
      for (const role of ROLES_BY_AREA[r.area as Exclude<Area, 'public' | 'api' | 'manage'>]) {
        if (r.area === 'account' && ACCOUNT_LOGGED_IN.test(pattern) && role === 'visitor') continue;
        if (r.area === 'account' && VISITOR_ONLY.test(pattern) && role !== 'visitor') continue;
        pages[role].push(await fillParams(t, w, brandingId, pattern));
      }
    }
    // Pages the route table reaches with other data: results, a user-based license, the end user's home.
    pages.manager.push('/portal/search?q=AAAA', `/portal/licenses/${w.userLicense}`);
    pages.admin.push('/admin/search?q=AAAA', `/admin/licenses/${w.userLicense}`, '/admin/audit?q=branding');
    pages.endUser.push('/portal', `/portal/my/licenses/${w.userLicense}/renewals/new`);
    assert.ok(pages.admin.length > 30 && pages.manager.length > 10, 'the route table gave the pages');

    const accounts: Record<Role, { email: string; password: string } | null> = {
      admin: w.admin,
      manager: w.managerAll,
      endUser: w.endUser,
      visitor: null,
    };
    const failures: string[] = [];
    for (const role of Object.keys(pages) as Role[]) {
      const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
      const page = await context.newPage();
      try {
        const account = accounts[role];
        if (account) await logInAs(page, url, account);
        for (const path of pages[role]) {
          const response = await page.goto(url + path);
          const type = response?.headers()['content-type'] ?? '';
          if (!type.startsWith('text/html')) {
            failures.push(`${role} ${path}: ${response?.status()} ${type}, not a page (list it in NOT_PAGES?)`);
            continue;
          }
          if (response!.status() >= 500) failures.push(`${role} ${path}: ${response!.status()}`);
          const o = await overflow(page);
          // Also what a scrolling box would hide off to the right (a table's Actions column, say).
          if (o.scrollWidth > o.width || o.wide.length)
            failures.push(`${role} ${path}: ${o.scrollWidth} px wide; past the edge: ${o.wide.join(', ')}`);
        }
      } finally {
        await context.close();
      }
    }
    assert.deepEqual(failures, []);
  });

  it('on a phone the device table is a list of cards, each with its actions on screen; keys wrap between groups', async () => {
    const { browser, url } = app;
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    try {
      await logInAs(page, url, w.managerAll);
      await page.goto(`${url}/portal/licenses/${w.licenseA}`);
      const move = page.getByRole('link', { name: 'Move to another device' });
      const box = (await move.boundingBox())!;
      assert.ok(box.x >= 0 && box.x + box.width <= 390, `the action is on screen (${box.x}+${box.width})`);
      assert.equal(
        await page.locator('#devices-heading ~ .table-wrap td').first().getAttribute('data-label'),
        'Hardware id',
      );
      const display = await page.evaluate(
        `getComputedStyle(document.querySelector('#devices-heading ~ .table-wrap tbody tr')).display`,
      );
      assert.equal(display, 'block');
      // The key in the heading wraps between groups only: every line but the last ends with a dash.
      const lines = (await page.evaluate(`(() => {
        const text = document.querySelector('h1 .license-key').firstChild;
        const byTop = new Map();
        for (let i = 0; i < text.length; i++) {
          const r = document.createRange();
          r.setStart(text, i);
          r.setEnd(text, i + 1);
          const top = Math.round(r.getBoundingClientRect().top);
          byTop.set(top, (byTop.get(top) || '') + text.data[i]);
        }
        return [...byTop.values()];
      })()`)) as string[];
      assert.ok(lines.length >= 2 && lines.length <= 3, `the key takes ${lines.length} lines: ${lines.join(' | ')}`);
      for (const line of lines.slice(0, -1))
        assert.match(line, /^([A-Z0-9]{4}-)+$/, `whole groups per line: ${lines.join(' | ')}`);
      const text = await page.locator('h1 .license-key').textContent();
      assert.equal(text, 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA');
      assert.ok(await page.getByRole('button', { name: 'Copy key' }).isVisible(), 'the copy button is shown');
    } finally {
      await context.close();
    }
  });

  it('axe finds no violations on the main pages of each role, in light and in dark mode', async () => {
    const { browser, url } = app;
    const byRole: [{ email: string; password: string } | null, string[]][] = [
      [null, ['/login', '/offline', '/airgap', '/redeem', '/password/forgot']],
      [w.endUser, ['/portal', '/account']],
      [
        w.managerAll,
        [
          '/portal',
          '/portal/orders',
          `/portal/orders/${w.orderA}`,
          `/portal/orders/${w.orderA}/dispatch`,
          `/portal/orders/${w.orderA}/vouchers`,
          `/portal/licenses/${w.licenseA}`,
          `/portal/licenses/${w.userLicense}`,
          '/portal/team',
          '/portal/search?q=AAAA',
        ],
      ],
      [
        w.admin,
        [
          '/admin',
          '/admin/products',
          `/admin/products/${w.product}`,
          '/admin/orders',
          `/admin/orders/${w.orderA}`,
          `/admin/licenses/${w.licenseA}`,
          '/admin/vouchers',
          '/admin/managers',
          `/admin/brandings/${brandingId}`,
          `/admin/brandings/${brandingId}/edit`,
          '/admin/audit',
          '/admin/settings',
        ],
      ],
    ];
    const failures: string[] = [];
    for (const scheme of ['light', 'dark'] as const) {
      for (const [account, paths] of byRole) {
        const { page, problems, close } = await openPage(browser);
        await page.emulateMedia({ colorScheme: scheme });
        try {
          if (account) await logInAs(page, url, account);
          for (const path of paths) {
            await page.goto(url + path);
            for (const v of await axeViolations(page)) failures.push(`${scheme} ${path}: ${v}`);
          }
          // The same at phone width, where tables are cards.
          await page.setViewportSize({ width: 390, height: 844 });
          for (const path of paths.slice(0, 4)) {
            await page.goto(url + path);
            for (const v of await axeViolations(page)) failures.push(`${scheme} phone ${path}: ${v}`);
          }
          failures.push(...problems.map((p) => `${scheme}: ${p}`));
        } finally {
          await close();
        }
      }
    }
    assert.deepEqual(failures, []);
  });
});
