import * as client from 'openid-client';
import type * as idp from '../models/identity-providers.ts';
import type { SecretBox } from '../crypto/secret-box.ts';
import { outboundFetch } from '../lib/outbound-fetch.ts';
import { SsoRefused, secretContext, type VerifiedIdentity } from './sso.ts';
import type { ServiceDeps } from './context.ts';

/**
 * OpenID Connect (authorization code flow with PKCE S256, `state` and `nonce`; the `openid-client`
 * package). The provider's documents are fetched through lib/outbound-fetch.ts (the webhook targets'
 * rules). Tokens are checked against the app's clock with CLOCK_TOLERANCE_SECONDS of skew.
 */
export const CLOCK_TOLERANCE_SECONDS = 60;

export interface OidcDeps extends ServiceDeps {
  secretBox: SecretBox;
  allowPrivate: boolean;
}

/** What the session keeps between the redirect to the provider and its answer. */
export interface OidcPending {
  providerId: number;
  state: string;
  nonce: string;
  verifier: string;
}

async function configFor(deps: OidcDeps, provider: idp.IdentityProvider): Promise<client.Configuration> {
  const secret = provider.oidcClientSecret
    ? deps.secretBox.open(provider.oidcClientSecret, secretContext(provider.id))
    : null;
  if (!provider.oidcIssuer || !provider.oidcClientId) throw new SsoRefused('provider_error', 'not configured');
  const issuer = new URL(provider.oidcIssuer);
  try {
    return await client.discovery(
      issuer,
      provider.oidcClientId,
      {
        ...(secret ? { client_secret: secret } : {}),
        // The app's clock (a test's manual clock) against the real one: tokens are judged by the app's time.
        [client.clockSkew]: Math.round((deps.clock.now().getTime() - Date.now()) / 1000),
        [client.clockTolerance]: CLOCK_TOLERANCE_SECONDS,
      },
      secret ? client.ClientSecretPost(secret) : client.None(),
      {
        [client.customFetch]: outboundFetch({ allowPrivate: deps.allowPrivate }) as typeof fetch,
        // http: only where the operator allows private targets (an intranet provider); see docs/sso.md.
        execute: issuer.protocol === 'http:' && deps.allowPrivate ? [client.allowInsecureRequests] : [],
        timeout: 10,
      },
    );
  } catch (err) {
    throw new SsoRefused('provider_error', errorText(err));
  }
}

const errorText = (err: unknown) => {
  const e = err as { code?: string; message?: string; cause?: { message?: string } };
  return [e.code, e.message, e.cause?.message].filter(Boolean).join(': ').slice(0, 300);
};

/** The URL to send the person to, and what to keep in their session until they come back. */
export async function startOidc(
  deps: OidcDeps,
  provider: idp.IdentityProvider,
  redirectUri: string,
  loginHint: string | null,
): Promise<{ url: string; pending: OidcPending }> {
  const config = await configFor(deps, provider);
  const verifier = client.randomPKCECodeVerifier();
  const pending: OidcPending = {
    providerId: provider.id,
    state: client.randomState(),
    nonce: client.randomNonce(),
    verifier,
  };
  const params: Record<string, string> = {
    redirect_uri: redirectUri,
    scope: provider.oidcScopes || 'openid email profile',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state: pending.state,
    nonce: pending.nonce,
  };
  if (loginHint) params.login_hint = loginHint;
  return { url: client.buildAuthorizationUrl(config, params).href, pending };
}

const groupsFrom = (value: unknown): string[] =>
  Array.isArray(value) ? value.map(String) : typeof value === 'string' ? value.split(/[\s,]+/).filter(Boolean) : [];

/**
 * The provider's answer (the callback URL): the code is exchanged with the PKCE verifier; the ID
 * token's signature, issuer, audience, expiry and nonce are checked by openid-client. The e-mail and
 * groups come from the ID token, completed by the userinfo endpoint.
 */
export async function finishOidc(
  deps: OidcDeps,
  provider: idp.IdentityProvider,
  pending: OidcPending,
  callbackUrl: URL,
): Promise<{ identity: VerifiedIdentity; endSessionUrl: string | null }> {
  if (callbackUrl.searchParams.get('state') !== pending.state) throw new SsoRefused('state_mismatch');
  const error = callbackUrl.searchParams.get('error');
  if (error) throw new SsoRefused('provider_error', error);
  const config = await configFor(deps, provider);
  let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
  try {
    tokens = await client.authorizationCodeGrant(config, callbackUrl, {
      pkceCodeVerifier: pending.verifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      idTokenExpected: true,
    });
  } catch (err) {
    throw new SsoRefused('invalid_response', errorText(err));
  }
  const claims = tokens.claims()!;
  let all: Record<string, unknown> = { ...claims };
  if ((!all.email || all[provider.groupsClaim] === undefined) && tokens.access_token) {
    try {
      const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
      all = { ...info, ...all };
    } catch (err) {
      throw new SsoRefused('invalid_response', errorText(err));
    }
  }
  if (all.email_verified === false) throw new SsoRefused('email_missing', 'email not verified');
  let endSessionUrl: string | null = null;
  if (config.serverMetadata().end_session_endpoint && tokens.id_token)
    endSessionUrl = client.buildEndSessionUrl(config, { id_token_hint: tokens.id_token }).href;
  return {
    identity: {
      subject: String(claims.sub),
      email: typeof all.email === 'string' ? all.email : null,
      name: typeof all.name === 'string' ? all.name : null,
      groups: groupsFrom(all[provider.groupsClaim]),
    },
    endSessionUrl,
  };
}
