import assert from 'node:assert/strict';
import { labelTableCells } from '../../app/lib/views.ts';

describe('labelTableCells (phone layout of tables)', () => {
  it('labels each body cell with its column header, skipping tags in the header and escaping quotes', () => {
    const html =
      '<p>x</p><table><thead><tr><th scope="col">Key</th><th scope="col"><span>Say &quot;hi&quot;</span></th><th>A "b"</th></tr></thead>' +
      '<tbody><tr><td><code>K-1</code></td><td class="x">y <time datetime="t">t</time></td><td>z</td></tr>' +
      '<tr><th scope="row">h</th><td colspan="2">wide</td></tr></tbody></table>';
    const out = labelTableCells(html);
    assert.match(out, /<td data-label="Key"><code>K-1<\/code><\/td>/);
    assert.match(out, /<td class="x" data-label="Say &quot;hi&quot;">y <time datetime="t">t<\/time><\/td>/);
    assert.match(out, /<td data-label="A &quot;b&quot;">z<\/td>/);
    assert.match(out, /<th scope="row" data-label="Key">h<\/th><td colspan="2" data-label="Say &quot;hi&quot;">wide/);
    assert.match(out, /<thead><tr><th scope="col">Key<\/th>/, 'the header itself is unchanged');
  });

  it('leaves tables without a header, cells with their own label and pages without tables alone', () => {
    const plain = '<table><tbody><tr><td>a</td></tr></tbody></table>';
    assert.equal(labelTableCells(plain), plain);
    const own = '<table><thead><tr><th>A</th></tr></thead><tbody><tr><td data-label="Mine">a</td></tr></tbody></table>';
    assert.equal(labelTableCells(own), own);
    assert.equal(labelTableCells('<p>no table</p>'), '<p>no table</p>');
  });
});
