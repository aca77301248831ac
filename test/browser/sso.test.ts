import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { buildTestApp, type TestApp } from '../helpers/app.ts';
import { axeViolations, browserAvailable, launchBrowser, openPage } from '../helpers/browser.ts';
import { CLIENT_ID, CLIENT_SECRET, startOp, type TestOp } from '../helpers/sso.ts';
import * as catalog from '../../app/models/catalog.ts';
import { saveSettings } from '../../app/models/settings.ts';
import { inTransaction } from '../../app/lib/transaction.ts';
import { dataDirSecretBox } from '../../app/crypto/secret-box.ts';
import { systemActor } from '../../app/services/context.ts';
import * as sso from '../../app/services/sso.ts';
import * as idp from '../../app/models/identity-providers.ts';

/**
 * Single sign-on in Chromium: the login form's e-mail step sends a person of a confirmed domain to the
 * customer's OpenID Provider (oidc-provider on loopback), who signs in on the provider's own login and
 * consent pages and comes back signed in to the portal; logging out offers the provider's end-session URL.
 * The app listens first and is built with its real URL as the base URL (the redirect URI the provider knows).
 */
describe("browser: single sign-on through the OpenID Provider's own login page", function () {
  this.timeout(90_000);
  let t: TestApp;
  let op: TestOp;
  let browser: Browser;
  let server: http.Server;
  let url: string;

  before(async function () {
    if (!browserAvailable()) return this.skip();
    server = http.createServer();
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    t = await buildTestApp({ baseUrl: url });
    server.on('request', t.app);
    op = await startOp(url);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    server?.closeAllConnections();
    server?.close();
    await op?.close();
    await t?.close();
  });

  it('a manager of a confirmed domain signs in at the provider and lands in the portal; logout offers its end-session URL', async () => {
    const now = new Date();
    await inTransaction(t.db, (trx) => saveSettings(trx, { webhookPrivateTargets: true }, now));
    const customer = await catalog.insertCustomer(t.db, { kind: 'company', name: 'Globex' }, now);
    const order = await catalog.insertOrder(t.db, { orderRef: 'ORD-SSO-1', customerId: customer }, now);
    const deps = { ...t.app.locals.ctx, secretBox: dataDirSecretBox(t.dataDir) };
    const actor = systemActor('browser test');
    const providerId = await sso.createProvider(deps, actor, customer, {
      kind: 'oidc',
      name: 'Globex IdP',
      enabled: true,
      groupsClaim: 'groups',
      oidcIssuer: op.issuer,
      oidcClientId: CLIENT_ID,
      oidcClientSecret: CLIENT_SECRET,
      oidcScopes: 'openid email profile groups',
    });
    const provider = (await idp.find(t.db, providerId))!;
    await sso.addDomain(deps, actor, provider, 'globex.test');
    const domain = (await idp.domainsOf(t.db, providerId))[0]!;
    await sso.changeDomain(deps, actor, provider, domain.id, 'verify');
    const managerRole = await t.db('roles').where({ builtin: 'manager' }).first();
    await sso.addMapping(
      deps,
      actor,
      provider,
      { groupName: 'license-admins', kind: 'role', orderId: order, roleId: Number(managerRole.id), licenseId: null },
      null,
    );
    op.people.set('mia@globex.test', { email: 'mia@globex.test', name: 'Mia Manager', groups: ['license-admins'] });

    const { page, problems, close } = await openPage(browser);
    try {
      await page.goto(`${url}/login`);
      await page.getByLabel('E-mail address').fill('mia@globex.test');
      // The e-mail first: no password for an address of a confirmed domain.
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.waitForURL((u) => u.origin === op.issuer);
      // The provider's page imports a web font from the internet, which a test machine cannot resolve.
      assert.deepEqual(
        problems.filter((p) => !p.includes('net::ERR_NAME_NOT_RESOLVED')),
        [],
        'no CSP or script errors on the way out',
      );
      // The provider's own login page (login_hint filled in), then its consent page.
      await page.locator('input[name="password"]').fill('any password');
      await page.getByRole('button', { name: 'Sign-in' }).click();
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.waitForURL((u) => u.origin === url);
      problems.length = 0; // the provider's pages are not ours to judge
      await page.getByRole('heading', { name: 'Welcome, Mia Manager' }).waitFor();
      assert.equal(new URL(page.url()).pathname, '/portal');
      assert.ok(await page.getByRole('cell', { name: 'ORD-SSO-1' }).isVisible());
      assert.deepEqual(await axeViolations(page), [], 'the portal after single sign-on');

      await page.getByRole('button', { name: 'Log out' }).click();
      const endSession = page.getByRole('link', { name: /Sign out at your identity provider too/ });
      await endSession.waitFor();
      assert.ok((await endSession.getAttribute('href'))!.startsWith(`${op.issuer}/session/end`));
      assert.deepEqual(await axeViolations(page), [], 'the login page after logout');
      await page.goto(`${url}/portal`);
      assert.equal(new URL(page.url()).pathname, '/login', 'the Portico session has ended');

      // The e-mail step page: axe-clean too.
      await page.goto(`${url}/login/sso`);
      assert.deepEqual(await axeViolations(page), [], 'the e-mail step');
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });
});
