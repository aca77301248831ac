import { createRequire } from 'node:module';
import { PNG } from 'pngjs';

type JsQR = (data: Uint8ClampedArray, width: number, height: number) => { data: string } | null;
// jsqr is CommonJS with a `default` export; require() reads it the same way under every loader.
const jsQR = (createRequire(import.meta.url)('jsqr') as { default: JsQR }).default;

/** Decodes a QR code from a PNG (bytes, or a data: URL) with a registry QR reader. */
export function decodeQrPng(png: Buffer | string): string | null {
  const bytes = typeof png === 'string' ? Buffer.from(png.replace(/^data:image\/png;base64,/, ''), 'base64') : png;
  const image = PNG.sync.read(bytes);
  return jsQR(new Uint8ClampedArray(image.data), image.width, image.height)?.data ?? null;
}
