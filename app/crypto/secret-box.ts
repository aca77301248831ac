import crypto from 'node:crypto';
import { readOrCreateSecretFile } from '../lib/session-secret.ts';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Encrypts small secrets that the server must read back (TOTP secrets) with AES-256-GCM, so a copy of
 * the database alone does not reveal them. `context` (such as `totp:<account id>`) is authenticated
 * with the text: a value copied to another row or purpose does not open.
 */
export class SecretBox {
  private key: Buffer | undefined;

  constructor(private readonly loadKey: () => Buffer) {}

  private currentKey(): Buffer {
    this.key ??= this.loadKey();
    if (this.key.length !== 32) throw new Error('the secret box key must be 32 bytes');
    return this.key;
  }

  seal(plain: string, context: string): string {
    const iv = crypto.randomBytes(IV_BYTES);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.currentKey(), iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `${VERSION}.${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
  }

  /**
   * A MAC of `text` with a key derived (HKDF) from the box's key for `purpose`: for links that must
   * prove they were made here (one-click unsubscribe) without storing anything.
   */
  tag(text: string, purpose: string): string {
    const key = Buffer.from(crypto.hkdfSync('sha256', this.currentKey(), Buffer.alloc(0), `portico:${purpose}`, 32));
    return crypto.createHmac('sha256', key).update(text, 'utf8').digest().subarray(0, 16).toString('base64url');
  }

  /** The plain text, or null when the value is damaged, from another key or sealed for another context. */
  open(sealed: string, context: string): string | null {
    const [version, payload] = sealed.split('.');
    if (version !== VERSION || !payload) return null;
    const raw = Buffer.from(payload, 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) return null;
    try {
      const decipher = crypto.createDecipheriv('aes-256-gcm', this.currentKey(), raw.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      return null;
    }
  }
}

/** The box whose key lives in DATA_DIR/secret-box.key (0600), beside the signing keys and created on first use. */
export function dataDirSecretBox(dataDir: string): SecretBox {
  return new SecretBox(() =>
    Buffer.from(
      readOrCreateSecretFile(dataDir, 'secret-box.key', () => crypto.randomBytes(32).toString('base64url')),
      'base64url',
    ),
  );
}
