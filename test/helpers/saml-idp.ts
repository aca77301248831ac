import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { generate } from 'selfsigned';
import { SignedXml } from 'xml-crypto';

/**
 * A signing SAML 2.0 identity provider for the tests: a key pair and self-signed certificate made at
 * test time (nothing committed), its metadata, and the Responses it gives to Portico's AuthnRequests
 * (HTTP-Redirect in, HTTP-POST out) with the assertion signed (RSA-SHA256, exclusive c14n). Options
 * make the deliberately wrong answers the tests need: another audience, an expired assertion, an
 * unsolicited one, a tampered one, one signed by another key.
 */
export interface SamlPerson {
  nameId: string;
  email?: string;
  groups?: string[];
  displayName?: string;
}

export interface AnswerOptions {
  audience?: string;
  /** Minutes from now; negative: the assertion has expired. */
  validMinutes?: number;
  inResponseTo?: string | null;
  /** The key that signs (another IdP's, say). */
  signWith?: { key: string; cert: string };
  /** Changes the signed XML afterwards (a tampered assertion). */
  tamper?: (xml: string) => string;
  unsigned?: boolean;
}

export const IDP_ENTITY_ID = 'https://idp.globex.test/saml';
export const IDP_SSO_URL = 'https://idp.globex.test/saml/sso';

export async function keyPair(commonName = 'idp.globex.test') {
  const pems = await generate([{ name: 'commonName', value: commonName }], { keySize: 2048, algorithm: 'sha256' });
  return { key: pems.private, cert: pems.cert };
}

const certBody = (pem: string) => pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export async function startSamlIdp() {
  const signing = await keyPair();
  const metadata = `<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="${IDP_ENTITY_ID}">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>${certBody(signing.cert)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="${IDP_SSO_URL}"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="${IDP_SSO_URL}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>`;

  /** Reads Portico's AuthnRequest from its redirect URL: its id, issuer (the SP entity id) and ACS URL. */
  function readRequest(redirectUrl: string) {
    const url = new URL(redirectUrl);
    if (`${url.origin}${url.pathname}` !== IDP_SSO_URL) throw new Error(`not sent to the IdP: ${redirectUrl}`);
    const xml = zlib.inflateRawSync(Buffer.from(url.searchParams.get('SAMLRequest')!, 'base64')).toString('utf8');
    return {
      id: /ID="([^"]+)"/.exec(xml)![1]!,
      issuer: /<saml:Issuer[^>]*>([^<]+)<\/saml:Issuer>/.exec(xml)![1]!,
      acs: /AssertionConsumerServiceURL="([^"]+)"/.exec(xml)![1]!,
    };
  }

  /** The IdP's signed answer to the request in `redirectUrl`, base64 as the POST form carries it. */
  function answer(redirectUrl: string, person: SamlPerson, opts: AnswerOptions = {}) {
    const request = readRequest(redirectUrl);
    const now = new Date();
    const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
    const until = new Date(now.getTime() + (opts.validMinutes ?? 5) * 60_000);
    const notBefore = new Date(Math.min(now.getTime(), until.getTime()) - 10 * 60_000);
    const inResponseTo = opts.inResponseTo === undefined ? request.id : opts.inResponseTo;
    const irt = inResponseTo ? ` InResponseTo="${esc(inResponseTo)}"` : '';
    const responseId = `_r${crypto.randomBytes(16).toString('hex')}`;
    const assertionId = `_a${crypto.randomBytes(16).toString('hex')}`;
    const attribute = (name: string, values: string[]) =>
      `<saml:Attribute Name="${esc(name)}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">${values
        .map(
          (v) =>
            `<saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">${esc(v)}</saml:AttributeValue>`,
        )
        .join('')}</saml:Attribute>`;
    const attributes = [
      person.email ? attribute('email', [person.email]) : '',
      person.displayName ? attribute('displayName', [person.displayName]) : '',
      person.groups?.length ? attribute('groups', person.groups) : '',
    ].join('');
    const assertion = `<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${assertionId}" Version="2.0" IssueInstant="${iso(now)}"><saml:Issuer>${IDP_ENTITY_ID}</saml:Issuer><saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">${esc(person.nameId)}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData${irt} NotOnOrAfter="${iso(until)}" Recipient="${esc(request.acs)}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="${iso(notBefore)}" NotOnOrAfter="${iso(until)}"><saml:AudienceRestriction><saml:Audience>${esc(opts.audience ?? request.issuer)}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="${iso(now)}" SessionIndex="${assertionId}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement>${attributes}</saml:AttributeStatement></saml:Assertion>`;
    const response = `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${responseId}" Version="2.0" IssueInstant="${iso(now)}" Destination="${esc(request.acs)}"${irt}><saml:Issuer>${IDP_ENTITY_ID}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>${assertion}</samlp:Response>`;
    let xml = response;
    if (!opts.unsigned) {
      const signer = opts.signWith ?? signing;
      const sig = new SignedXml({
        privateKey: signer.key,
        publicCert: signer.cert,
        signatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
        canonicalizationAlgorithm: 'http://www.w3.org/2001/10/xml-exc-c14n#',
      });
      sig.addReference({
        xpath: "//*[local-name(.)='Assertion']",
        transforms: [
          'http://www.w3.org/2000/09/xmldsig#enveloped-signature',
          'http://www.w3.org/2001/10/xml-exc-c14n#',
        ],
        digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha256',
      });
      sig.computeSignature(response, {
        location: { reference: "//*[local-name(.)='Assertion']/*[local-name(.)='Issuer']", action: 'after' },
      });
      xml = sig.getSignedXml();
    }
    if (opts.tamper) xml = opts.tamper(xml);
    return { samlResponse: Buffer.from(xml).toString('base64'), acs: request.acs, requestId: request.id, assertionId };
  }

  return { metadata, answer, readRequest, signing };
}
