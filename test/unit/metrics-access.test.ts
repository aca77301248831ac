import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../config/index.ts';
import { addressAllowed, parseAllowList, tokenMatches } from '../../app/lib/metrics-access.ts';

describe('metrics access (METRICS_TOKEN, METRICS_ALLOW)', () => {
  const token = 'a'.repeat(32);

  it('is off unless a token or an allow-list is set', () => {
    assert.equal(loadConfig({}).metrics, null);
    assert.equal(loadConfig({ METRICS_ALLOW: ' , ' }).metrics, null);
    assert.deepEqual(loadConfig({ METRICS_TOKEN: token }).metrics, { token, allow: [] });
    assert.deepEqual(loadConfig({ METRICS_ALLOW: '127.0.0.1, 10.0.0.0/8 ::1' }).metrics, {
      token: null,
      allow: ['127.0.0.1', '10.0.0.0/8', '::1'],
    });
  });

  for (const [env, message] of [
    [{ METRICS_TOKEN: 'short' }, /^Invalid configuration: METRICS_TOKEN must be at least 32 characters/],
    [{ METRICS_TOKEN: `${'a'.repeat(32)} b` }, /^Invalid configuration: METRICS_TOKEN must be printable ASCII/],
    [{ METRICS_ALLOW: '10.0.0.0/33' }, /^Invalid configuration: METRICS_ALLOW must list addresses or CIDR ranges/],
    [{ METRICS_ALLOW: 'prometheus.internal' }, /^Invalid configuration: METRICS_ALLOW must list addresses/],
  ] as const)
    it(`refuses ${JSON.stringify(env)} with one line naming the variable`, () => {
      assert.throws(
        () => loadConfig(env),
        (err: Error) => err instanceof ConfigError && message.test(err.message),
      );
    });

  it('matches addresses and ranges, IPv4-mapped IPv6 as IPv4, nothing else', () => {
    const allow = parseAllowList('10.0.0.0/8 192.0.2.7 fd00::/8 ::1');
    assert.ok(addressAllowed('10.200.1.2', allow));
    assert.ok(addressAllowed('::ffff:10.200.1.2', allow));
    assert.ok(addressAllowed('192.0.2.7', allow));
    assert.ok(addressAllowed('fd12::1', allow));
    assert.ok(addressAllowed('::1', allow));
    assert.ok(!addressAllowed('11.0.0.1', allow));
    assert.ok(!addressAllowed('192.0.2.8', allow));
    assert.ok(!addressAllowed('fe80::1', allow));
    assert.ok(!addressAllowed(undefined, allow));
    assert.ok(!addressAllowed('not an address', allow));
  });

  it('takes only "Bearer <the token>"', () => {
    assert.ok(tokenMatches(`Bearer ${token}`, token));
    assert.ok(tokenMatches(`bearer ${token}`, token));
    assert.ok(!tokenMatches(token, token));
    assert.ok(!tokenMatches(`Bearer ${token}a`, token));
    assert.ok(!tokenMatches(`Bearer ${token.slice(1)}`, token));
    assert.ok(!tokenMatches(`Basic ${token}`, token));
    assert.ok(!tokenMatches(undefined, token));
  });
});
