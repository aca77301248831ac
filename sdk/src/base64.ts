import { EnvelopeError } from './errors.ts';

/**
 * Strict decoders: one text for one byte string. Node's own decoders skip characters they do not
 * know and ignore non-zero padding bits, so a damaged or re-encoded text could decode to the same
 * bytes; here anything but the canonical encoding is refused.
 */

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

export function encodeBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Standard alphabet, padded, no whitespace. `what` names the field in the error message. */
export function decodeBase64(text: string, what: string): Buffer {
  if (!BASE64.test(text)) throw new EnvelopeError('base64', `${what} is not valid base64`);
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) throw new EnvelopeError('base64', `${what} is not canonical base64`);
  return bytes;
}

/** URL-safe alphabet, unpadded (RFC 4648 §5). `length`, when given, is the exact decoded length. */
export function decodeBase64url(text: string, what: string, length?: number): Buffer {
  if (!BASE64URL.test(text) || text.length % 4 === 1)
    throw new EnvelopeError('base64', `${what} is not valid base64url`);
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) throw new EnvelopeError('base64', `${what} is not canonical base64url`);
  if (length !== undefined && bytes.length !== length) {
    throw new EnvelopeError('base64', `${what} must encode exactly ${length} bytes (got ${bytes.length})`);
  }
  return bytes;
}
