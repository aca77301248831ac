/**
 * A small closed-loop load generator on plain `http`: `concurrency` clients, each with its own
 * keep-alive connection, send requests back to back until a request count or a time limit is
 * reached (both always bounded). Loopback only: the base URL is checked.
 */
import fs from 'node:fs';
import http from 'node:http';

export interface Call {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
}

export interface LoadOptions {
  /** The server, or several serving the same database: client n then talks to base[n % base.length]. */
  base: string | string[];
  concurrency: number;
  /** Upper bounds of the measured phase: whichever comes first ends it. */
  maxRequests: number;
  maxSeconds: number;
  /** Requests sent before the measured phase (compiled views, prepared statements, JIT). */
  warmup?: number;
  /** The i-th request (0-based over warm-up and measurement) for client number `client`. */
  call: (i: number, client: number) => Call;
  expectStatus?: number;
  /** Cumulative CPU milliseconds of the processes doing the work (server, database server), read around the measured phase. */
  cpu?: () => number[];
  /**
   * Paced (open loop) instead of back to back: the clients together send this many requests per
   * second, so latencies are those of a server that is not saturated.
   */
  ratePerSecond?: number;
  /**
   * A second request that completes the same piece of work, made from the first answer's body (the
   * download behind the link of a result page): one iteration is then both, timed together, and
   * fails unless both answer `expectStatus`.
   */
  followUp?: (body: string, i: number, client: number) => Call | undefined;
  /** Ends the measured phase early once it returns true (checked before each request). */
  until?: () => boolean;
}

export interface Figures {
  /** Requests sent in the measured phase, and how many of them got an unexpected answer. */
  requests: number;
  failed: number;
  seconds: number;
  /** Expected answers per second (failures do not count). */
  rps: number;
  p50: number;
  p99: number;
  /** Answers with the expected status, warm-up included (what the server really did). */
  okTotal: number;
  /** CPU milliseconds per measured request of each process `cpu` named: robust where wall time is noisy. */
  cpuMs?: number[];
  /** The first unexpected answer, for the report. */
  firstFailure?: string;
}

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function send(base: URL, agent: http.Agent, c: Call, keepBody = false): Promise<{ status: number; body?: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...c.headers };
    if (c.body) headers['content-length'] = c.body.length;
    const req = http.request(
      { host: base.hostname, port: base.port, method: c.method, path: c.path, agent, headers },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status < 400 && !keepBody) {
          res.resume();
          res.on('end', () => resolve({ status }));
          return;
        }
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (body.length < (keepBody ? 1_000_000 : 4000)) body += d;
        });
        res.on('end', () => resolve({ status, body }));
      },
    );
    req.on('error', reject);
    req.end(c.body);
  });
}

/** An HTML error page by its title, anything else by its start. */
const summary = (body: string) =>
  (/<title>([^<]*)<\/title>/.exec(body)?.[1] ?? body).replace(/\s+/g, ' ').slice(0, 200);

export async function runLoad(o: LoadOptions): Promise<Figures> {
  const bases = (Array.isArray(o.base) ? o.base : [o.base]).map((b) => new URL(b));
  for (const base of bases)
    if (!['127.0.0.1', 'localhost', '[::1]'].includes(base.hostname))
      throw new Error(`benchmarks run on loopback only, not ${base.hostname}`);
  const expect = o.expectStatus ?? 200;
  const agents = Array.from({ length: o.concurrency }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
  let next = 0;
  let failed = 0;
  let okTotal = 0;
  let firstFailure: string | undefined;

  const phase = async (limit: number, deadline: number, times: number[] | null) => {
    const first = next;
    const phaseStart = Date.now();
    const client = async (n: number) => {
      const base = bases[n % bases.length]!;
      while (next < limit && Date.now() < deadline && !(times && o.until?.())) {
        const i = next++;
        if (o.ratePerSecond) {
          const wait = phaseStart + ((i - first) * 1000) / o.ratePerSecond - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
        let c = o.call(i, n);
        const sent = process.hrtime.bigint();
        let r = await send(base, agents[n]!, c, !!o.followUp).catch((err: Error) => ({ status: 0, body: err.message }));
        const second = r.status === expect && o.followUp ? o.followUp(r.body ?? '', i, n) : undefined;
        if (second) {
          c = second;
          r = await send(base, agents[n]!, c).catch((err: Error) => ({ status: 0, body: err.message }));
        } else if (r.status === expect && o.followUp)
          r = { status: -1, body: 'no follow-up request could be made from the answer' };
        if (times) times.push(Number(process.hrtime.bigint() - sent) / 1e6);
        if (r.status === expect) okTotal += 1;
        else {
          failed += 1;
          firstFailure ??= `${c.method} ${c.path.replace(/\?.*/, '')} → HTTP ${r.status} ${summary(r.body ?? '')}`;
        }
      }
    };
    await Promise.all(agents.map((_, n) => client(n)));
  };

  try {
    const warmup = o.warmup ?? o.concurrency * 5;
    await phase(warmup, Date.now() + Math.min(2, o.maxSeconds) * 1000, null);
    failed = 0;
    const times: number[] = [];
    const cpuBefore = o.cpu?.();
    const started = process.hrtime.bigint();
    await phase(next + o.maxRequests, Date.now() + o.maxSeconds * 1000, times);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpuMs = cpuBefore && o.cpu!().map((after, k) => (after - cpuBefore[k]!) / Math.max(1, times.length));
    times.sort((a, b) => a - b);
    return {
      requests: times.length,
      failed,
      seconds,
      rps: (times.length - failed) / seconds,
      p50: percentile(times, 50),
      p99: percentile(times, 99),
      okTotal,
      cpuMs,
      firstFailure,
    };
  } finally {
    for (const a of agents) a.destroy();
  }
}

const TICKS_PER_SECOND = 100; // USER_HZ, the unit of /proc/<pid>/stat times on Linux

/** CPU time (user + system) a process has used so far, in milliseconds; NaN when it cannot be read. */
export function cpuMsOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

/** One request outside a load run (set-up, sanity checks): status, headers and body. */
export async function fetchOnce(
  base: string,
  c: Call,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...c.headers };
    if (c.body) headers['content-length'] = c.body.length;
    const req = http.request(
      { host: url.hostname, port: url.port, method: c.method, path: c.path, headers, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(c.body);
  });
}

/** A multipart/form-data body with one file field, as a browser sends the offline portal's form. */
export function multipartFile(
  field: string,
  filename: string,
  content: string | Buffer,
): { body: Buffer; contentType: string } {
  const boundary = `----PorticoBench${Math.random().toString(16).slice(2)}`;
  const body = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    ),
    Buffer.from(content),
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}
