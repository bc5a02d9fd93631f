/**
 * Proxy profiles: matching traffic goes to a local transparent proxy (TPROXY) instead of a
 * WireGuard interface. Pure. Per family (DESIGN.md "TPROXY", verified here with real packets):
 *
 *   table T: `local default dev lo` (ip-route(8) type local: "the destinations are assigned
 *   to this host"), so a marked packet, whatever its destination, is delivered to this host,
 *   where TPROXY has already picked the proxy's socket for it; `ip rule fwmark M/mask lookup
 *   T`. Plus a `throw` for every network the clients and the host sit on (connected networks,
 *   `from`'s source prefixes): with src_valid_mark = 1 (wg-quick sets it) the kernel's
 *   reverse-path check of a client's packet looks its SOURCE up with the mark
 *   (__fib_validate_source); without the throw that lookup hits `local default` and the
 *   packet is dropped as a martian, even with rp_filter = 0.
 *
 *   output (route type): the host's own packets, original direction (replies of the host's
 *   servers are the reply direction), not the proxy's own (`meta skuid != bypass_uids`,
 *   `meta mark != bypass_mark`: the loop guard), not to this host's own addresses, matching
 *   protocol / ports / uids / destination sets -> mark. The mark makes the kernel route the
 *   packet again (ip_route_me_harder): T sends it out through lo, and it comes back in ...
 *
 *   prerouting (filter, mangle): ... on lo with the mark -> `tproxy to ADDR:PORT` (TPROXY is
 *   only allowed in prerouting). Forwarded packets (`from` interfaces and prefixes, as in
 *   gateway mode) are matched, marked and handed over in one rule. The mark is set BEFORE
 *   the tproxy statement: with no proxy listening, tproxy finds no socket and the rule stops
 *   there (NFT_BREAK), but the packet is marked, T delivers it locally, nothing listens, and
 *   the connection fails instead of leaking out of the uplink.
 *
 * The proxy sees the original destination: TPROXY does not rewrite the packet (no NAT), so
 * the accepted socket's own address (TCP) or IP_ORIGDSTADDR (UDP) is where the client was
 * going.
 */
import { PROTOCOL_TAG, ROUTE_METRIC } from '../model/constants.js';
import { BASE_CHAINS, type NftRule, type NftState } from '../model/nft.js';
import { aggregate, formatPrefix, parsePrefix, type Family, type Prefix } from '../model/prefix.js';
import type { PrefixList } from '../model/prefixList.js';
import { destinations } from './destinations.js';
import type { RouteSpec } from '../model/route.js';
import type { Range, RuleSpec } from '../model/rule.js';
import type { Profile, ProxyTarget } from '../profile/types.js';
import type { Desired, Unit } from './desired.js';
import type { Facts } from './facts.js';
import { gatewaySelection } from './gateway.js';
import { familyTag, hex, ident, ipKeyword, prefixSet } from './nftFwmark.js';
import { nftSelectors } from '../model/selector.js';
import { rangeText } from '../model/rule.js';

const FAMILY_NAME: Record<Family, string> = { 4: 'IPv4', 6: 'IPv6' };
const NOT_LOCAL = 'fib daddr type != { local, broadcast, multicast }';

/** `127.0.0.1:7893`, `[::1]:7893`: how nft's tproxy and the messages write the target. */
export function proxyEndpoint(t: ProxyTarget, family: Family): string {
  const a = t.addresses[family] ?? '?';
  return family === 6 ? `[${a}]:${t.port}` : `${a}:${t.port}`;
}

/** The sysctls of br_netfilter: on while it is loaded (docker loads it), per network namespace. */
export const BRIDGE_NF_SYSCTL: Record<Family, string> = { 4: 'net/bridge/bridge-nf-call-iptables', 6: 'net/bridge/bridge-nf-call-ip6tables' };

