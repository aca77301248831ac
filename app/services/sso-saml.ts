import crypto from 'node:crypto';
import { DOMParser } from '@xmldom/xmldom';
import { SAML, ValidateInResponseTo, type CacheProvider, type Profile } from '@node-saml/node-saml';
import * as idp from '../models/identity-providers.ts';
import { outboundFetch } from '../lib/outbound-fetch.ts';
import { SsoRefused, type VerifiedIdentity } from './sso.ts';
import type { ServiceDeps } from './context.ts';

/**
 * SAML 2.0 (the `@node-saml/node-saml` package as the service provider): HTTP-Redirect to the IdP,
 * HTTP-POST back to the assertion consumer. Assertions must be signed by a certificate of the IdP's
 * metadata; the audience must be this provider's SP entity id; NotBefore/NotOnOrAfter hold with
 * CLOCK_SKEW_MS; InResponseTo must name a request this server made (unsolicited responses are
 * refused); an assertion id is accepted once (sso_once, a unique key), however many processes receive it.
 */
export const CLOCK_SKEW_MS = 60_000;
export const REQUEST_MINUTES = 10;
/** How long the assertion consumer's result waits for the browser to come back with it. */
export const RESULT_MINUTES = 5;

export interface SamlUrls {
  entityId: string;
  acsUrl: string;
}

export const spUrls = (baseUrl: string, providerId: number): SamlUrls => ({
  entityId: `${baseUrl}/sso/${providerId}/saml/metadata`,
  acsUrl: `${baseUrl}/sso/${providerId}/saml/acs`,
});

/** node-saml's request-id cache in sso_once: a request made by one process is known to all. */
function cacheIn(deps: ServiceDeps, providerId: number, made: string[] = []): CacheProvider {
  const key = (id: string) => `saml-req:${providerId}:${id}`.slice(0, 190);
  return {
    async saveAsync(id, value) {
      made.push(id);
      const ok = await idp.putOnce(
        deps.db,
        key(id),
        value,
        new Date(deps.clock.now().getTime() + REQUEST_MINUTES * 60_000),
      );
      return ok ? { value, createdAt: deps.clock.now().getTime() } : null;
    },
    async getAsync(id) {
      return (await idp.getOnce(deps.db, key(id), deps.clock.now())) ?? null;
    },
    async removeAsync(id) {
      if (!id) return null;
      return (await idp.takeOnce(deps.db, key(id), deps.clock.now())) ?? null;
    },
  };
}

function samlFor(deps: ServiceDeps, provider: idp.IdentityProvider, baseUrl: string, made?: string[]): SAML {
  const certs = (provider.samlCertificates ?? '')
    .split('\n')
    .map((c) => c.trim())
    .filter(Boolean);
  if (!provider.samlSsoUrl || !certs.length) throw new SsoRefused('provider_error', 'not configured');
  const urls = spUrls(baseUrl, provider.id);
  return new SAML({
    callbackUrl: urls.acsUrl,
    entryPoint: provider.samlSsoUrl,
    issuer: urls.entityId,
    audience: urls.entityId,
    idpCert: certs,
    ...(provider.samlEntityId ? { idpIssuer: provider.samlEntityId } : {}),
    wantAssertionsSigned: true,
    wantAuthnResponseSigned: false,
    acceptedClockSkewMs: CLOCK_SKEW_MS,
    validateInResponseTo: ValidateInResponseTo.always,
    requestIdExpirationPeriodMs: REQUEST_MINUTES * 60_000,
    cacheProvider: cacheIn(deps, provider.id, made),
    identifierFormat: null,
    disableRequestedAuthnContext: true,
  });
}

/** The redirect to the IdP and the request id the browser's session must hold when the answer comes. */
export async function startSaml(deps: ServiceDeps, provider: idp.IdentityProvider, baseUrl: string) {
  const made: string[] = [];
  const url = await samlFor(deps, provider, baseUrl, made).getAuthorizeUrlAsync('', undefined, {});
  return { url, requestId: made[0]! };
}

const firstString = (v: unknown): string | null =>
  typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : null;

