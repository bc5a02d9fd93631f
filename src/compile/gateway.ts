/**
 * Gateway mode: forwarded traffic of selected clients (LAN devices, containers, VMs) through
 * the tunnel. Pure. nftables objects for one unit (profile and family), next to the
 * `ip rule fwmark M/mask lookup T` compile adds (DESIGN.md, "Forwarded traffic", verified
 * here with real packets):
 *
 *   prerouting (filter, priority mangle: before the routing decision, after conntrack at
 *   -200, so `ct direction` is known; before DNAT at -100, so the destination is the one
 *   the client asked for): a packet that came in on a selected interface (`iifname`, with
 *   nft's `br-*` wildcard evaluated per packet: bridges created later are covered without
 *   touching the kernel) or from a selected source prefix (never on lo: the host's own
 *   packets to itself are not forwarded, even when their source is in the prefix), in the
 *   ORIGINAL direction of its connection (prerouting sees every packet, so every packet the
 *   client sends is marked; replies of connections that came in from outside, e.g. a
 *   published port DNAT'ed to a container, are the reply direction and keep their path),
 *   not to an address of this host (the host stays reachable; a DNAT'ed hairpin too),
 *   matching protocol and ports, not yet marked by an earlier profile -> mark.
 *   Then the rule sends it to T. In rule mode T holds the include routes and the throws,
 *   so T decides the destination (excluded and connected networks are thrown back to main);
 *   in fwmark mode T holds only the default route and the mark rule tests the profile's
 *   include/exclude sets, as the host's mark rule does.
 *
 *   forward (filter, mangle): TCP MSS clamping both ways. A forwarded SYN leaving by the
 *   tunnel: `rt mtu` is the tunnel route's MTU. The server's SYN-ACK coming back: the route
 *   then is the LAN's (1500), so it is clamped to the tunnel's MTU as a number (minus 40
 *   for IPv4, 60 for IPv6 headers). Without both, large transfers stall wherever ICMP
 *   "fragmentation needed" does not get through.
 *
 *   postrouting (nat, srcnat: only a connection's first packet): whatever of the selected
 *   clients leaves by the tunnel is masqueraded to its address (the WireGuard peer accepts
 *   only sources in its AllowedIPs): the marked connections, and also excluded
 *   destinations that main routes into the tunnel anyway (the VPN's own DNS server on the
 *   tunnel subnet). Selected by ingress interface, or by source on forwarded packets only
 *   (a locally generated packet has no input interface here: meta iif is 0). `masquerade =
 *   false` for site-to-site setups where the peer routes the clients' network. Replies are
 *   de-masqueraded by conntrack and routed by main to the client.
 */
import { BASE_CHAINS, type NftRule, type NftState } from '../model/nft.js';
import { formatPrefix, type Family, type Prefix } from '../model/prefix.js';
import type { Range } from '../model/rule.js';
import type { FromSpec, Protocol } from '../profile/types.js';
import { familyTag, hex, ident, ipKeyword, type MarkInput } from './nftFwmark.js';
import { nftSelectors } from '../model/selector.js';

/** WireGuard's default MTU (wg-quick, wireguard-go), used while the interface's is unknown. */
export const DEFAULT_TUNNEL_MTU = 1420;
/** IPv4 + TCP / IPv6 + TCP header bytes: MSS = MTU - this. */
const TCP_IP_HEADERS: Record<Family, number> = { 4: 40, 6: 60 };

/** What of `from` applies to one family: interfaces always, source prefixes of that family. */
export interface GatewaySelection {
  interfaces: string[];
  sources: Prefix[];
}

export function gatewaySelection(from: FromSpec, family: Family): GatewaySelection | undefined {
  const sources = from.sources.flatMap((s) => s.prefixes).filter((p) => p.family === family);
  return from.interfaces.length || sources.length ? { interfaces: from.interfaces, sources } : undefined;
}

export interface GatewayInput extends GatewaySelection, MarkInput {
  /** fwmark mode: the include/exclude sets the mark must test (rule mode: T decides) */
  destSets?: { include: string; exclude: string };
  /** emit the masquerade rules (`masquerade`) */
  masquerade: boolean;
  /** the tunnel's MTU, for clamping the SYN-ACKs that come back from it */
  mtu?: number;
}

const quoted = (xs: string[]) => (xs.length === 1 ? `"${xs[0]}"` : `{ ${xs.map((x) => `"${x}"`).join(', ')} }`);
const inline = (xs: Prefix[]) => (xs.length === 1 ? formatPrefix(xs[0]) : `{ ${xs.map(formatPrefix).join(', ')} }`);

export function gatewayObjects(g: GatewayInput): NftState {
  const key = `${ident(g.profile)}/${familyTag(g.family)}/gw`;
  const ip = ipKeyword(g.family);
  const nfproto = `meta nfproto ${g.family === 4 ? 'ipv4' : 'ipv6'}`;
  const tail = [
    'ct direction original',
    'fib daddr type != { local, broadcast, multicast }',
    ...nftSelectors({ family: g.family, protocols: g.protocols, dports: g.dports, sports: g.sports, uids: [] }),
    ...(g.destSets ? [`${ip} daddr @${g.destSets.include}`, `${ip} daddr != @${g.destSets.exclude}`] : []),
    `meta mark set meta mark & ${hex(~g.mask)} | ${hex(g.mark)}`,
  ];
  const head = [nfproto, `meta mark & ${hex(g.mask)} == 0`];
  const rules: NftRule[] = [];
  const rule = (chain: string, what: string, parts: string[]) => rules.push({ chain, key: `${key}/${what}`, expr: parts.join(' '), owner: g.profile });
  if (g.interfaces.length) rule('prerouting', 'iif', [...head, `iifname ${quoted(g.interfaces)}`, ...tail]);
  if (g.sources.length) rule('prerouting', 'src', [...head, 'iifname != "lo"', `${ip} saddr ${inline(g.sources)}`, ...tail]);
  const mss = (g.mtu ?? DEFAULT_TUNNEL_MTU) - TCP_IP_HEADERS[g.family];
  const syn = 'tcp flags & (syn | rst) == syn';
  // Every forwarded SYN out of the tunnel, marked or not (the clients' connections to the
  // tunnel subnet too): clamping to the route's MTU is right for all of them.
  rule('forward', 'mss-out', [nfproto, `oifname "${g.iface}"`, syn, 'tcp option maxseg size set rt mtu']);
  rule('forward', 'mss-in', [nfproto, `iifname "${g.iface}"`, 'ct direction reply', syn, `tcp option maxseg size > ${mss}`, `tcp option maxseg size set ${mss}`]);
  if (g.masquerade && g.interfaces.length) rule('postrouting', 'masquerade', [nfproto, `oifname "${g.iface}"`, `iifname ${quoted(g.interfaces)}`, 'masquerade']);
  if (g.masquerade && g.sources.length) rule('postrouting', 'masquerade-src', [nfproto, `oifname "${g.iface}"`, 'meta iif != 0', `${ip} saddr ${inline(g.sources)}`, 'masquerade']);
  return {
    chains: [BASE_CHAINS.prerouting, BASE_CHAINS.forward, ...(g.masquerade ? [BASE_CHAINS.postrouting] : [])],
    sets: [],
    rules,
  };
}
