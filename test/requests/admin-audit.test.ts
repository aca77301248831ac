import assert from 'node:assert/strict';
import request from 'supertest';
import {
  adminAgent,
  buildTestApp,
  countRows,
  createAccount,
  loginAgent,
  submitForm,
  type TestApp,
} from '../helpers/app.ts';
import { recordAudit, type AuditRecord } from '../../app/services/audit.ts';
import type { AuditAction } from '../../app/services/audit-actions.ts';
import type { Actor } from '../../app/services/context.ts';
import * as auditEvents from '../../app/models/audit-events.ts';
import { toDate } from '../../app/models/normalise.ts';

type Agent = Awaited<ReturnType<typeof adminAgent>>['agent'];

const actor = (label: string | null, over: Partial<Actor> = {}): Actor => ({
  accountId: null,
  label,
  ip: '203.0.113.9',
  requestId: 'req-fixture',
  ...over,
});
const at = (iso: string) => new Date(iso);

/** The event ids a list page links to, in page order. */
const listedIds = (html: string) => [...html.matchAll(/href="\/admin\/audit\/(\d+)"/g)].map((m) => Number(m[1]));

/** The text of an HTML fragment, as a reader sees it. */
const textOf = (html: string) =>
  html
    .replace(/<[^>]*>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&#34;|&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');

/** An RFC 4180 reader, independent of the writer under test: quoted fields may hold commas, quotes, CR and LF. */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"' && field === '') {
      let end = i + 1;
      for (;;) {
        const q = text.indexOf('"', end);
        if (q < 0) throw new Error('unterminated quoted field');
        if (text[q + 1] === '"') {
          field += text.slice(end, q + 1);
          end = q + 2;
        } else {
          field += text.slice(end, q);
          i = q + 1;
          break;
        }
      }
      continue;
    }
    if (c === ',') {
      record.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      record.push(field);
      records.push(record);
      record = [];
      field = '';
      i += 1;
    } else field += c;
    i += 1;
  }
  if (field !== '' || record.length) throw new Error('the last record does not end with CRLF');
  return records;
}

const CSV_HEADER = [
  'id',
  'occurred_at',
  'actor_account_id',
  'actor_label',
  'action',
  'object_type',
  'object_id',
  'order_id',
  'ip',
  'request_id',
  'before',
  'after',
];

interface Row {
  id: number;
  time: number;
  label: string | null;
  action: string;
  type: string | null;
  objectId: string | null;
}

