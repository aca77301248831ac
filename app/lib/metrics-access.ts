import crypto from 'node:crypto';
import ipaddr from 'ipaddr.js';

/**
 * Who may read /metrics (app/lib/metrics.ts; docs/operations.md, "Metrics"): METRICS_TOKEN asks for
 * `Authorization: Bearer <token>`, METRICS_ALLOW for a client address on the list (the address
 * Express derives under TRUST_PROXY); with both set, both must hold. Neither: /metrics is off (404).
 */

export interface MetricsAccess {
  token: string | null;
  allow: string[];
}

/** The address list of METRICS_ALLOW: addresses and CIDR ranges, comma- or space-separated; throws on a bad entry. */
export function parseAllowList(value: string): string[] {
  const entries = value
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  for (const e of entries) {
    const valid = e.includes('/') ? ipaddr.isValidCIDR(e) : ipaddr.isValid(e);
    if (!valid) throw new Error(`must list addresses or CIDR ranges such as 10.0.0.0/8 (not ${JSON.stringify(e)})`);
  }
  return entries;
}

const normalised = (address: string): ipaddr.IPv4 | ipaddr.IPv6 | null => {
  const plain = address.replace(/%.*$/, '');
  if (!ipaddr.isValid(plain)) return null;
  const ip = ipaddr.parse(plain);
  return ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress() ? (ip as ipaddr.IPv6).toIPv4Address() : ip;
};

/** Whether `address` (the client address Express derived under TRUST_PROXY) is on the list. */
export function addressAllowed(address: string | undefined, allow: readonly string[]): boolean {
  const ip = address ? normalised(address) : null;
  if (!ip) return false;
  return allow.some((entry) => {
    if (entry.includes('/')) {
      const [range, bits] = ipaddr.parseCIDR(entry);
      return range.kind() === ip.kind() && ip.match(range, bits);
    }
    const e = normalised(entry);
    return e !== null && e.kind() === ip.kind() && e.toNormalizedString() === ip.toNormalizedString();
  });
}

/** A constant-time comparison of the presented bearer token with METRICS_TOKEN. */
export function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (!m) return false;
  const a = crypto.createHash('sha256').update(m[1]!).digest();
  const b = crypto.createHash('sha256').update(token).digest();
  return crypto.timingSafeEqual(a, b);
}