export function compileProxyProfile(p: Profile, f: Facts, out: Desired): void {
  // Default: both families, but not IPv6 on a host without it (disable_ipv6 removes ::1
  // from lo, and `local ::/0 dev lo` would be refused).
  const lo = f.interfaces.get(p.interface);
  const families = p.families ?? ([4, 6] as Family[]).filter((fam) => p.proxy!.addresses[fam] && (!lo?.exists || lo.addresses[fam].length > 0));
  if (f.stopped.has(p.interface)) {
    out.warnings.push(`profile ${p.name}: proxy profiles were stopped with \`wgsplit down ${p.interface}\`; \`wgsplit up ${p.interface}\` resumes them`);
    for (const family of families) out.units.push({ profile: p, family, status: 'stopped', mode: 'fwmark', rules: [], routes: [], notes: [`stopped with \`wgsplit down ${p.interface}\``] });
    return;
  }
  for (const family of families) {
    if (!p.proxy!.addresses[family]) {
      out.errors.push(`profile ${p.name}: families includes ipv${family} but proxy_address has no ${FAMILY_NAME[family]} address`);
      continue;
    }
    out.units.push(proxyUnit(p, family, f));
  }
}

function proxyUnit(p: Profile, family: Family, f: Facts): Unit {
  const t = p.proxy!;
  const target = proxyEndpoint(t, family);
  const notes = [`to the proxy at ${target}`];
  const connected: Prefix[] = [];
  for (const c of f.connected) {
    const r = parsePrefix(c.prefix);
    if (r.ok && r.prefix.family === family && r.prefix.len > 0 && c.dev !== 'lo') connected.push(r.prefix);
  }
  const gw = gatewaySelection(p.from, family);
  const { includes, excludes } = destinations(p, family, p.excludeConnected ? connected : []);
  const dst = family === 4 ? '0.0.0.0/0' : '::/0';
  const metric = ROUTE_METRIC[family];
  const routes: RouteSpec[] = [{ family, table: p.table, type: 'local', dst, metric, protocol: PROTOCOL_TAG, dev: 'lo' }];
  // Throws for the source validation of clients' packets (see the header).
  for (const x of aggregate([...connected, ...(gw?.sources ?? [])])) routes.push({ family, table: p.table, type: 'throw', dst: formatPrefix(x), metric, protocol: PROTOCOL_TAG });
  const rules: RuleSpec[] = [];
  if (includes.size === 0) notes.push(`nothing of ${FAMILY_NAME[family]} is included once exclusions are applied`);
  else if (p.from.host || gw) rules.push({ family, priority: p.priority, table: p.table, protocol: PROTOCOL_TAG, fwmark: p.fwmark, fwmask: p.fwmarkMask });
  const nft = includes.size ? proxyObjects(p, family, includes, excludes) : undefined;
  return { profile: p, family, status: 'active', mode: 'fwmark', rules, routes, notes, ...(nft ? { nft } : {}) };
}

const quoted = (xs: string[]) => (xs.length === 1 ? `"${xs[0]}"` : `{ ${xs.map((x) => `"${x}"`).join(', ')} }`);
const inline = (xs: Prefix[]) => (xs.length === 1 ? formatPrefix(xs[0]) : `{ ${xs.map(formatPrefix).join(', ')} }`);
const ranges = (xs: Range[]) => (xs.length === 1 ? rangeText(xs[0]) : `{ ${xs.map(rangeText).join(', ')} }`);

