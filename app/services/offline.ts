import fs from 'node:fs/promises';
import type yauzl from 'yauzl';
import {
  ActivationError,
  activate,
  deactivate,
  deactivationReceipt,
  licenseFile,
  requestActivationInput,
  signedByRegisteredDevice,
  type ActivationDeps,
} from './activation.ts';
import { ArtifactError, readSignedRequest } from './requests.ts';
import { redeemAndActivate } from './vouchers.ts';
import type { Actor } from './context.ts';

export { ArtifactError } from './requests.ts';

/**
 * The offline portal's work between an uploaded file and the activation service: read the request
 * (requests.ts: signature and shape, refusals recorded), call the one activation service, and
 * describe the outcome.
 */

export const MAX_REQUEST_BYTES = 64 * 1024;
export const MAX_ZIP_BYTES = 8 * 1024 * 1024;
export const MAX_ZIP_ENTRIES = 200;
export const MAX_ZIP_TOTAL = 16 * 1024 * 1024;
const MAX_RATIO = 100;

export type Outcome =
  | {
      kind: 'activation';
      deviceId: number;
      repeated: boolean;
      transfer: boolean;
      productName: string;
      licenseKey: string | null;
      licenseType: string;
      expiresAt: Date | null;
      seatsLeft: number | null;
    }
  | {
      kind: 'deactivation';
      deviceId: number;
      nonce: string;
      repeated: boolean;
      productName: string;
      licenseKey: string | null;
    };

export interface Credentials {
  email: string;
  password: string;
}

/** Reads one request file (activation or deactivation) and carries it out. */
export async function processRequest(
  deps: ActivationDeps,
  actor: Actor,
  text: string,
  credentials: Credentials | null,
): Promise<Outcome> {
  const request = await readSignedRequest(deps, actor, 'offline', text, ['activation-request', 'deactivation-request']);
  if (request.typ === 'activation-request') {
    const input = requestActivationInput('offline', request.payload, text, credentials);
    if (!input) throw new ArtifactError('credentials_needed', 401);
    const result = request.payload.voucher
      ? await redeemAndActivate(deps, actor, input, request.payload.voucher)
      : await activate(deps, actor, input);
    const l = result.license;
    return {
      kind: 'activation',
      deviceId: result.device.id,
      repeated: result.repeated,
      transfer: result.transfer,
      productName: l.productName,
      licenseKey: l.licenseKey,
      licenseType: l.licenseType,
      expiresAt: l.expiresAt,
      seatsLeft: l.unlimitedActivations ? null : Math.max(0, l.maxActivations - l.timesActivated),
    };
  }
  const p = request.payload as import('../../sdk/src/payloads.ts').DeactivationRequestPayload;
  const result = await deactivate(deps, actor, {
    channel: 'offline',
    licenseId: p.licenseId,
    activationId: p.activationId,
    hardwareId: p.hardwareId,
    nonce: p.nonce,
    requestHash: request.requestHash,
    usage: p.usage,
    proves: signedByRegisteredDevice(p.devicePublicKey, p.hardwareId, p.activationNonce),
  });
  return {
    kind: 'deactivation',
    deviceId: result.device.id,
    nonce: p.nonce,
    repeated: result.repeated,
    productName: result.license.productName,
    licenseKey: result.license.licenseKey,
  };
}

/** The file to download for an outcome: the license file, or the deactivation receipt. */
export async function outcomeFile(
  deps: ActivationDeps,
  o: { kind: 'activation' | 'deactivation'; deviceId: number; nonce?: string },
): Promise<{ text: string; filename: string }> {
  if (o.kind === 'activation') return licenseFile(deps, o.deviceId);
  return {
    text: await deactivationReceipt(deps, o.deviceId, o.nonce!),
    filename: `deactivation-receipt-${o.deviceId}.txt`,
  };
}

/** Whether an uploaded file (on disk) starts like a ZIP archive. */
export async function isZipFile(file: string): Promise<boolean> {
  const handle = await fs.open(file, 'r');
  try {
    const { bytesRead, buffer } = await handle.read(Buffer.alloc(4), 0, 4, 0);
    return bytesRead === 4 && buffer.readUInt32LE(0) === 0x04034b50;
  } finally {
    await handle.close();
  }
}

