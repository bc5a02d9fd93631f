/**
 * Profiles + facts -> desired rules and routes. Pure.
 *
 * Per profile and family, table T holds:
 *   - a unicast route via the interface (src = its address) for each include prefix; for the
 *     default include that is `default dev wg0 src A`;
 *   - with on_down = "block", an `unreachable` twin of each at BLOCK_METRIC: when the
 *     interface goes away the kernel drops the dev route and this one answers, so matching
 *     traffic fails instead of leaking out of the uplink;
 *   - a `throw` for each excluded prefix (aggregated), and with exclude_connected for each
 *     network directly connected to the host (LAN, docker bridges on any range, even a
 *     pinned public one). A throw ends the lookup in T as if nothing matched (ip-route(8)),
 *     so the next rule, main, decides;
 *   - a `throw` for each WireGuard endpoint when the profile can match UDP, or the
 *     tunnel's own encrypted packets would be routed into the tunnel.
 * and rules at priority P, `lookup T`, one per combination of protocol, port ranges and uid
 * ranges, each limited to traffic this host originates (`iif lo`: forwarded traffic, e.g.
 * from docker containers, has its ingress device there) and to lookups where the source
 * is not yet chosen or is the tunnel's own address:
 *   IPv4: `from 0.0.0.0/32` (a new connection's first lookup) and `from <wg address>/32`
 *         (its second lookup, after the source was taken from T's route). A reply from a
 *         server on the host has the uplink address as source and matches neither, so it
 *         leaves where the request came in.
 *   IPv6: a source prefix never matches a lookup without a source (fib6_rule_match), so
 *         one rule `from <wg address>/128` with FIB_RULE_FIND_SADDR: the kernel picks the
 *         source from T's route first and the rule matches when it is the tunnel's.
 */
import { BLOCK_METRIC, PROTOCOL_TAG, ROUTE_METRIC } from '../model/constants.js';
import { ruleSelectors } from '../model/selector.js';
import { parsePrefix, BITS, type Family, type Prefix } from '../model/prefix.js';
import type { PrefixList } from '../model/prefixList.js';
import { packThrows, type ThrowSet } from '../model/throwSet.js';
import { destinations } from './destinations.js';
import type { RouteSpec } from '../model/route.js';
import type { RuleSpec } from '../model/rule.js';
import type { Profile } from '../profile/types.js';
import type { Desired, Unit } from './desired.js';
import { absentInterface, facts, type Facts, type InterfaceFacts } from './facts.js';
import { appsObjects, appsUnavailable, waitingCgroups } from './apps.js';
import { hasApps } from '../profile/apps.js';
import { gatewayObjects, gatewaySelection, type GatewaySelection } from './gateway.js';
import { connectedThrows, gatewayChecks, gatewayNotes } from './gatewayUnit.js';
import { familyTag, fwmarkObjects, ident, prefixSet } from './nftFwmark.js';
import { mergeNft, type NftState } from '../model/nft.js';
import { mergeUnitsNft } from './nftMerge.js';
import { domainObjects, mergeFeeds } from './nftDomains.js';
import { hasDomains } from '../profile/marks.js';
import { withCounters } from './counters.js';
import { bridgeNfNeeds, compileProxyProfile } from './proxy.js';

const FAMILY_NAME: Record<Family, string> = { 4: 'IPv4', 6: 'IPv6' };

