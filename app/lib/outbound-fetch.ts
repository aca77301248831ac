import type dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { addressAllowed, checkedLookup, parseTarget } from './webhook-target.ts';

/**
 * A `fetch` for requests to addresses someone typed in (an identity provider's discovery document,
 * token endpoint, keys, SAML metadata): the same care as webhook targets (lib/webhook-target.ts) —
 * the address actually connected is checked (no DNS rebinding to 169.254.169.254), loopback and
 * private ranges only when the operator allows them, no redirects followed, at most `maxBytes` read,
 * everything within `timeoutMs`.
 */
export function outboundFetch(opts: { allowPrivate: boolean; timeoutMs?: number; maxBytes?: number }) {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const maxBytes = opts.maxBytes ?? 1024 * 1024;
  return async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = parseTarget(input instanceof Request ? input.url : String(input));
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (net.isIP(host) && !addressAllowed(host, opts.allowPrivate)) throw new TypeError('target address not allowed');
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((v, k) => {
      headers[k] = v;
    });
    let body: Buffer | undefined;
    if (init.body !== undefined && init.body !== null) {
      if (typeof init.body === 'string') body = Buffer.from(init.body);
      else if (init.body instanceof URLSearchParams) {
        body = Buffer.from(init.body.toString());
        headers['content-type'] ??= 'application/x-www-form-urlencoded;charset=UTF-8';
      } else
        body = Buffer.from(await new Response(init.body as ConstructorParameters<typeof Response>[0]).arrayBuffer());
      headers['content-length'] = String(body.length);
    }
    return new Promise<Response>((resolve, reject) => {
      const client = url.protocol === 'https:' ? https : http;
      const req = client.request(url, {
        method: init.method ?? 'GET',
        headers: { 'user-agent': 'Portico-SSO/1', ...headers },
        lookup: checkedLookup(opts.allowPrivate) as unknown as typeof dns.lookup,
        agent: false,
      });
      const timer = setTimeout(() => req.destroy(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      init.signal?.addEventListener('abort', () => req.destroy(new Error('aborted')));
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(new TypeError(`fetch failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        let tooLarge = false;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= maxBytes) return void chunks.push(chunk);
          if (tooLarge) return;
          tooLarge = true;
          clearTimeout(timer);
          reject(new TypeError('fetch failed: response too large'));
          req.destroy();
        });
        res.on('end', () => {
          clearTimeout(timer);
          if (tooLarge) return;
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers))
            if (v !== undefined) for (const one of Array.isArray(v) ? v : [v]) h.append(k, one);
          const status = res.statusCode ?? 502;
          resolve(
            new Response(status === 204 || status === 304 ? null : Buffer.concat(chunks), { status, headers: h }),
          );
        });
        res.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      });
      req.end(body);
    });
  };
}
