import fs from 'node:fs';
import path from 'node:path';
import type request from 'supertest';
import { csrfFrom } from './app.ts';

type Agent = ReturnType<typeof request.agent>;

/** Uploads a request file (or ZIP) on the offline portal as a browser would: the page first, for its CSRF token. */
export async function upload(
  agent: Agent,
  content: string | Buffer,
  fields: Record<string, string> = {},
  filename = 'activation-request.req',
) {
  const page = await agent.get('/offline').expect(200);
  const token = csrfFrom(page.text.replace(/action="[^"]*_csrf=([^"&]+)"/, 'name="_csrf" value="$1"'));
  const req = agent.post(`/offline/requests?_csrf=${encodeURIComponent(token)}`);
  for (const [k, v] of Object.entries(fields)) req.field(k, v);
  return req.attach('file', Buffer.isBuffer(content) ? content : Buffer.from(content), filename);
}

/** The download link of a result page. */
export const downloadLinkOf = (page: string) => /href="(\/offline\/download\/[^"]+)"/.exec(page)![1]!;

/** Follows the download link of a result page; the body as bytes. */
export async function download(agent: Agent, page: string) {
  return agent
    .get(downloadLinkOf(page))
    .buffer(true)
    .parse((res, cb) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => cb(null, Buffer.concat(chunks)));
    });
}

/** Uploads a usage report on the offline portal's report form (the page first, for its CSRF token). */
export async function uploadReport(agent: Agent, content: string | Buffer, filename = 'usage-report.usage') {
  const page = await agent.get('/offline').expect(200);
  const token = /action="[^"]*\/reports\?_csrf=([^"&]+)"/.exec(page.text)![1]!;
  return agent
    .post(`/offline/reports?_csrf=${token}`)
    .attach('file', Buffer.isBuffer(content) ? content : Buffer.from(content), filename);
}

/**
 * Uploads a file on one of the offline portal's forms over real HTTP like a browser (the CSRF token
 * from the page, the session cookie), then follows the result page's download link, if any.
 */
export async function uploadOverHttp(base: string, form: 'requests' | 'reports', file: string) {
  const page = await fetch(`${base}/offline`);
  const cookie = page.headers.get('set-cookie')!.split(';')[0]!;
  const action = new RegExp(`action="([^"]*/offline/${form}\\?_csrf=[^"]+)"`)
    .exec(await page.text())![1]!
    .replace(/&amp;/g, '&');
  const body = new FormData();
  body.set('file', new Blob([fs.readFileSync(file)]), path.basename(file));
  const res = await fetch(`${base}${action}`, { method: 'POST', body, headers: { cookie } });
  const text = await res.text();
  const link = /href="(\/offline\/download\/[^"]+)"/.exec(text)?.[1];
  return {
    status: res.status,
    page: text,
    file: link ? await (await fetch(`${base}${link}`, { headers: { cookie } })).text() : null,
  };
}