export function compile(profiles: Profile[], input: Facts | Map<string, InterfaceFacts>, reuse?: (p: Profile) => Unit[] | undefined): Desired {
  const f = input instanceof Map ? facts(input) : input;
  const out: Desired = { units: [], errors: [], warnings: [] };
  for (const p of profiles) {
    const noApps = appsUnavailable(p, f);
    if (noApps) {
      out.errors.push(noApps);
      continue;
    }
    for (const x of f.cgroups && hasApps(p) ? waitingCgroups(p, f.cgroups) : []) out.warnings.push(`profile ${p.name}: waiting for cgroup ${x}: it does not exist (yet); its traffic is matched once it does`);
    // A domain profile's units carry the drop-in's input (feeds), which the plan cache does not keep.
    const cached = hasDomains(p) ? undefined : reuse?.(p);
    if (cached) out.units.push(...cached);
    else if (p.proxy) compileProxyProfile(p, f, out);
    else compileProfile(p, f, out);
  }
  // The few throws compiled as single routes (gateway and proxy units) join their sets.
  for (const u of out.units) if (u.routes.some((r) => r.type === 'throw')) Object.assign(u, packThrows(u.routes, u.throws));
  // Explicit fwmark profiles are checked for distinct marks when loaded; auto profiles only
  // turn out to be fwmark here, on a kernel without the rule selectors.
  const markOwner = new Map<number, string>();
  for (const u of out.units) {
    // Gateway units mark too (forwarded packets), in either mode.
    if ((u.mode !== 'fwmark' && !gatewaySelection(u.profile.from, u.family)) || u.status === 'absent' || u.status === 'stopped') continue;
    const first = markOwner.get(u.profile.fwmark);
    if (first && first !== u.profile.name) {
      out.errors.push(`profiles ${first} and ${u.profile.name} both use fwmark 0x${u.profile.fwmark.toString(16)} in fwmark mode; give each its own fwmark`);
      u.nft = undefined;
    } else markOwner.set(u.profile.fwmark, u.profile.name);
  }
  // Proxy units deliver forwarded packets locally: ip_forward does not concern them.
  gatewayChecks({ ...out, units: out.units.filter((u) => !u.profile.proxy) }, f);
  out.nft = mergeUnitsNft(out.units);
  out.domainFeeds = mergeFeeds(out.units);
  out.sysctls = [...(rpFilterNeeds(out, f) ?? []), ...bridgeNfNeeds(out)];
  return out;
}

/**
 * fwmark mode sends a connection out of the tunnel with the mark deciding, but the reply
 * arrives on the tunnel unmarked; strict reverse-path filtering (rp_filter = 1) looks up
 * the sender without the mark, finds the uplink, and drops it. Loose mode (2) on the tunnel
 * interface fixes that (the effective value is max(all, device): ip-sysctl.rst). Once set,
 * the state store remembers the original, and wgsplit keeps it until no fwmark profile uses
 * the interface, then restores it.
 */
function rpFilterNeeds(d: Desired, f: Facts): Desired['sysctls'] {
  const out: NonNullable<Desired['sysctls']> = [];
  const seen = new Set<string>();
  for (const u of d.units) {
    // Gateway mode too: the replies of forwarded connections arrive on the tunnel unmarked.
    if ((u.mode !== 'fwmark' && !gatewaySelection(u.profile.from, 4)) || u.family !== 4 || u.status !== 'active' || u.profile.proxy) continue;
    const path = `net/ipv4/conf/${u.profile.interface}/rp_filter`;
    if (seen.has(path)) continue;
    seen.add(path);
    const dev = f.interfaces.get(u.profile.interface)?.rpFilter;
    if (path in f.changedSysctls || dev === 1 || f.rpFilterAll === 1) {
      out.push({ path, value: 2, why: `replies of fwmark-routed connections arrive on ${u.profile.interface} unmarked; strict rp_filter would drop them` });
    }
  }
  return out;
}

/**
 * Could this profile have objects in wgsplit's nftables table? Decides whether reconcile
 * reads the table at all (a rule-mode-only setup with `counters = false` never runs nft).
 * Every nft-using feature adds its condition here (traffic counters: compile/counters.ts).
 */
export function mayNeedNft(p: Profile, selectors: Facts['ruleSelectors']): boolean {
  return p.counters || p.mode === 'fwmark' || (p.mode === 'auto' && !selectors.supported) || hasApps(p) || hasDomains(p) || gatewaySelection(p.from, 4) !== undefined || gatewaySelection(p.from, 6) !== undefined || p.proxy !== undefined;
}

