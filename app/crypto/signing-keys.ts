import crypto from 'node:crypto';
import { rawEd25519PublicKey } from '../../sdk/src/envelope.ts';

/**
 * Ed25519 key material, pure: key pairs, kids and the public key document. Storage is elsewhere
 * (public halves: models/signing-keys.ts; private halves: lib/key-files.ts).
 */

function rawPublicKey(publicKeyPem: string): Buffer {
  return rawEd25519PublicKey(publicKeyObject(publicKeyPem));
}

/** The kid names the key by its own bytes: the first 12 bytes of SHA-256 of the raw public key. */
export function kidFor(publicKeyPem: string): string {
  return `ed25519-${crypto.createHash('sha256').update(rawPublicKey(publicKeyPem)).digest('base64url').slice(0, 16)}`;
}

/** A new Ed25519 key pair as PEM (SPKI public, PKCS#8 private) and its kid. */
export function newKeyPair(): { kid: string; publicKeyPem: string; privateKeyPem: string } {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return {
    kid: kidFor(publicKeyPem),
    publicKeyPem,
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

const publicKeys = new Map<string, crypto.KeyObject>();

/** The key object of a public key PEM, parsed once per process. */
export function publicKeyObject(publicKeyPem: string): crypto.KeyObject {
  let key = publicKeys.get(publicKeyPem);
  if (!key) {
    key = crypto.createPublicKey(publicKeyPem);
    publicKeys.set(publicKeyPem, key);
  }
  return key;
}

/** The public description served at /.well-known/portico-keys.json (JWK fields plus the PEM). */
export function publicKeyDocument(keys: { kid: string; publicKeyPem: string; status: string }[]) {
  return {
    keys: keys.map((k) => ({
      kid: k.kid,
      kty: 'OKP',
      crv: 'Ed25519',
      alg: 'EdDSA',
      use: 'sig',
      x: rawPublicKey(k.publicKeyPem).toString('base64url'),
      status: k.status,
      pem: k.publicKeyPem,
    })),
  };
}
