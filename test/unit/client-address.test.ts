import assert from 'node:assert/strict';
import { clientOf } from '../../app/lib/rate-limiter.ts';

describe('the client a per-address limit counts (clientOf)', () => {
  it('IPv4 as it is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64, nothing as "unknown"', () => {
    const cases: [string | null, string][] = [
      ['203.0.113.7', '203.0.113.7'],
      ['::ffff:203.0.113.7', '203.0.113.7'],
      ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
      ['2001:0db8:0001:0002:ffff:ffff:ffff:ffff', '2001:db8:1:2::/64'],
      ['2001:db8::', '2001:db8:0:0::/64'],
      ['::1', '0:0:0:0::/64'],
      ['fe80::1%eth0', 'fe80:0:0:0::/64'],
      [null, 'unknown'],
    ];
    for (const [ip, client] of cases) assert.equal(clientOf(ip), client, String(ip));
  });
});
