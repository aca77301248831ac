/**
 * The upload flood (docs/performance.md, "Upload flood"): FLOOD_CLIENTS clients each send 8 MiB
 * uploads to POST /offline/requests back to back — first all from one client address already over
 * its limit, then each upload from an address of its own — at a Portico server process of its own,
 * while a logged-in page is timed. Reported next to the same server idle, measured in the same run:
 * its RSS after warm-up against its peak during each flood (VmHWM, restarted before each), the
 * page's latencies, and what the uploads were answered. The body is the largest ZIP the limits
 * allow (largestZip): an upload that gets a slot is streamed to disk, and its every file read and refused.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import yazl from 'yazl';
import { OFFLINE_REQUESTS_PER_CLIENT } from '../../app/controllers/offline.ts';
import { MAX_REQUEST_BYTES, MAX_ZIP_BYTES, MAX_ZIP_ENTRIES } from '../../app/services/offline.ts';
import { multipartFile, type Call, type Figures } from './load.ts';
import { startPortico } from './processes.ts';
import { clientAddress, login, offlineClients, pages } from './scenarios.ts';

export interface FloodRun {
  /** What the uploads were answered ("HTTP 503", or how the connection ended), counted. */
  answers: Record<string, number>;
  uploads: number;
  seconds: number;
  peakRssMb: number;
  page: Figures;
}

export interface FloodFigures {
  clients: number;
  idleRssMb: number;
  idlePage: Figures;
  oneClient: FloodRun;
  manyClients: FloodRun;
  /** Errors the server logged, counted by message (a busy refusal is logged as an error). */
  loggedErrors: string[];
}

/**
 * A ZIP as large as the limits let a bulk upload be, and expanding as far as they allow: 200 files
 * of 64 KiB (12.5 MiB in all) — random text that deflates to about 30 KiB each, the rest filler —
 * under 8 MiB. None is a request, so each is read, refused and recorded.
 */
async function largestZip(): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (let i = 0; i < MAX_ZIP_ENTRIES; i++) {
    const text = crypto.randomBytes(30 * 1024).toString('base64');
    zip.addBuffer(Buffer.from(text.padEnd(MAX_REQUEST_BYTES, '=')), `request-${i}.req`);
  }
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream) chunks.push(c as Buffer);
  const bytes = Buffer.concat(chunks);
  if (bytes.length > MAX_ZIP_BYTES) throw new Error(`the flood's ZIP is ${bytes.length} bytes, over the upload limit`);
  return bytes;
}

/** One upload; its answer's status, or how the connection ended before one came. */
function sendUpload(base: URL, c: Call): Promise<string> {
  return new Promise((resolve) => {
    let answered = false;
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        method: c.method,
        path: c.path,
        agent: false,
        headers: { ...c.headers, 'content-length': c.body!.length },
      },
      (res) => {
        answered = true;
        res.resume();
        res.on('end', () => resolve(`HTTP ${res.statusCode}`));
        res.on('error', () => resolve(`HTTP ${res.statusCode} (cut)`));
      },
    );
    // After an early answer the server closes the connection while the body is still being sent.
    req.on('error', (err: NodeJS.ErrnoException) => answered || resolve(`no answer: ${err.code ?? err.message}`));
    req.end(c.body);
  });
}

/** `clients` uploaders back to back until `seconds` have passed (at most `rounds` uploads each). */
async function flood(
  base: string,
  o: { clients: number; rounds: number; seconds: number; call: (i: number) => Call },
): Promise<Omit<FloodRun, 'peakRssMb' | 'page'>> {
  const url = new URL(base);
  const answers: Record<string, number> = {};
  const started = Date.now();
  let uploads = 0;
  await Promise.all(
    Array.from({ length: o.clients }, async (_, client) => {
      for (let round = 0; round < o.rounds && Date.now() - started < o.seconds * 1000; round++) {
        const answer = await sendUpload(url, o.call(client * o.rounds + round));
        answers[answer] = (answers[answer] ?? 0) + 1;
        uploads += 1;
      }
    }),
  );
  return { answers, uploads, seconds: (Date.now() - started) / 1000 };
}

export async function measureUploadFlood(o: {
  databaseUrl: string;
  dataDir: string;
  manager: { email: string; password: string };
  logLevel: string;
  clients: number;
  seconds: number;
  pageSeconds: number;
}): Promise<FloodFigures> {
  const server = await startPortico({ databaseUrl: o.databaseUrl, dataDir: o.dataDir, logLevel: o.logLevel });
  try {
    const manager = await login(server.base, o.manager.email, o.manager.password);
    const [browser] = await offlineClients(server.base, 1);
    const page = (seconds: number) =>
      pages({
        base: server.base,
        cookie: manager,
        paths: ['/account'],
        concurrency: 2,
        maxRequests: 100_000,
        maxSeconds: seconds,
      });
    const upload = (body: { body: Buffer; contentType: string }, address: string): Call => ({
      method: 'POST',
      path: browser!.action,
      body: body.body,
      headers: { cookie: browser!.cookie, 'content-type': body.contentType, 'x-forwarded-for': address },
    });
    const small = multipartFile('file', 'request.req', 'not a request');
    const big = multipartFile('file', 'requests.zip', await largestZip());

    // Warm-up (views compiled, statements prepared), then the idle figures.
    const warmUp = await flood(server.base, {
      clients: 4,
      rounds: 10,
      seconds: 10,
      call: (i) => upload(i % 2 ? small : big, clientAddress(3_000_000 + i)),
    });
    if (!warmUp.answers['HTTP 400'])
      throw new Error(`the offline upload does not answer as expected: ${JSON.stringify(warmUp.answers)}`);
    const idlePage = await page(o.pageSeconds);
    const idleRssMb = server.rssMb();

    const during = async (run: () => ReturnType<typeof flood>): Promise<FloodRun> => {
      server.resetPeakRss();
      const [result, pageFigures] = await Promise.all([run(), page(o.seconds)]);
      return { ...result, peakRssMb: server.peakRssMb(), page: pageFigures };
    };

    // One client already over its limit: every upload is refused before its body is read.
    const over = clientAddress(4_000_000);
    await flood(server.base, {
      clients: 8,
      rounds: Math.ceil(OFFLINE_REQUESTS_PER_CLIENT.limit / 8) + 1,
      seconds: 60,
      call: () => upload(small, over),
    });
    const oneClient = await during(() =>
      flood(server.base, { clients: o.clients, rounds: 1000, seconds: o.seconds, call: () => upload(big, over) }),
    );
    // Every upload from an address of its own: the per-process slots decide.
    const manyClients = await during(() =>
      flood(server.base, {
        clients: o.clients,
        rounds: 1000,
        seconds: o.seconds,
        call: (i) => upload(big, clientAddress(5_000_000 + i)),
      }),
    );
    return { clients: o.clients, idleRssMb, idlePage, oneClient, manyClients, loggedErrors: server.loggedErrors() };
  } catch (err) {
    console.error(`server output (end):\n${server.logTail()}`);
    throw err;
  } finally {
    await server.stop();
  }
}
