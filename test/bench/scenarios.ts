/**
 * What the benchmark sends: offline activations (each a real one: a new device, a license with a
 * free seat) and pages of a logged-in manager or admin.
 */
import crypto from 'node:crypto';
import { csrfFrom } from '../helpers/app.ts';
import { DEVICE_KID, encodeEnvelope, signingInput } from '../../sdk/src/envelope.ts';
import { fetchOnce, multipartFile, runLoad, type Call, type Figures } from './load.ts';

/** A distinct client address per request (see TRUST_PROXY in processes.ts): 10.x.y.z. */
export const clientAddress = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

const cookieOf = (setCookie: string[] | undefined) =>
  (setCookie ?? []).map((c) => c.split(';')[0]).find((c) => c.startsWith('portico.sid='));

/** Logs in through the real form; returns the session cookie. */
export async function login(base: string, email: string, password: string): Promise<string> {
  const page = await fetchOnce(base, { method: 'GET', path: '/login' });
  const anonymous = cookieOf(page.headers['set-cookie'] as string[] | undefined);
  if (page.status !== 200 || !anonymous) throw new Error(`GET /login: HTTP ${page.status}`);
  const body = Buffer.from(new URLSearchParams({ _csrf: csrfFrom(page.body), email, password }).toString());
  const res = await fetchOnce(base, {
    method: 'POST',
    path: '/login',
    body,
    headers: { cookie: anonymous, 'content-type': 'application/x-www-form-urlencoded' },
  });
  const cookie = cookieOf(res.headers['set-cookie'] as string[] | undefined);
  if (res.status !== 303 || !cookie) throw new Error(`login of ${email}: HTTP ${res.status}`);
  return cookie;
}

export interface BenchDevice {
  hardwareId: string;
  devicePublicKey: string;
  privateKey: crypto.KeyObject;
}

/**
 * A device as the SDK makes one: a new Ed25519 key pair and a hardware id (a hash on real machines:
 * random, not a sequence, which would crowd one end of every index on it). The public key string is
 * the end of the SPKI DER encoding, as the SDK's devicePublicKeyString takes it (not a JWK export,
 * which can deadlock Node 20.20 under garbage collection: docs/performance.md). The bench signs with
 * the SDK's envelope pieces (signingInput, encodeEnvelope) directly, without the test helpers.
 */
export function newDevice(): BenchDevice {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  return {
    hardwareId: `HW-${crypto.randomBytes(12).toString('hex')}`,
    devicePublicKey: publicKey.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64url'),
    privateKey,
  };
}

function deviceSigned(typ: 'activation-request' | 'check-request', payload: object, device: BenchDevice): string {
  const payloadBytes = Buffer.from(JSON.stringify(payload), 'utf8');
  const signature = crypto.sign(null, signingInput(typ, DEVICE_KID, payloadBytes), device.privateKey);
  return encodeEnvelope({ typ, kid: DEVICE_KID, payloadBytes, signature });
}

const nonce = () => crypto.randomBytes(16).toString('base64url');

/** An activation request as the SDK makes it (the payload of test/helpers/device.ts). */
export function activationRequest(device: BenchDevice, productCode: string, licenseKey: string): string {
  const { hardwareId, devicePublicKey } = device;
  return deviceSigned(
    'activation-request',
    {
      v: 1,
      product: productCode,
      licenseKey,
      user: null,
      hardwareId,
      hostname: `${hardwareId.toLowerCase()}.example`,
      os: 'BenchOS 1',
      appVersion: '1.0.0',
      devicePublicKey,
      nonce: nonce(),
      createdAt: new Date().toISOString(),
    },
    device,
  );
}

/** A check request of an activated device (License API). */
export function checkRequest(
  device: BenchDevice,
  productCode: string,
  licenseId: number,
  activationId: number,
): string {
  const { hardwareId, devicePublicKey } = device;
  return deviceSigned(
    'check-request',
    {
      v: 1,
      product: productCode,
      licenseId,
      activationId,
      hardwareId,
      devicePublicKey,
      nonce: nonce(),
      createdAt: new Date().toISOString(),
    },
    device,
  );
}

/** Pre-built multipart uploads of activation requests: device i activates license keys[i % keys.length]. */
export function activationUploads(
  productCode: string,
  keys: string[],
  count: number,
): { body: Buffer; contentType: string }[] {
  return Array.from({ length: count }, (_, i) =>
    multipartFile(
      'file',
      'activation-request.req',
      activationRequest(newDevice(), productCode, keys[i % keys.length]!),
    ),
  );
}

