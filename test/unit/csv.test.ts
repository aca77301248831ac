import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { csvField, csvLine, writeCsv } from '../../app/lib/csv.ts';

describe('csv', () => {
  it('quotes a field only when it holds a comma, quote, CR or LF, doubling the quotes (RFC 4180)', () => {
    assert.equal(csvField('plain text'), 'plain text');
    assert.equal(csvField('a,b'), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField('two\nlines'), '"two\nlines"');
    assert.equal(csvField('cr\r'), '"cr\r"');
    assert.equal(csvField(''), '');
    assert.equal(csvField('ünïcødé ✓'), 'ünïcødé ✓');
  });

  it('writes null and undefined as empty, numbers and booleans as they are, dates as ISO 8601 UTC', () => {
    assert.equal(csvField(null), '');
    assert.equal(csvField(undefined), '');
    assert.equal(csvField(42), '42');
    assert.equal(csvField(-5), '-5', 'a negative number is not a formula');
    assert.equal(csvField(false), 'false');
    assert.equal(csvField(new Date(Date.UTC(2024, 1, 29, 13, 4, 5, 6))), '2024-02-29T13:04:05.006Z');
  });

  it('defuses text that a spreadsheet would run as a formula', () => {
    assert.equal(csvField('=1+2'), "'=1+2");
    assert.equal(csvField('+49 30 123'), "'+49 30 123");
    assert.equal(csvField('-x'), "'-x");
    assert.equal(csvField('@SUM(A1)'), "'@SUM(A1)");
    assert.equal(csvField('\tcmd'), "'\tcmd");
    assert.equal(csvField('\rcmd'), `"'\rcmd"`);
    assert.equal(
      csvField('=HYPERLINK("http://evil.example","click")'),
      `"'=HYPERLINK(""http://evil.example"",""click"")"`,
    );
    assert.equal(csvField('a=b'), 'a=b', 'only the first character counts');
  });

  it('ends each record with CRLF', () => {
    assert.equal(csvLine(['id', 'note']), 'id,note\r\n');
    assert.equal(csvLine([1, 'x, y', null, '=2']), `1,"x, y",,'=2\r\n`);
    assert.equal(csvLine([]), '\r\n');
  });

  it('streams the header and every batch, pulling the next batch only when the reader has caught up', async () => {
    let text = '';
    const out = new Writable({
      highWaterMark: 8,
      write(chunk, _enc, done) {
        text += chunk.toString();
        setTimeout(done, 2);
      },
    });
    async function* batches() {
      for (let b = 0; b < 5; b++) {
        assert.equal(out.writableNeedDrain, false, 'a batch is read only when the last one has been taken');
        yield [
          [b, 'first'],
          [b, 'second, with a comma'],
        ];
      }
    }
    const rows = await writeCsv(out, ['batch', 'value'], batches());
    await new Promise<void>((resolve) => out.end(resolve));
    assert.equal(rows, 10);
    const lines = text.split('\r\n');
    assert.equal(lines.length, 12, 'header, ten rows and the empty string after the last CRLF');
    assert.equal(lines[0], 'batch,value');
    assert.equal(lines[10], '4,"second, with a comma"');
  });

  it('stops asking for rows once the reader has gone, even while waiting for it', async () => {
    let asked = 0;
    let finished = false;
    const stuck = new Writable({ highWaterMark: 1, write() {} }); // never takes the first chunk
    async function* batches() {
      try {
        for (;;) yield [[++asked]];
      } finally {
        finished = true;
      }
    }
    setTimeout(() => stuck.destroy(), 20);
    const rows = await writeCsv(stuck, ['n'], batches());
    assert.equal(rows, 0);
    assert.equal(asked, 1);
    assert.ok(finished, 'the source was closed (its queries stop)');
  });
});
