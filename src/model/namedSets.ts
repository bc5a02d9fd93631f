/**
 * Named prefix sets usable in `include` and `exclude` as `@name`. Each is documented in
 * wgsplit.toml(5); the sources are the IANA special-purpose registries (RFC 6890 and its
 * updates) plus the ranges neighbours use (tailscale lives in 100.64.0.0/10).
 */
export interface NamedSet {
  description: string;
  prefixes: string[];
}

export const NAMED_SETS: Record<string, NamedSet> = {
  loopback: { description: 'loopback (RFC 1122, RFC 4291)', prefixes: ['127.0.0.0/8', '::1/128'] },
  rfc1918: { description: 'IPv4 private networks (RFC 1918)', prefixes: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'] },
  linklocal: { description: 'link-local (RFC 3927, RFC 4291)', prefixes: ['169.254.0.0/16', 'fe80::/10'] },
  cgnat: {
    description: 'shared address space / carrier-grade NAT (RFC 6598); tailscale and other overlays use it',
    prefixes: ['100.64.0.0/10'],
  },
  ula: { description: 'IPv6 unique local addresses (RFC 4193)', prefixes: ['fc00::/7'] },
  multicast: { description: 'multicast (RFC 5771, RFC 4291)', prefixes: ['224.0.0.0/4', 'ff00::/8'] },
  broadcast: { description: 'limited broadcast (RFC 919)', prefixes: ['255.255.255.255/32'] },
  reserved: {
    description:
      '"this network", IETF protocol assignments, documentation, benchmarking and reserved ranges (RFC 6890, RFC 5737, RFC 2544, RFC 1112, RFC 3849, RFC 6666)',
    prefixes: [
      '0.0.0.0/8',
      '192.0.0.0/24',
      '192.0.2.0/24',
      '198.18.0.0/15',
      '198.51.100.0/24',
      '203.0.113.0/24',
      '240.0.0.0/4',
      '::/128',
      '100::/64',
      '2001:db8::/32',
    ],
  },
};

/** `@private`: everything that is not the public internet, the default `exclude`. */
export const PRIVATE_PARTS = ['loopback', 'rfc1918', 'linklocal', 'cgnat', 'ula', 'multicast', 'broadcast', 'reserved'];

NAMED_SETS.private = {
  description: 'everything that is not the public internet: ' + PRIVATE_PARTS.map((n) => '@' + n).join(', '),
  prefixes: PRIVATE_PARTS.flatMap((n) => NAMED_SETS[n].prefixes),
};

export function namedSet(name: string): NamedSet | undefined {
  return Object.prototype.hasOwnProperty.call(NAMED_SETS, name) ? NAMED_SETS[name] : undefined;
}