describe('console: audit log', () => {
  let t: TestApp;
  let agent: Agent;
  let adminEmail: string;

  /** Every event in the table, newest first: what the pages must agree with. */
  async function allEvents(): Promise<Row[]> {
    const rows = await t
      .db('audit_events')
      .select('id', 'occurred_at', 'actor_label', 'action', 'object_type', 'object_id');
    return rows
      .map((r: Record<string, unknown>) => ({
        id: Number(r.id),
        time: toDate(r.occurred_at)!.getTime(),
        label: r.actor_label as string | null,
        action: String(r.action),
        type: r.object_type as string | null,
        objectId: r.object_id as string | null,
      }))
      .sort((a, b) => b.time - a.time || b.id - a.id);
  }

  async function expectListed(query: string, keep: (r: Row) => boolean) {
    const expected = (await allEvents()).filter(keep).map((r) => r.id);
    assert.ok(expected.length > 0 && expected.length <= 50, `the fixture for ${query} fits one page`);
    const res = await agent.get(`/admin/audit?${query}`).expect(200);
    assert.deepEqual(listedIds(res.text), expected, query);
    return res;
  }

  async function record(label: string | null, when: Date, r: AuditRecord, over: Partial<Actor> = {}) {
    await recordAudit(t.db, actor(label, over), when, r);
    return Number((await t.db('audit_events').max({ id: 'id' }).first())!.id);
  }

  before(async () => {
    t = await buildTestApp();
    const a = await adminAgent(t);
    agent = a.agent;
    adminEmail = a.admin.email;
    // Older than anything the app writes during the tests (its clock runs at the real time).
    await record('alice@example.com', at('2021-03-01T09:00:00Z'), {
      action: 'product.created',
      objectType: 'product',
      objectId: 1,
      after: { name: 'A' },
    });
    await record('alice@example.com', at('2021-03-01T10:00:00Z'), {
      action: 'product.updated',
      objectType: 'product',
      objectId: 1,
      before: { name: 'A' },
      after: { name: 'B' },
    });
    await record('alfred@example.com', at('2021-03-02T23:59:59.999Z'), {
      action: 'productx.renamed' as AuditAction,
      objectType: 'product',
      objectId: 2,
    });
    await record('alice@example.com.au', at('2021-03-02T12:00:00Z'), {
      action: 'account.profile_updated',
      objectType: 'account',
      objectId: 3,
    });
    await record('bob@example.com', at('2021-03-03T00:00:00.000Z'), {
      action: 'order.created',
      objectType: 'order',
      objectId: 7,
      orderId: 7,
    });
    await record('bob@example.com', at('2021-03-04T12:00:00Z'), {
      action: 'order.updated',
      objectType: 'order',
      objectId: 8,
      orderId: 8,
    });
    await record(null, at('2021-03-05T08:00:00Z'), { action: 'device.reset', objectType: 'device', objectId: 'abc' });
  });
  after(async () => t.close());

  it('is for admins only: others get 404, anonymous visitors the login page', async () => {
    const anyId = Number((await t.db('audit_events').first()).id);
    const urls = ['/admin/audit', `/admin/audit/${anyId}`, '/admin/audit.csv'];
    for (const url of urls) await request(t.app).get(url).expect(303).expect('location', '/login');
    for (const role of ['manager', 'end_user'] as const) {
      const other = await createAccount(t.db, { role });
      const otherAgent = await loginAgent(t.app, other.email, other.password);
      for (const url of urls) {
        const res = await otherAgent.get(url).expect(404);
        assert.doesNotMatch(res.text, /alice@example\.com/);
        assert.doesNotMatch(res.headers['content-type'] ?? '', /csv/);
      }
    }
  });

  it('lists the newest events first, each with its time, actor, action, object, IP, request id and a detail link', async () => {
    const created = await submitForm(agent, '/admin/products/new', '/admin/products', {
      name: 'Audited',
      code: 'audited',
      authorization_method: 'key',
    });
    assert.equal(created.status, 303);
    const event = await t.db('audit_events').where({ action: 'product.created', actor_label: adminEmail }).first();
    assert.ok(event.request_id && event.ip, 'a real request leaves its request id and IP');

    const res = await agent.get('/admin/audit').expect(200);
    const ids = listedIds(res.text);
    assert.deepEqual(
      ids,
      (await allEvents()).slice(0, 50).map((r) => r.id),
    );
    assert.equal(ids[0], Number(event.id), 'the product just created is the newest event');
    const row = res.text.slice(res.text.indexOf('<tbody>'), res.text.indexOf('</tr>', res.text.indexOf('<tbody>')));
    const occurred = toDate(event.occurred_at)!;
    assert.match(
      row,
      new RegExp(
        `<time datetime="${occurred.toISOString()}">${occurred.toISOString().slice(0, 10)} ${occurred.toISOString().slice(11, 19)}</time>`,
      ),
    );
    for (const text of [adminEmail, 'Product created', 'Product', event.ip, event.request_id])
      assert.ok(row.includes(text), `row shows ${text}`);
    assert.match(row, new RegExp(`<a href="/admin/audit/${event.id}">Event ${event.id}</a>`));
    assert.match(res.text, /<label for="field-actor">Actor<\/label>/);
    assert.match(res.text, /<label for="field-from">From \(UTC\)<\/label>/);
  });

  it('offers the object types found in the log', async () => {
    const res = await agent.get('/admin/audit').expect(200);
    const select = res.text.slice(
      res.text.indexOf('<select id="field-object_type"'),
      res.text.indexOf('</select>', res.text.indexOf('<select id="field-object_type"')),
    );
    const values = [...select.matchAll(/<option value="([^"]*)"/g)].map((m) => m[1]);
    assert.deepEqual(values, ['', 'account', 'device', 'order', 'product']);
    assert.match(select, /<option value="order">Order<\/option>/);
  });

  it('filters by actor: a whole address exactly, the beginning of one as a prefix, in any case, % and _ taken literally', async () => {
    await expectListed('actor=alice%40example.com', (r) => r.label === 'alice@example.com');
    await expectListed('actor=ALICE%40Example.com', (r) => r.label === 'alice@example.com');
    await expectListed('actor=al', (r) => !!r.label?.startsWith('al'));
    await expectListed('actor=alice%40', (r) => !!r.label?.startsWith('alice@'));
    const prefixed = await agent.get('/admin/audit?actor=alice%40').expect(200);
    assert.equal(listedIds(prefixed.text).length, 3, 'alice@example.com twice and alice@example.com.au');
    const literal = await agent.get('/admin/audit?actor=a%25').expect(200);
    assert.deepEqual(listedIds(literal.text), []);
    assert.match(literal.text, /Nothing found/);
    const underscore = await agent.get('/admin/audit?actor=al_ce').expect(200);
    assert.deepEqual(listedIds(underscore.text), []);
  });

  it('filters by action, exactly or by a prefix ending in a dot', async () => {
    await expectListed('action=product.updated', (r) => r.action === 'product.updated');
    await expectListed('action=product.', (r) => r.action.startsWith('product.'));
    const prefix = await agent.get('/admin/audit?action=product.').expect(200);
    const alfred = await t
      .db('audit_events')
      .where({ action: 'productx.renamed' as AuditAction })
      .first();
    assert.ok(!listedIds(prefix.text).includes(Number(alfred.id)), 'product. does not match productx.');
    const exact = await agent.get('/admin/audit?action=product').expect(200);
    assert.deepEqual(listedIds(exact.text), [], 'without the dot the action must match exactly');
  });

  it('filters by object type and id', async () => {
    await expectListed('object_type=order&object_id=7', (r) => r.type === 'order' && r.objectId === '7');
    await expectListed('object_type=order', (r) => r.type === 'order');
    await expectListed('object_type=device&object_id=abc', (r) => r.type === 'device' && r.objectId === 'abc');
  });

  it('filters by dates: whole UTC days, both ends included', async () => {
    const day = (iso: string) => Date.parse(`${iso}T00:00:00Z`);
    await expectListed(
      'from=2021-03-02&to=2021-03-03',
      (r) => r.time >= day('2021-03-02') && r.time < day('2021-03-04'),
    );
    const both = await agent.get('/admin/audit?from=2021-03-02&to=2021-03-03').expect(200);
    assert.equal(
      listedIds(both.text).length,
      3,
      'from noon and the last millisecond of the 2nd to the first of the 3rd',
    );
    await expectListed('to=2021-03-01', (r) => r.time < day('2021-03-02'));
    await expectListed(
      'from=2021-03-04&to=2021-03-31&actor=bob%40example.com',
      (r) => r.label === 'bob@example.com' && r.time >= day('2021-03-04') && r.time < day('2021-04-01'),
    );
    const filtered = await agent.get('/admin/audit?from=2021-03-02&to=2021-03-03').expect(200);
    assert.match(
      filtered.text,
      /id="field-from"[^>]*value="2021-03-02"|value="2021-03-02"[^>]*id="field-from"/s,
      'the form keeps the filters',
    );
  });

  it('keeps the filters in the pager and CSV links', async () => {
    for (let i = 0; i < 60; i++)
      await record('pager@example.com', at(`2021-02-01T00:00:${String(i).padStart(2, '0')}Z`), {
        action: 'pager.tick' as AuditAction,
      });
    const first = await agent.get('/admin/audit?action=pager.tick&actor=pager%40example.com').expect(200);
    assert.equal(listedIds(first.text).length, 50);
    assert.match(first.text, /Page 1 of 2/);
    assert.match(first.text, /60 in total/);
    const next = /<a href="([^"]+)" rel="next">/.exec(first.text)![1]!.replace(/&amp;/g, '&');
    assert.equal(next, '/admin/audit?actor=pager%40example.com&action=pager.tick&page=2');
    const second = await agent.get(next).expect(200);
    assert.equal(listedIds(second.text).length, 10);
    assert.equal(new Set([...listedIds(first.text), ...listedIds(second.text)]).size, 60);
    assert.match(first.text, /href="\/admin\/audit\.csv\?actor=pager%40example\.com&amp;action=pager\.tick"/);
  });

  it('refuses malformed filters with 422 and field errors, in the admin language', async () => {
    const bad = await agent.get('/admin/audit?from=2021-02-30').expect(422);
    assert.match(bad.text, /Enter a valid date\./);
    assert.match(bad.text, /id="field-from"[^>]*aria-invalid="true"/);
    assert.deepEqual(listedIds(bad.text), []);
    assert.doesNotMatch(bad.text, /audit\.csv/, 'no export of filters that do not parse');
    assert.match(
      (await agent.get('/admin/audit?to=yesterday').expect(422)).text,
      /id="field-to"[^>]*aria-invalid="true"/,
    );
    const order = await agent.get('/admin/audit?from=2021-03-05&to=2021-03-01').expect(422);
    assert.match(order.text, /The end date must not be before the start date\./);
    const orphanId = await agent.get('/admin/audit?object_id=7').expect(422);
    assert.match(orphanId.text, /Choose an object type to search by object id\./);
    assert.match((await agent.get(`/admin/audit?action=${'x'.repeat(65)}`).expect(422)).text, /This is too long\./);
    await agent.get('/admin/audit.csv?from=01%2F03%2F2021').expect(422);

    const { agent: german } = await adminAgent(t, 'de');
    const de = await german.get('/admin/audit?from=2021-03-05&to=2021-03-01').expect(422);
    assert.match(de.text, /<html lang="de">/);
    assert.match(de.text, /Das Enddatum darf nicht vor dem Startdatum liegen\./);
    assert.doesNotMatch(de.text, /The end date/);
  });

  it('shows one event in full: before and after side by side, the changed fields, every value escaped', async () => {
    const before = { name: '<b>Old</b>', price: 10, tags: ['a'], gone: 'x' };
    const after = { name: '<script>alert("x")</script>', price: 10, tags: ['a', 'b'], added: true };
    const id = await record(
      'carol@example.com',
      at('2021-04-01T12:34:56.789Z'),
      { action: 'product.updated', objectType: 'product', objectId: 42, orderId: 9, before, after },
      { accountId: 77, ip: '198.51.100.4', requestId: 'req-<detail>' },
    );
    const res = await agent.get(`/admin/audit/${id}`).expect(200);
    assert.doesNotMatch(res.text, /<script>alert/);
    assert.doesNotMatch(res.text, /<b>Old/);
    assert.match(res.text, /&lt;script&gt;alert\(/);
    assert.match(res.text, /<time datetime="2021-04-01T12:34:56\.789Z">/);
    for (const text of ['carol@example.com', 'account 77', 'product.updated', '198.51.100.4', 'req-&lt;detail&gt;'])
      assert.ok(res.text.includes(text), text);

    const changes = res.text.slice(
      res.text.indexOf('<ul class="audit-changes">'),
      res.text.indexOf('</ul>', res.text.indexOf('<ul class="audit-changes">')),
    );
    const lines = [...changes.matchAll(/<li>([\s\S]*?)<\/li>/g)].map((m) => textOf(m[1]!));
    assert.deepEqual(lines, [
      'name: "<b>Old</b>" → "<script>alert(\\"x\\")</script>"',
      'tags: ["a"] → ["a","b"]',
      'gone: "x" → (not set)',
      'added: (not set) → true',
    ]);
    const pres = [...res.text.matchAll(/<pre class="audit-state">([\s\S]*?)<\/pre>/g)].map((m) => textOf(m[1]!));
    assert.deepEqual(pres, [JSON.stringify(before, null, 2), JSON.stringify(after, null, 2)]);
    assert.ok(res.text.indexOf(`id="before-heading"`) < res.text.indexOf(`id="after-heading"`));
  });

  it('shows an event without states, and answers 404 for an unknown id', async () => {
    const login = await t.db('audit_events').where({ action: 'auth.login', actor_label: adminEmail }).first();
    const res = await agent.get(`/admin/audit/${login.id}`).expect(200);
    assert.match(res.text, /This event records no changed fields\./);
    assert.match(res.text, new RegExp(login.request_id));
    for (const id of ['999999', '0', 'abc', '1.5', '-1']) await agent.get(`/admin/audit/${id}`).expect(404);
  });

  it("lists a manager's activity: the newest events of the given orders only, newest first", async () => {
    const base = Date.parse('2019-03-01T00:00:00Z');
    for (let i = 0; i < 30; i++)
      await record(null, new Date(base + ((i * 7) % 30) * 60_000), {
        action: 'license.updated',
        objectType: 'license',
        objectId: i,
        orderId: 900 + (i % 3),
      });
    const expected = (await t.db('audit_events').whereIn('order_id', [900, 902]).select('id', 'occurred_at'))
      .map((r: { id: number; occurred_at: unknown }) => ({ id: Number(r.id), time: toDate(r.occurred_at)!.getTime() }))
      .sort((a, b) => b.time - a.time || b.id - a.id)
      .slice(0, 12)
      .map((r) => r.id);
    const listed = await auditEvents.listForOrders(
      t.db,
      t.db.from(t.db.raw('(select 900 as id union select 902) as o')).select('id'),
      12,
    );
    assert.deepEqual(
      listed.map((e) => e.id),
      expected,
    );
    assert.deepEqual(await auditEvents.listForOrders(t.db, t.db('orders').where('id', -1).select('id'), 12), []);
  });

  describe('CSV export', () => {
    it('sends a UTF-8 attachment with the header row and every column', async () => {
      const res = await agent.get('/admin/audit.csv?actor=alice%40example.com').expect(200);
      assert.equal(res.headers['content-type'], 'text/csv; charset=utf-8');
      assert.equal(
        res.headers['content-disposition'],
        `attachment; filename="portico-audit-${t.clock.now().toISOString().slice(0, 10)}.csv"`,
      );
      const records = parseCsv(res.text);
      assert.deepEqual(records[0], CSV_HEADER);
      const alice = (await allEvents()).filter((r) => r.label === 'alice@example.com');
      assert.deepEqual(
        records.slice(1).map((r) => Number(r[0])),
        alice.map((r) => r.id),
        'filtered, newest first',
      );
      const updated = records.find((r) => r[4] === 'product.updated')!;
      assert.deepEqual(updated.slice(1), [
        '2021-03-01T10:00:00.000Z',
        '',
        'alice@example.com',
        'product.updated',
        'product',
        '1',
        '',
        '203.0.113.9',
        'req-fixture',
        '{"name":"A"}',
        '{"name":"B"}',
      ]);
    });

    it('quotes commas, quotes and line breaks, and defuses spreadsheet formulas', async () => {
      const label = 'Mallory, "the tester"\r\nsecond line';
      const id = await record(
        label,
        at('2021-05-01T00:00:00Z'),
        { action: 'csv.quoting' as AuditAction, objectType: 'product', objectId: '+1', after: { note: 'a, "b"\nc' } },
        { ip: '@1.2.3.4', requestId: '-cmd' },
      );
      const formula = await record(
        '=HYPERLINK("http://evil.example","x")',
        at('2021-05-01T00:00:01Z'),
        { action: 'csv.quoting' as AuditAction, before: '=1+2' },
        { requestId: '\tTAB' },
      );
      const res = await agent.get('/admin/audit.csv?action=csv.quoting').expect(200);
      assert.ok(res.text.includes(`"Mallory, ""the tester""\r\nsecond line"`), 'RFC 4180 quoting');
      assert.ok(res.text.includes(`"'=HYPERLINK(""http://evil.example"",""x"")"`));
      const [header, ...rows] = parseCsv(res.text);
      assert.deepEqual(header, CSV_HEADER);
      assert.deepEqual(
        rows.map((r) => Number(r[0])),
        [formula, id],
      );
      const [f, q] = rows;
      assert.equal(q![3], label);
      assert.equal(q![6], "'+1");
      assert.equal(q![8], "'@1.2.3.4");
      assert.equal(q![9], "'-cmd");
      assert.deepEqual(JSON.parse(q![11]!), { note: 'a, "b"\nc' });
      assert.equal(f![3], `'=HYPERLINK("http://evil.example","x")`);
      assert.equal(f![9], "'\tTAB");
      assert.equal(f![10], '"=1+2"', 'JSON text starts with a quote, not a formula');
    });

    it('exports 5,000 events completely, in order, across batch boundaries with equal times; the list counts to 2,000 at most', async () => {
      const base = Date.parse('2020-06-01T00:00:00Z');
      await t.db.transaction(async (trx) => {
        for (let i = 0; i < 5000; i++) {
          // Times out of id order, five events per second: ties straddle the 1,000-row batches.
          const when = new Date(base + Math.floor(((i * 7919) % 5000) / 5) * 1000);
          await recordAudit(trx, actor(`bulk${i % 3}@example.com`), when, {
            action: 'bulk.export' as AuditAction,
            objectType: 'license',
            objectId: i,
            after: { i },
          });
        }
      });
      const res = await agent.get('/admin/audit.csv?action=bulk.export').expect(200);
      assert.equal(res.headers['transfer-encoding'], 'chunked', 'streamed, not built up and sent with a length');
      assert.equal(res.text.split('\r\n').length - 1, 5001, 'header and 5,000 lines');
      const [, ...rows] = parseCsv(res.text);
      const expected = (await allEvents()).filter((r) => r.action === 'bulk.export').map((r) => r.id);
      assert.equal(expected.length, 5000);
      assert.deepEqual(
        rows.map((r) => Number(r[0])),
        expected,
        'every event once, newest first',
      );

      const everything = await agent.get('/admin/audit.csv').expect(200);
      assert.equal(parseCsv(everything.text).length - 1, await countRows(t.db, 'audit_events'));

      const sized = [];
      for await (const batch of auditEvents.batches(t.db, { action: 'bulk.export' as AuditAction }, 1000, 2500))
        sized.push(batch.length);
      assert.deepEqual(sized, [1000, 1000, 500], 'batches of 1,000 up to the cap');

      assert.equal(
        await auditEvents.countUpTo(t.db, { action: 'bulk.export' as AuditAction }, 100),
        100,
        'the list stops counting at its cap',
      );
      const list = await agent.get('/admin/audit?action=bulk.').expect(200);
      assert.match(list.text, /At least 2000 events\. Only the newest are listed/);
      assert.deepEqual(listedIds(list.text), expected.slice(0, 50));
      const third = await agent.get('/admin/audit?action=bulk.&page=3').expect(200);
      assert.deepEqual(
        listedIds(third.text),
        expected.slice(100, 150),
        'a later page of a prefix matching most events',
      );

      const capped = await agent.get('/admin/audit').expect(200);
      assert.match(
        capped.text,
        /At least 2000 events\. Only the newest are listed/,
        'the list stops counting at 2,000',
      );
      assert.match(capped.text, /Page 1 of 40/);
    });
  });
});