/** The nftables objects of one proxy unit (profile and family). */
export function proxyObjects(p: Profile, family: Family, includes: PrefixList, excludes: PrefixList): NftState {
  const t = p.proxy!;
  const base = `${ident(p.name)}_${familyTag(family)}`;
  const key = `${ident(p.name)}/${familyTag(family)}/proxy`;
  const ip = ipKeyword(family);
  const nfproto = `meta nfproto ${family === 4 ? 'ipv4' : 'ipv6'}`;
  const free = `meta mark & ${hex(p.fwmarkMask)} == 0`;
  const setMark = `meta mark set meta mark & ${hex(~p.fwmarkMask)} | ${hex(p.fwmark)}`;
  const tproxy = `tproxy ${ip} to ${proxyEndpoint(t, family)}`;
  const dests = [`${ip} daddr @${base}_include`, `${ip} daddr != @${base}_exclude`];
  const sel = { family, protocols: p.protocols, dports: p.dports, sports: p.sports };
  const rules: NftRule[] = [];
  const rule = (chain: string, what: string, parts: string[]) => rules.push({ chain, key: `${key}/${what}`, expr: parts.join(' '), owner: p.name });
  if (p.from.host) {
    // The host's own packets come back in on lo, marked by the output rule below.
    rule('prerouting', 'lo', [nfproto, 'iifname "lo"', `meta mark & ${hex(p.fwmarkMask)} == ${hex(p.fwmark)}`, ...nftSelectors({ ...sel, dports: [], sports: [], uids: [] }), tproxy, 'accept']);
  }
  const gw = gatewaySelection(p.from, family);
  const tail = ['ct direction original', NOT_LOCAL, ...nftSelectors({ ...sel, uids: [] }), ...dests, setMark, tproxy, 'accept'];
  if (gw?.interfaces.length) rule('prerouting', 'iif', [nfproto, free, `iifname ${quoted(gw.interfaces)}`, ...tail]);
  if (gw?.sources.length) rule('prerouting', 'src', [nfproto, free, 'iifname != "lo"', `${ip} saddr ${inline(gw.sources)}`, ...tail]);
  if (p.from.host) {
    const bypass = [...(t.bypassUids.length ? [`meta skuid != ${ranges(t.bypassUids)}`] : []), ...(t.bypassMark !== undefined ? [`meta mark != ${hex(t.bypassMark)}`] : [])];
    rule('output', 'mark', [nfproto, free, 'ct direction original', ...bypass, NOT_LOCAL, ...nftSelectors({ ...sel, uids: p.uids }), ...dests, setMark]);
  }
  return {
    chains: [BASE_CHAINS.prerouting, ...(p.from.host ? [BASE_CHAINS.output] : [])],
    sets: [prefixSet(`${base}_include`, family, includes, p.name), prefixSet(`${base}_exclude`, family, excludes, p.name)],
    rules,
  };
}

/**
 * br_netfilter (loaded on every docker host, `net.bridge.bridge-nf-call-iptables = 1`) runs
 * the IPv4/IPv6 prerouting hooks for bridged frames from inside the bridge, before the
 * packet reaches ip_rcv; ip_rcv_core then drops the socket TPROXY assigned (skb_orphan: the
 * tproxy socket is not a "prefetched" one), TCP finds no listener for the original
 * destination and resets. The per-bridge switch (`/sys/class/net/BR/bridge/nf_call_iptables`)
 * can only add bridges, not exempt one (br_nf_pre_routing: `!brnet->call_iptables &&
 * !br_opt_get(br, BROPT_NF_CALL_IPTABLES)`), so the namespace-wide sysctls go to 0 while a
 * proxy profile takes forwarded traffic, and are restored when none does. The cost: frames
 * bridged between two ports of one bridge (container to container on one docker network)
 * no longer pass iptables/nftables ip-family hooks, so docker's `icc=false` isolation and
 * hairpin NAT between containers of one bridge stop applying.
 */
export function bridgeNfNeeds(d: Desired): NonNullable<Desired['sysctls']> {
  const out: NonNullable<Desired['sysctls']> = [];
  for (const family of [4, 6] as Family[]) {
    const u = d.units.find((x) => x.profile.proxy && x.family === family && x.status === 'active' && x.nft && gatewaySelection(x.profile.from, family));
    if (u) out.push({ path: BRIDGE_NF_SYSCTL[family], value: 0, why: `br_netfilter would strip the proxy's socket from bridged clients' packets (profile ${u.profile.name})` });
  }
  return out;
}
