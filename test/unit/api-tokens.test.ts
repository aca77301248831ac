import assert from 'node:assert/strict';
import { displayPrefix, generateApiToken, hashApiToken, parseApiToken } from '../../app/crypto/api-tokens.ts';

describe('Management API token format', () => {
  it('carries its prefix, 30 random characters and a checksum', () => {
    const client = generateApiToken('client');
    const personal = generateApiToken('personal');
    assert.match(client, /^portico_ak_[0-9A-Za-z]{36}$/);
    assert.match(personal, /^portico_pat_[0-9A-Za-z]{36}$/);
    assert.equal(parseApiToken(client), 'client');
    assert.equal(parseApiToken(personal), 'personal');
    assert.notEqual(generateApiToken('client'), client);
    assert.equal(displayPrefix(client), client.slice(0, 15));
    assert.match(hashApiToken(client), /^[0-9a-f]{64}$/);
  });

  it('refuses a mistyped, truncated or re-prefixed token before any lookup', () => {
    const token = generateApiToken('client');
    const body = token.slice('portico_ak_'.length);
    for (let i = 0; i < body.length; i++) {
      const c = body[i] === 'a' ? 'b' : 'a';
      assert.equal(parseApiToken(`portico_ak_${body.slice(0, i)}${c}${body.slice(i + 1)}`), null, `typo at ${i}`);
    }
    assert.equal(parseApiToken(token.slice(0, -1)), null);
    assert.equal(parseApiToken(`portico_pat_${body}`), null, 'the checksum covers the prefix');
    assert.equal(parseApiToken(`${token} `), null);
  });

  it('draws the random part evenly from 62 symbols (≥ 160 bits)', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 2000; i++)
      for (const c of generateApiToken('client').slice(11, 41)) counts.set(c, (counts.get(c) ?? 0) + 1);
    assert.equal(counts.size, 62);
    const expected = (2000 * 30) / 62;
    for (const [c, n] of counts) assert.ok(Math.abs(n - expected) < expected * 0.25, `${c}: ${n}`);
    assert.ok(30 * Math.log2(62) >= 160);
  });
});
