import assert from 'node:assert/strict';
import { CROCKFORD, generateLicenseKey, normaliseLicenseKey } from '../../app/lib/license-keys.ts';

describe('license keys', () => {
  it('are 7 groups of 4 Crockford symbols (140 bits) and do not repeat', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 10_000; i++) {
      const key = generateLicenseKey();
      assert.match(key, new RegExp(`^([${CROCKFORD}]{4}-){6}[${CROCKFORD}]{4}$`));
      seen.add(key);
    }
    assert.equal(seen.size, 10_000);
  });

  it('normalise what a person typed', () => {
    assert.equal(normaliseLicenseKey(' 7kq2 mx4p-oil1 '), '7KQ2-MX4P-0111');
  });
});