/** The backend for a profile: explicit, or auto = rule mode when the kernel has the selectors. */
export function modeOf(p: Profile, f: Facts): 'rule' | 'fwmark' {
  if (p.mode !== 'auto') return p.mode;
  if (hasApps(p)) return 'fwmark'; // applications are told apart by nftables only
  // Names' addresses are learned at run time into sets: only a mark can match them.
  if (hasDomains(p)) return 'fwmark';
  return f.ruleSelectors.supported ? 'rule' : 'fwmark';
}

/**
 * Which families a profile covers and in what state. Families: the explicit `families`, or
 * every family the interface has (or, while it is down, had) an address in.
 */
function compileProfile(p: Profile, f: Facts, out: Desired): void {
  const iface = f.interfaces.get(p.interface) ?? absentInterface(p.interface);
  const memory = f.remembered.get(p.interface);
  if (f.stopped.has(p.interface)) {
    out.warnings.push(`profile ${p.name}: ${p.interface} was stopped with \`wgsplit down ${p.interface}\`; \`wgsplit up ${p.interface}\` resumes it`);
    for (const family of p.families ?? ([4, 6] as Family[])) {
      out.units.push({ profile: p, family, status: 'stopped', mode: modeOf(p, f), rules: [], routes: [], notes: [`${p.interface} was taken down with \`wgsplit down ${p.interface}\``] });
    }
    return;
  }
  const live = iface.exists && iface.up;
  const has = (x: InterfaceFacts | undefined, fam: Family) => !!x && x.addresses[fam].length > 0;
  const known = ([4, 6] as Family[]).filter((fam) => (live && has(iface, fam)) || has(memory, fam) || (!live && has(iface, fam)));
  const families = p.families ?? known;
  if (!iface.exists && !memory) {
    for (const family of p.families ?? ([4, 6] as Family[])) {
      out.units.push({ profile: p, family, status: 'absent', mode: modeOf(p, f), rules: [], routes: [], notes: [`${p.interface} does not exist`] });
    }
    out.warnings.push(`profile ${p.name}: interface ${p.interface} does not exist; its installed state (if any) is left as it is`);
    return;
  }
  if (families.length === 0) {
    out.errors.push(`profile ${p.name}: ${p.interface} has no IPv4 or IPv6 address, so there is no source address for traffic through it`);
    return;
  }
  for (const family of families) {
    if (live && has(iface, family)) {
      out.units.push(withCounters(compileUnit(p, iface, family, f, 'active')));
    } else if (has(memory, family) || has(iface, family)) {
      // Down, gone, or lost this family's address: keep rules and throws; the kernel has
      // already dropped the dev routes, and on_down decides between unreachable and main.
      const basis = has(iface, family) ? { ...iface, endpoints: memory?.endpoints ?? iface.endpoints } : memory!;
      const u = compileUnit(p, basis, family, f, 'down');
      u.notes.unshift(`${p.interface} is ${!iface.exists ? 'gone' : !iface.up ? 'down' : `without an ${FAMILY_NAME[family]} address`}: on_down = "${p.onDown}"`);
      out.units.push(withCounters(u));
    } else {
      out.errors.push(`profile ${p.name}: families includes ${family === 4 ? 'ipv4' : 'ipv6'} but ${p.interface} has no ${FAMILY_NAME[family]} address`);
    }
  }
}

