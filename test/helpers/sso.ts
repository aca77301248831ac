import http from 'node:http';
import type { AddressInfo } from 'node:net';
// oidc-provider ships no type declarations: the few members the tests use are typed below.
// @ts-expect-error no declaration file
import ProviderModule from 'oidc-provider';
import type { Knex } from 'knex';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';

interface OidcProviderInstance {
  callback(): (req: http.IncomingMessage, res: http.ServerResponse) => void;
  on(event: string, listener: (...args: unknown[]) => void): void;
  use(middleware: (ctx: { path: string; body: unknown }, next: () => Promise<void>) => Promise<void>): void;
}
const Provider = ProviderModule as unknown as new (issuer: string, config: object) => OidcProviderInstance;

export const CLIENT_ID = 'portico-test';
export const CLIENT_SECRET = 'a-client-secret-for-the-test-provider-0123456789';

export interface TestOp {
  issuer: string;
  /** What the provider says about a login (the login name is the account id): e-mail, name, groups. */
  people: Map<string, { email?: string; name?: string; groups?: string[]; email_verified?: boolean }>;
  /**
   * A misbehaving provider: when set, the ID token the token endpoint answers with is re-signed, with
   * the provider's own key, with the claims this returns (a wrong audience, another issuer…).
   */
  tamperIdToken?: (claims: Record<string, unknown>) => Record<string, unknown>;
  close(): Promise<void>;
}

/**
 * A real OpenID Provider (the `oidc-provider` package) on loopback, port 0: its own login and consent
 * pages (devInteractions), PKCE required, one confidential client whose redirect URIs are Portico's
 * callbacks of providers 1–30 at `baseUrl`.
 */
export async function startOp(baseUrl: string): Promise<TestOp> {
  const people: TestOp['people'] = new Map();
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), kid: 'test-op-key', alg: 'RS256', use: 'sig' };
  const op = new Provider(issuer, {
    jwks: { keys: [signingKey] },
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: Array.from({ length: 30 }, (_, i) => `${baseUrl}/sso/${i + 1}/oidc/callback`),
        post_logout_redirect_uris: [`${baseUrl}/login`],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    findAccount: async (_ctx: unknown, sub: string) => ({
      accountId: sub,
      claims: async () => {
        const p = people.get(sub) ?? {};
        return { sub, email: p.email, email_verified: p.email_verified ?? true, name: p.name, groups: p.groups ?? [] };
      },
    }),
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
    scopes: ['openid', 'email', 'profile', 'groups'],
    features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    pkce: { required: () => true },
    cookies: { keys: ['test-cookie-key-0123456789'] },
    ttl: { IdToken: 3600, AccessToken: 3600, AuthorizationCode: 60, Session: 3600, Interaction: 600, Grant: 3600 },
  });
  op.on('server_error', () => {});
  const testOp: TestOp = {
    issuer,
    people,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  op.use(async (ctx, next) => {
    await next();
    const body = ctx.body as { id_token?: string } | undefined;
    if (ctx.path !== '/token' || !testOp.tamperIdToken || !body?.id_token) return;
    body.id_token = await new SignJWT(testOp.tamperIdToken(decodeJwt(body.id_token)))
      .setProtectedHeader({ alg: 'RS256', kid: signingKey.kid })
      .sign(privateKey);
  });
  server.on('request', op.callback());
  return testOp;
}

/** A tiny cookie-keeping client for the provider's pages (the browser's side at the provider). */
export function opBrowser() {
  const jar = new Map<string, string>();
  const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const keep = (res: Response) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      jar.set(pair!.slice(0, eq).trim(), pair!.slice(eq + 1));
    }
  };
  const request = async (url: string, init: RequestInit = {}) => {
    const res = await fetch(url, {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers ?? {}), cookie: cookieHeader() },
    });
    keep(res);
    return res;
  };
  return { request };
}

/**
 * Signs in at the provider as `login`, from Portico's redirect (`authorizeUrl`) to the provider's
 * redirect back: follows its login form and consent form. Returns the callback URL Portico gets.
 */
export async function signInAtOp(authorizeUrl: string, login: string): Promise<URL> {
  const browser = opBrowser();
  let url = authorizeUrl;
  for (let step = 0; step < 12; step++) {
    const res = await browser.request(url);
    if (res.status >= 300 && res.status < 400) {
      const next = new URL(res.headers.get('location')!, url);
      if (!next.href.startsWith(new URL(authorizeUrl).origin)) return next;
      url = next.href;
      continue;
    }
    const html = await res.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    const prompt = /name="prompt" value="(\w+)"/.exec(html)?.[1];
    if (!action || !prompt) throw new Error(`unexpected page at the provider (${res.status}): ${html.slice(0, 300)}`);
    const body = new URLSearchParams(prompt === 'login' ? { prompt, login, password: 'any' } : { prompt });
    const posted = await browser.request(new URL(action.replace(/&amp;/g, '&'), url).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: body.toString(),
    });
    if (posted.status < 300 || posted.status >= 400) throw new Error(`the provider answered ${posted.status}`);
    url = new URL(posted.headers.get('location')!, url).href;
  }
  throw new Error('too many steps at the provider');
}

/** Lets the server fetch from loopback (the test provider), as an intranet installation would. */
export async function allowPrivateTargets(db: Knex) {
  await db('settings').insert({ key: 'webhook_private_targets', value: 'true' });
}
