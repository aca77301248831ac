import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Where a webhook may be sent (docs/webhooks.md, "Allowed targets"). A webhook makes the server send
 * requests to an address someone typed in, so the address is checked as the one ACTUALLY CONNECTED:
 * the host is resolved through `checkedLookup`, which refuses a forbidden address, so a name that
 * resolves to a public address at registration and to 169.254.169.254 at delivery (DNS rebinding)
 * cannot slip past. Never allowed: link-local (cloud metadata services live there), the known metadata
 * addresses outside it, unspecified, broadcast, multicast and every other special range. Loopback and
 * private ranges only when the operator allows them (console → Settings; intranet deployments).
 */

export type AddressClass = 'public' | 'private' | 'refused';

/** Metadata services outside link-local (AWS over IPv6, Alibaba Cloud): refused even when private ranges are allowed. */
const METADATA_ADDRESSES = new Set(['fd00:ec2::254', '100.100.100.200']);

const PRIVATE_RANGES = new Set(['loopback', 'private', 'uniqueLocal', 'carrierGradeNat']);

export function classifyAddress(address: string): AddressClass {
  if (!ipaddr.isValid(address)) return 'refused';
  let ip = ipaddr.parse(address);
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
  if (METADATA_ADDRESSES.has(ip.toNormalizedString()) || METADATA_ADDRESSES.has(ip.toString())) return 'refused';
  const range = ip.range();
  if (range === 'unicast') return 'public';
  return PRIVATE_RANGES.has(range) ? 'private' : 'refused';
}

export const addressAllowed = (address: string, allowPrivate: boolean) => {
  const c = classifyAddress(address);
  return c === 'public' || (c === 'private' && allowPrivate);
};

/** Why a target is refused: the message key of the form's field error. */
export type TargetRefusal =
  | 'webhooks.target.invalid'
  | 'webhooks.target.refusedAddress'
  | 'webhooks.target.unresolvable';

export class TargetRefused extends Error {
  constructor(readonly reason: TargetRefusal) {
    super(reason);
  }
}

/** The URL as a webhook target: http or https, no credentials in it, a host. */
export function parseTarget(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TargetRefused('webhooks.target.invalid');
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || !url.hostname || url.username || url.password)
    throw new TargetRefused('webhooks.target.invalid');
  return url;
}

const bareHost = (hostname: string) => hostname.replace(/^\[|\]$/g, '');

/** Registration: resolves the host now and refuses it when any of its addresses is not allowed. */
export async function assertTargetAllowed(text: string, allowPrivate: boolean): Promise<void> {
  const url = parseTarget(text);
  const host = bareHost(url.hostname);
  let addresses: string[];
  if (net.isIP(host)) addresses = [host];
  else {
    try {
      addresses = (await dns.promises.lookup(host, { all: true, verbatim: true })).map((a) => a.address);
    } catch {
      throw new TargetRefused('webhooks.target.unresolvable');
    }
  }
  if (!addresses.length || !addresses.every((a) => addressAllowed(a, allowPrivate)))
    throw new TargetRefused('webhooks.target.refusedAddress');
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | dns.LookupAddress[],
  family?: number,
) => void;

/** A `lookup` for http(s).request that answers only allowed addresses: the address connected is the one checked. */
export function checkedLookup(allowPrivate: boolean) {
  return (hostname: string, options: dns.LookupOptions, callback: LookupCallback) => {
    dns.lookup(hostname, { ...options, all: true, verbatim: true }, (err, found) => {
      if (err) return callback(err, '');
      const allowed = (found as dns.LookupAddress[]).filter((a) => addressAllowed(a.address, allowPrivate));
      if (!allowed.length) {
        const refused = Object.assign(new Error('webhook target address not allowed'), { code: 'ETARGETREFUSED' });
        return callback(refused, '');
      }
      if (options.all) return callback(null, allowed);
      callback(null, allowed[0]!.address, allowed[0]!.family);
    });
  };
}

export interface PostResult {
  statusCode: number | null;
  /** The start of the response body (text), at most RESPONSE_EXCERPT_BYTES. */
  excerpt: string | null;
  error: string | null;
  durationMs: number;
}

export const RESPONSE_EXCERPT_BYTES = 1024;

/**
 * POSTs a JSON body to a webhook target within `timeoutMs` (connecting, sending and the response
 * together). Redirects are not followed (a 3xx is a failed attempt); only the first KB of the
 * response is read, then the connection is dropped. Never throws: the result says what happened.
 */
export async function postWebhook(
  text: string,
  body: string,
  headers: Record<string, string>,
  opts: { allowPrivate: boolean; timeoutMs: number; now: () => number },
): Promise<PostResult> {
  const started = opts.now();
  const finish = (r: Omit<PostResult, 'durationMs'>): PostResult => ({
    ...r,
    durationMs: Math.max(0, opts.now() - started),
  });
  let url: URL;
  try {
    url = parseTarget(text);
  } catch {
    return finish({ statusCode: null, excerpt: null, error: 'invalid URL' });
  }
  const host = bareHost(url.hostname);
  if (net.isIP(host) && !addressAllowed(host, opts.allowPrivate))
    return finish({ statusCode: null, excerpt: null, error: 'target address not allowed' });
  return new Promise((resolve) => {
    let settled = false;
    const settle = (r: Omit<PostResult, 'durationMs'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(finish(r));
    };
    const client = url.protocol === 'https:' ? https : http;
    const req = client.request(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        'user-agent': 'Portico-Webhooks/1',
        ...headers,
      },
      lookup: checkedLookup(opts.allowPrivate) as unknown as typeof dns.lookup,
      agent: false,
    });
    const timer = setTimeout(
      () => settle({ statusCode: null, excerpt: null, error: `timed out after ${opts.timeoutMs} ms` }),
      opts.timeoutMs,
    );
    req.on('error', (err: NodeJS.ErrnoException) =>
      settle({
        statusCode: null,
        excerpt: null,
        error: err.code === 'ETARGETREFUSED' ? 'target address not allowed' : (err.code ?? err.message).slice(0, 200),
      }),
    );
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () =>
        settle({
          statusCode: res.statusCode ?? null,
          excerpt: Buffer.concat(chunks).subarray(0, RESPONSE_EXCERPT_BYTES).toString('utf8'),
          error: null,
        });
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= RESPONSE_EXCERPT_BYTES) done();
      });
      res.on('end', done);
      res.on('error', done);
    });
    req.end(body);
  });
}
