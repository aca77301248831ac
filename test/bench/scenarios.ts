/**
 * What the benchmark sends: offline activations (each a real one: a new device, a license with a
 * free seat) and pages of a logged-in manager or admin.
 */
import crypto from 'node:crypto';
import { csrfFrom } from '../helpers/app.ts';
import { makeDevice } from '../helpers/device.ts';
import { fetchOnce, multipartFile, runLoad, type Call, type Figures } from './load.ts';

/** A distinct client address per request (see TRUST_PROXY in processes.ts): 10.x.y.z. */
export const clientAddress = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

const cookieOf = (setCookie: string[] | undefined) => (setCookie ?? []).map((c) => c.split(';')[0]).find((c) => c.startsWith('portico.sid='));

/** Logs in through the real form; returns the session cookie. */
export async function login(base: string, email: string, password: string): Promise<string> {
  const page = await fetchOnce(base, { method: 'GET', path: '/login' });
  const anonymous = cookieOf(page.headers['set-cookie'] as string[] | undefined);
  if (page.status !== 200 || !anonymous) throw new Error(`GET /login: HTTP ${page.status}`);
  const body = Buffer.from(new URLSearchParams({ _csrf: csrfFrom(page.body), email, password }).toString());
  const res = await fetchOnce(base, { method: 'POST', path: '/login', body, headers: { cookie: anonymous, 'content-type': 'application/x-www-form-urlencoded' } });
  const cookie = cookieOf(res.headers['set-cookie'] as string[] | undefined);
  if (res.status !== 303 || !cookie) throw new Error(`login of ${email}: HTTP ${res.status}`);
  return cookie;
}

/** Pre-built multipart uploads of activation requests: device i activates license keys[i % keys.length]. */
export function activationUploads(productCode: string, keys: string[], count: number): { body: Buffer; contentType: string }[] {
  const runId = crypto.randomBytes(3).toString('hex');
  return Array.from({ length: count }, (_, i) => {
    const device = makeDevice(`BENCH-${runId}-${i}`);
    return multipartFile('file', 'activation-request.req', device.activationRequest({ product: productCode, licenseKey: keys[i % keys.length]! }).text);
  });
}

/** Each client opens the offline page once, as a browser would: its session cookie and the form's action (CSRF token in the query). */
async function offlineClients(base: string, n: number): Promise<{ cookie: string; action: string }[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, k) => {
      const page = await fetchOnce(base, { method: 'GET', path: '/offline', headers: { 'x-forwarded-for': clientAddress(1_000_000 + k) } });
      const cookie = cookieOf(page.headers['set-cookie'] as string[] | undefined);
      const action = /<form[^>]*action="([^"]*_csrf=[^"]*)"/.exec(page.body)?.[1]?.replace(/&amp;/g, '&');
      if (page.status !== 200 || !cookie || !action) throw new Error(`GET /offline: HTTP ${page.status}, no session or no form`);
      return { cookie, action };
    }),
  );
}

/** POST /offline/requests with one upload after another; what a browser sends when the user drops a request file. */
export async function offlineActivations(o: { base: string; concurrency: number; uploads: { body: Buffer; contentType: string }[]; warmup: number; maxSeconds: number; cpu?: () => number[] }): Promise<Figures> {
  const clients = await offlineClients(o.base, o.concurrency);
  const sample = await fetchOnce(o.base, uploadCall(clients[0]!, o.uploads[0]!, 0));
  if (sample.status !== 200 || !/License activated/.test(sample.body)) throw new Error(`offline activation does not work: HTTP ${sample.status} ${sample.body.slice(0, 500)}`);
  return runLoad({
    base: o.base,
    concurrency: o.concurrency,
    warmup: o.warmup,
    maxRequests: o.uploads.length - o.warmup - 1,
    maxSeconds: o.maxSeconds,
    cpu: o.cpu,
    call: (i, c) => uploadCall(clients[c]!, o.uploads[i + 1]!, i + 1),
  });
}

function uploadCall(client: { cookie: string; action: string }, upload: { body: Buffer; contentType: string }, i: number): Call {
  return { method: 'POST', path: client.action, body: upload.body, headers: { cookie: client.cookie, 'content-type': upload.contentType, 'x-forwarded-for': clientAddress(i) } };
}

/** The no-database baseline server takes the same uploads (it needs neither session nor token). */
export function baselineActivations(o: { base: string; concurrency: number; uploads: { body: Buffer; contentType: string }[]; maxRequests: number; maxSeconds: number; cpu?: () => number[] }): Promise<Figures> {
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
export async function pages(o: { base: string; cookie: string; paths: string[]; concurrency: number; maxRequests: number; maxSeconds: number; warmup?: number; mustContain?: RegExp; cpu?: () => number[] }): Promise<Figures> {
  const first = await fetchOnce(o.base, { method: 'GET', path: o.paths[0]!, headers: { cookie: o.cookie } });
  if (first.status !== 200 || (o.mustContain && !o.mustContain.test(first.body))) throw new Error(`GET ${o.paths[0]}: HTTP ${first.status}, not the expected page`);
  return runLoad({ base: o.base, concurrency: o.concurrency, maxRequests: o.maxRequests, maxSeconds: o.maxSeconds, warmup: o.warmup, cpu: o.cpu, call: (i) => ({ method: 'GET', path: o.paths[i % o.paths.length]!, headers: { cookie: o.cookie } }) });
}