/** Opens an uploaded ZIP file for reading its directory and then its entries (closed by the caller). */
// The ZIP libraries load on the first bulk upload, not at start-up (docs/performance.md, "Start-up").
async function openZip(file: string): Promise<yauzl.ZipFile> {
  const { default: unzip } = await import('yauzl');
  return new Promise((resolve, reject) =>
    unzip.open(
      file,
      { lazyEntries: true, validateEntrySizes: true, strictFileNames: false, autoClose: false },
      (err, zip) => (err || !zip ? reject(new ArtifactError('zip_damaged')) : resolve(zip)),
    ),
  );
}

const zipRefusal = (code: 'zip_damaged' | 'zip_too_many' | 'zip_too_large') =>
  new ArtifactError(code, code === 'zip_too_large' ? 413 : 400);

/**
 * The file entries of a ZIP's directory, checked against every limit (entry count, each entry's
 * size and compression ratio, the total) before anything is inflated: a ZIP bomb is refused whole,
 * without being expanded.
 */
function checkedEntries(zip: yauzl.ZipFile): Promise<yauzl.Entry[]> {
  return new Promise((resolve, reject) => {
    const entries: yauzl.Entry[] = [];
    let total = 0;
    zip.on('error', () => reject(zipRefusal('zip_damaged')));
    zip.on('end', () => resolve(entries));
    zip.on('entry', (entry: yauzl.Entry) => {
      if (/\/$/.test(entry.fileName)) return zip.readEntry();
      entries.push(entry);
      total += entry.uncompressedSize;
      if (entries.length > MAX_ZIP_ENTRIES) return reject(zipRefusal('zip_too_many'));
      if (
        entry.uncompressedSize > MAX_REQUEST_BYTES ||
        entry.uncompressedSize > Math.max(1024, entry.compressedSize * MAX_RATIO) ||
        total > MAX_ZIP_TOTAL
      )
        return reject(zipRefusal('zip_too_large'));
      zip.readEntry();
    });
    zip.readEntry();
  });
}

/** One entry's text, inflated with its size checked again as it inflates (an entry may lie about it). */
function inflate(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<string> {
  return new Promise((resolve, reject) => {
    zip.openReadStream(entry, (err, stream) => {
      if (err || !stream) return reject(zipRefusal('zip_damaged'));
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_REQUEST_BYTES) {
          stream.destroy();
          return reject(zipRefusal('zip_too_large'));
        }
        chunks.push(c);
      });
      stream.on('error', () => reject(zipRefusal('zip_damaged')));
      stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
  });
}

export interface BulkRow {
  name: string;
  outcome: Outcome | null;
  error: string | null;
}

/**
 * Processes every request of an uploaded ZIP file with the same rules as a single upload; one
 * failure does not stop the rest. The directory is checked whole first (checkedEntries); then each
 * file is inflated and carried out before the next is read, so one request at a time is in memory.
 */
export async function processZip(deps: ActivationDeps, actor: Actor, file: string): Promise<BulkRow[]> {
  const zip = await openZip(file);
  try {
    const entries = await checkedEntries(zip);
    if (!entries.length) throw new ArtifactError('zip_empty');
    const rows: BulkRow[] = [];
    for (const entry of entries) {
      const name = entry.fileName.split('/').pop()!.slice(0, 200);
      try {
        rows.push({ name, outcome: await processRequest(deps, actor, await inflate(zip, entry), null), error: null });
      } catch (err) {
        if (err instanceof ArtifactError || err instanceof ActivationError)
          rows.push({ name, outcome: null, error: err.code });
        else throw err;
      }
    }
    return rows;
  } finally {
    zip.close();
  }
}

/** The answer files of a bulk upload as one ZIP (names follow the request files). */
export async function resultZip(
  deps: ActivationDeps,
  rows: { name: string; kind: 'activation' | 'deactivation'; deviceId: number; nonce?: string }[],
): Promise<Buffer> {
  const { default: yazl } = await import('yazl');
  const zip = new yazl.ZipFile();
  const used = new Set<string>();
  for (const r of rows) {
    let file: { text: string; filename: string };
    try {
      file = await outcomeFile(deps, r);
    } catch (err) {
      // An activation that ended since the upload gets no license file; the others still do.
      if (err instanceof ActivationError && err.code === 'activation_inactive') continue;
      throw err;
    }
    let name = `${r.name.replace(/\.[^.]*$/, '').replace(/[^\w.-]/g, '_') || 'request'}${r.kind === 'activation' ? '.lic' : '-receipt.txt'}`;
    for (let i = 2; used.has(name); i++) name = name.replace(/(-\d+)?(\.[^.]+)$/, `-${i}$2`);
    used.add(name);
    zip.addBuffer(Buffer.from(file.text), name);
  }
  if (!used.size) throw new ActivationError('activation_inactive', 410);
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