const EMAIL_ATTRIBUTES = [
  'email',
  'mail',
  'urn:oid:0.9.2342.19200300.100.1.3',
  'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress',
];
const NAME_ATTRIBUTES = ['displayName', 'name', 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name'];

/** The assertion ids and the latest NotOnOrAfter of an unverified response (only to refuse a replay early). */
function assertionFacts(xml: string) {
  const doc = new DOMParser().parseFromString(xml, 'text/xml');
  const ids: string[] = [];
  for (const a of Array.from(doc.getElementsByTagNameNS('urn:oasis:names:tc:SAML:2.0:assertion', 'Assertion')))
    if (a.getAttribute('ID')) ids.push(a.getAttribute('ID')!);
  return ids;
}

/**
 * The assertion consumer: validates the POSTed response and keeps the identity for the browser's
 * next request (the POST comes cross-site without the session cookie). Returns the one-time token
 * that request brings back.
 */
export async function consumeSaml(
  deps: ServiceDeps,
  provider: idp.IdentityProvider,
  baseUrl: string,
  samlResponse: string,
): Promise<string> {
  let xml: string;
  try {
    xml = Buffer.from(samlResponse, 'base64').toString('utf8');
  } catch {
    throw new SsoRefused('invalid_response', 'not base64');
  }
  const ids = (() => {
    try {
      return assertionFacts(xml);
    } catch {
      return [];
    }
  })();
  const onceKey = (id: string) => `saml-assertion:${provider.id}:${id}`.slice(0, 190);
  for (const id of ids) if (await idp.hasOnce(deps.db, onceKey(id))) throw new SsoRefused('replayed', id);
  let profile: Profile | null;
  try {
    ({ profile } = await samlFor(deps, provider, baseUrl).validatePostResponseAsync({ SAMLResponse: samlResponse }));
  } catch (err) {
    throw new SsoRefused('invalid_response', (err as Error).message);
  }
  if (!profile) throw new SsoRefused('invalid_response', 'no profile');
  const assertionId = String(
    (profile.getAssertion?.() as { Assertion?: { $?: { ID?: string } } })?.Assertion?.$?.ID ?? ids[0] ?? '',
  );
  const now = deps.clock.now();
  // Kept a day: longer than any assertion's validity window plus the skew.
  if (!assertionId || !(await idp.putOnce(deps.db, onceKey(assertionId), null, new Date(now.getTime() + 86_400_000))))
    throw new SsoRefused('replayed', assertionId);
  const email =
    EMAIL_ATTRIBUTES.map((a) => firstString(profile[a])).find(Boolean) ??
    (profile.nameID?.includes('@') ? profile.nameID : null);
  const raw = profile[provider.groupsClaim];
  const identity: VerifiedIdentity = {
    subject: `${profile.issuer}|${profile.nameID}`.slice(0, 255),
    email: email ?? null,
    name: NAME_ATTRIBUTES.map((a) => firstString(profile[a])).find(Boolean) ?? null,
    groups: Array.isArray(raw) ? raw.map(String) : typeof raw === 'string' ? [raw] : [],
  };
  const inResponseTo = String(
    (
      profile.getAssertion?.() as {
        Assertion?: {
          Subject?: { SubjectConfirmation?: { SubjectConfirmationData?: { $?: { InResponseTo?: string } }[] }[] }[];
        };
      }
    )?.Assertion?.Subject?.[0]?.SubjectConfirmation?.[0]?.SubjectConfirmationData?.[0]?.$?.InResponseTo ?? '',
  );
  const token = crypto.randomBytes(24).toString('base64url');
  await idp.putOnce(
    deps.db,
    `saml-result:${token}`,
    JSON.stringify({ providerId: provider.id, inResponseTo, identity }),
    new Date(now.getTime() + RESULT_MINUTES * 60_000),
  );
  return token;
}

/** The identity the assertion consumer kept for `token` (once), and the request it answered. */
export async function takeSamlResult(deps: ServiceDeps, token: string) {
  if (!/^[\w-]{20,64}$/.test(token)) return undefined;
  const value = await idp.takeOnce(deps.db, `saml-result:${token}`, deps.clock.now());
  return value
    ? (JSON.parse(value) as { providerId: number; inResponseTo: string; identity: VerifiedIdentity })
    : undefined;
}

export function spMetadata(deps: ServiceDeps, provider: idp.IdentityProvider, baseUrl: string): string {
  const urls = spUrls(baseUrl, provider.id);
  return new SAML({
    callbackUrl: urls.acsUrl,
    issuer: urls.entityId,
    idpCert: 'unused',
    cacheProvider: cacheIn(deps, provider.id),
    identifierFormat: null,
    wantAssertionsSigned: true,
  }).generateServiceProviderMetadata(null);
}

export interface IdpMetadata {
  entityId: string;
  ssoUrl: string;
  certificates: string[];
}

/** The IdP's entity id, HTTP-Redirect single sign-on URL and signing certificates from its metadata XML. */
export function parseIdpMetadata(xml: string): IdpMetadata | null {
  try {
    const errors: string[] = [];
    const doc = new DOMParser({
      onError: (level, msg) => (level !== 'warning' ? errors.push(msg) : undefined),
    }).parseFromString(xml, 'text/xml');
    if (errors.length) return null;
    const md = 'urn:oasis:names:tc:SAML:2.0:metadata';
    const entity = doc.getElementsByTagNameNS(md, 'EntityDescriptor')[0];
    const descriptor = doc.getElementsByTagNameNS(md, 'IDPSSODescriptor')[0];
    if (!entity || !descriptor) return null;
    const sso = Array.from(descriptor.getElementsByTagNameNS(md, 'SingleSignOnService')).find(
      (s) => s.getAttribute('Binding') === 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
    );
    const certificates = Array.from(descriptor.getElementsByTagNameNS(md, 'KeyDescriptor'))
      .filter((k) => !k.getAttribute('use') || k.getAttribute('use') === 'signing')
      .flatMap((k) => Array.from(k.getElementsByTagNameNS('http://www.w3.org/2000/09/xmldsig#', 'X509Certificate')))
      .map((c) => (c.textContent ?? '').replace(/\s+/g, ''))
      .filter((c) => /^[A-Za-z0-9+/=]{100,}$/.test(c));
    const entityId = entity.getAttribute('entityID');
    const ssoUrl = sso?.getAttribute('Location');
    if (!entityId || !ssoUrl || !/^https?:\/\//.test(ssoUrl) || !certificates.length) return null;
    return { entityId, ssoUrl, certificates: [...new Set(certificates)] };
  } catch {
    return null;
  }
}

/** Fetches IdP metadata from a URL (the webhook targets' rules), at most 1 MB within 10 s. */
export async function fetchIdpMetadata(url: string, allowPrivate: boolean): Promise<IdpMetadata | null> {
  try {
    const res = await outboundFetch({ allowPrivate })(url);
    if (res.status !== 200) return null;
    return parseIdpMetadata(await res.text());
  } catch {
    return null;
  }
}