function compileUnit(p: Profile, iface: InterfaceFacts, family: Family, f: Facts, status: 'active' | 'down'): Unit {
  const notes: string[] = [];
  const connected = f.connected;
  const mode = modeOf(p, f);
  if (p.mode === 'auto' && hasApps(p)) notes.push('mode fwmark (apps: applications are matched by their cgroup in nftables)');
  else if (p.mode === 'auto' && hasDomains(p)) notes.push('mode fwmark (auto: include_domains / exclude_domains are matched by nftables sets dnsmasq fills)');
  else if (p.mode === 'auto') notes.push(mode === 'rule' ? 'mode rule (auto: the kernel stores every rule selector needed)' : `mode fwmark (auto: the kernel lacks rule selectors: ${f.ruleSelectors.missing.join(', ')})`);
  const src = iface.addresses[family][0];
  const metric = ROUTE_METRIC[family];
  const extra: Prefix[] = [];
  const canMatchUdp = p.protocols === undefined || p.protocols.includes('udp');
  if (canMatchUdp) {
    for (const ep of iface.endpoints.filter((e) => e.family === family)) {
      extra.push(parsePrefixOrThrow(`${ep.address}/${BITS[family]}`));
      notes.push(`WireGuard endpoint ${ep.address} is excluded so the tunnel's own UDP does not loop into it`);
    }
  }
  if (p.excludeConnected) {
    for (const c of connected) {
      if (c.dev === p.interface) continue;
      const r = parsePrefix(c.prefix);
      if (r.ok && r.prefix.family === family && r.prefix.len > 0) extra.push(r.prefix);
    }
  }
  const { includes, excludes } = destinations(p, family, extra);
  // Throws outside every include do nothing.
  const usefulThrows = excludes.within(includes);

  const gw = gatewaySelection(p.from, family);
  if (gw) notes.push(...gatewayNotes(p, gw));
  if (mode === 'fwmark') {
    const u = fwmarkUnit(p, iface, family, status, includes, excludes, notes, f, gw);
    if (gw) u.routes.push(...connectedThrows(p, family, connected));
    return u;
  }

  const routes: RouteSpec[] = [];
  for (let i = 0; i < includes.size; i++) {
    const dst = includes.text(i);
    if (status === 'active') routes.push({ family, table: p.table, type: 'unicast', dst, metric, protocol: PROTOCOL_TAG, dev: p.interface, src });
    if (p.onDown === 'block') routes.push({ family, table: p.table, type: 'unreachable', dst, metric: BLOCK_METRIC, protocol: PROTOCOL_TAG });
  }
  // Packed, as the list file was (model/throwSet.ts).
  const throws: ThrowSet[] = usefulThrows.size ? [{ family, table: p.table, metric, protocol: PROTOCOL_TAG, dsts: usefulThrows }] : [];

  const rules: RuleSpec[] = [];
  if (includes.size === 0) {
    notes.push(`nothing of ${FAMILY_NAME[family]} is included once exclusions are applied`);
  } else if (p.from.host) {
    // IPv6 while the tunnel is down with on_down = "block": FIND_SADDR cannot match (the
    // source comes from T's route and only `unreachable` is left), and ip6_dst_lookup_tail
    // ignores an unreachable first lookup and retries with the uplink's source. So the rule
    // loses its source selector: every matching IPv6 lookup from this host hits T and fails,
    // replies of the host's own IPv6 servers to public addresses included, until the tunnel
    // is back. (on_down = "direct" keeps them, at the price of leaking new connections.)
    const v6Block = family === 6 && status === 'down' && p.onDown === 'block';
    if (v6Block) notes.push('IPv6 is blocked without a source selector while the tunnel is down: replies of IPv6 servers on this host to matching public destinations are blocked too');
    const sources: Pick<RuleSpec, 'src' | 'findSaddr'>[] =
      family === 4
        ? [{ src: '0.0.0.0/32' }, ...iface.addresses[4].map((a) => ({ src: `${a}/32` }))]
        : v6Block
          ? [{}]
          : iface.addresses[6].map((a) => ({ src: `${a}/128`, findSaddr: true as const }));
    // One rule per selector combination (model/selector.ts) and source.
    for (const sel of ruleSelectors(p, family))
      for (const s of sources) {
        const r: RuleSpec = { family, priority: p.priority, table: p.table, protocol: PROTOCOL_TAG, iif: 'lo' };
        if (s.src) r.src = s.src;
        if (s.findSaddr) r.findSaddr = true;
        rules.push(Object.assign(r, sel));
      }
  }
  // Gateway mode: marked forwarded packets go to T, whose routes decide the destination.
  if (gw && includes.size) rules.push(markRule(p, family));
  const nft = gw ? gatewayObjects({ ...gatewayInput(p, family, iface, gw), masquerade: p.masquerade }) : undefined;
  return { profile: p, family, status, mode, rules, routes, throws, notes, ...(nft ? { nft } : {}) };
}