/** Each client opens the offline page once, as a browser would: its session cookie and the form's action (CSRF token in the query). */
export async function offlineClients(base: string, n: number): Promise<{ cookie: string; action: string }[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, k) => {
      const page = await fetchOnce(base, {
        method: 'GET',
        path: '/offline',
        headers: { 'x-forwarded-for': clientAddress(1_000_000 + k) },
      });
      const cookie = cookieOf(page.headers['set-cookie'] as string[] | undefined);
      const action = /<form[^>]*action="([^"]*_csrf=[^"]*)"/.exec(page.body)?.[1]?.replace(/&amp;/g, '&');
      if (page.status !== 200 || !cookie || !action)
        throw new Error(`GET /offline: HTTP ${page.status}, no session or no form`);
      return { cookie, action };
    }),
  );
}

/** The license file behind the download link of a result page, fetched as the browser that uploaded. */
function downloadCall(client: { cookie: string }, page: string, i: number): Call | undefined {
  const link = /href="([^"]*\/download\/[^"]+)"/.exec(page)?.[1]?.replace(/&amp;/g, '&');
  return link
    ? { method: 'GET', path: link, headers: { cookie: client.cookie, 'x-forwarded-for': clientAddress(i) } }
    : undefined;
}

/**
 * An offline activation as a person does it: POST /offline/requests with the request file (what a
 * browser sends when the file is dropped), then the download of the signed license file from the
 * result page. One figure per upload + download.
 */
export async function offlineActivations(o: {
  base: string;
  concurrency: number;
  uploads: { body: Buffer; contentType: string }[];
  warmup: number;
  maxSeconds: number;
  cpu?: () => number[];
}): Promise<Figures> {
  const clients = await offlineClients(o.base, o.concurrency);
  const sample = await fetchOnce(o.base, uploadCall(clients[0]!, o.uploads[0]!, 0));
  if (sample.status !== 200 || !/License activated/.test(sample.body))
    throw new Error(`offline activation does not work: HTTP ${sample.status} ${sample.body.slice(0, 500)}`);
  const file = await fetchOnce(
    o.base,
    downloadCall(clients[0]!, sample.body, 0) ?? { method: 'GET', path: '/offline/download/missing' },
  );
  if (file.status !== 200 || !/^-----BEGIN PORTICO LICENSE-----/m.test(file.body))
    throw new Error(`the license file does not download: HTTP ${file.status} ${file.body.slice(0, 300)}`);
  return runLoad({
    base: o.base,
    concurrency: o.concurrency,
    warmup: o.warmup,
    maxRequests: o.uploads.length - o.warmup - 1,
    maxSeconds: o.maxSeconds,
    cpu: o.cpu,
    call: (i, c) => uploadCall(clients[c]!, o.uploads[i + 1]!, i + 1),
    followUp: (page, i, c) => downloadCall(clients[c]!, page, i + 1),
  });
}

function uploadCall(
  client: { cookie: string; action: string },
  upload: { body: Buffer; contentType: string },
  i: number,
): Call {
  return {
    method: 'POST',
    path: client.action,
    body: upload.body,
    headers: { cookie: client.cookie, 'content-type': upload.contentType, 'x-forwarded-for': clientAddress(i) },
  };
}

/** The no-database baseline server takes the same uploads (it needs neither session nor token). */
export function baselineActivations(o: {
  base: string;
  concurrency: number;
  uploads: { body: Buffer; contentType: string }[];
  maxRequests: number;
  maxSeconds: number;
  cpu?: () => number[];
}): Promise<Figures> {
  return runLoad({
    base: o.base,
    concurrency: o.concurrency,
    maxRequests: o.maxRequests,
    maxSeconds: o.maxSeconds,
    cpu: o.cpu,
    call: (i) => {
      const u = o.uploads[i % o.uploads.length]!;
      return { method: 'POST', path: '/offline/requests', body: u.body, headers: { 'content-type': u.contentType } };
    },
  });
}

/** GETs of one or several pages (cycled) with a session cookie; each page is checked once first. */
export async function pages(o: {
  base: string;
  cookie: string;
  paths: string[];
  concurrency: number;
  maxRequests: number;
  maxSeconds: number;
  warmup?: number;
  mustContain?: RegExp;
  cpu?: () => number[];
}): Promise<Figures> {
  const first = await fetchOnce(o.base, { method: 'GET', path: o.paths[0]!, headers: { cookie: o.cookie } });
  if (first.status !== 200 || (o.mustContain && !o.mustContain.test(first.body)))
    throw new Error(`GET ${o.paths[0]}: HTTP ${first.status}, not the expected page`);
  return runLoad({
    base: o.base,
    concurrency: o.concurrency,
    maxRequests: o.maxRequests,
    maxSeconds: o.maxSeconds,
    warmup: o.warmup,
    cpu: o.cpu,
    call: (i) => ({ method: 'GET', path: o.paths[i % o.paths.length]!, headers: { cookie: o.cookie } }),
  });
}