/**
 * fwmark mode: nftables decides what is diverted (see nftFwmark.ts), so T holds only the
 * way out (`default dev IFACE`, plus the unreachable fallback for on_down = "block") and
 * one rule per family sends marked packets to it. No source trick is needed: only packets
 * of connections this host opened are marked, and SNAT fixes their source.
 */
function fwmarkUnit(p: Profile, iface: InterfaceFacts, family: Family, status: 'active' | 'down', includes: PrefixList, throws: PrefixList, notes: string[], f: Facts, gw?: GatewaySelection): Unit {
  const routes: RouteSpec[] = [];
  const dst = family === 4 ? '0.0.0.0/0' : '::/0';
  if (status === 'active') routes.push({ family, table: p.table, type: 'unicast', dst, metric: ROUTE_METRIC[family], protocol: PROTOCOL_TAG, dev: p.interface, src: iface.addresses[family][0] });
  if (p.onDown === 'block') routes.push({ family, table: p.table, type: 'unreachable', dst, metric: BLOCK_METRIC, protocol: PROTOCOL_TAG });
  const rules: RuleSpec[] = (includes.size || p.includeDomains.length) && (p.from.host || gw) ? [markRule(p, family)] : [];
  const input = {
    profile: p.name,
    family,
    iface: p.interface,
    mark: p.fwmark,
    mask: p.fwmarkMask,
    protocols: p.protocols,
    dports: p.dports,
    sports: p.sports,
    uids: p.uids,
    include: includes,
    exclude: throws,
  };
  // The host's own traffic: plain marks, or limited to applications or to domain sets (apps
  // and domains in one profile are refused by parse.ts).
  let feeds: Unit['feeds'];
  let host: NftState;
  if (hasDomains(p)) {
    const d = domainObjects({ ...input, includeDomains: p.includeDomains, excludeDomains: p.excludeDomains });
    host = d.nft;
    feeds = d.feeds;
  } else {
    const apps = hasApps(p) && f.cgroups;
    if (apps) for (const x of waitingCgroups(p, apps)) notes.push(`waiting for cgroup ${x}: it does not exist (yet)`);
    host = apps ? appsObjects(input, p, apps) : fwmarkObjects(input);
  }
  const base = `${ident(p.name)}_${familyTag(family)}`;
  const sets = { include: `${base}_include`, exclude: `${base}_exclude` };
  const parts: NftState[] = [];
  if (p.from.host) parts.push(host);
  if (gw) {
    const g = gatewayObjects({ ...gatewayInput(p, family, iface, gw), destSets: sets, masquerade: p.masquerade });
    parts.push({ ...g, sets: [prefixSet(sets.include, family, includes, p.name), prefixSet(sets.exclude, family, throws, p.name)] });
  }
  return { profile: p, family, status, mode: 'fwmark', rules, routes, notes, nft: mergeNft(parts), ...(feeds && p.from.host ? { feeds } : {}) };
}

function parsePrefixOrThrow(text: string): Prefix {
  const r = parsePrefix(text);
  if (!r.ok) throw new Error(r.reason);
  return r.prefix;
}

/** `ip rule fwmark MARK/MASK lookup T`: where packets marked by nftables go. */
function markRule(p: Profile, family: Family): RuleSpec {
  return { family, priority: p.priority, table: p.table, protocol: PROTOCOL_TAG, fwmark: p.fwmark, fwmask: p.fwmarkMask };
}

function gatewayInput(p: Profile, family: Family, iface: InterfaceFacts, gw: GatewaySelection) {
  return { ...gw, profile: p.name, family, iface: p.interface, mark: p.fwmark, mask: p.fwmarkMask, protocols: p.protocols, dports: p.dports, sports: p.sports, mtu: iface.mtu };
}
