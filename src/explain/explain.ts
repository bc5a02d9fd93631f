/**
 * `wgsplit explain`: why a packet takes the path it takes, in words. Pure: the kernel's
 * answer (a route lookup, see kernel/lookup.ts) comes in as data. Policy rules are asked of
 * the kernel itself; nftables marks are not part of a route lookup, so for fwmark profiles
 * the mark is decided here, from the profile, and the lookup is made with it.
 */
import type { Unit } from '../compile/desired.js';
import type { Facts } from '../compile/facts.js';
import { IPPROTO } from '../model/constants.js';
import { inRanges, trafficMismatch, uidMismatch } from '../model/selector.js';
import { NAMED_SETS, PRIVATE_PARTS } from '../model/namedSets.js';
import { containsAddress, formatPrefix, parseAddress, parsePrefix, type Family, type Prefix } from '../model/prefix.js';
import type { LookupResult } from '../kernel/lookup.js';
import type { Protocol } from '../profile/types.js';
import { appRefusal } from './apps.js';
import { forwardedVerdict, marksForwarded } from './gateway.js';
import { proxyEndpoint } from '../compile/proxy.js';

export interface ExplainQuery {
  family: Family;
  dst: string;
  proto?: Protocol;
  dport?: number;
  sport?: number;
  uid?: number;
  from?: string;
  /** the sending application's cgroup v2 path (explain --app, or --pid's /proc/PID/cgroup) */
  app?: string;
  /** a forwarded packet (gateway mode): the interface it came in on; `from` is its source */
  iif?: string;
}

export interface ProfileVerdict {
  profile: string;
  mode: 'rule' | 'fwmark';
  matches: boolean;
  reason: string;
}

export interface Explanation {
  query: ExplainQuery;
  verdict: 'tunnel' | 'proxy' | 'direct' | 'blocked' | 'unreachable';
  /** the answer in one line */
  headline: string;
  /** the headline with the reasons, for logs and JSON */
  summary: string;
  profile?: string;
  table?: number;
  interface?: string;
  gateway?: string;
  source?: string;
  mark?: number;
  profiles: ProfileVerdict[];
}

const TABLE_NAMES: Record<number, string> = { 254: 'main', 253: 'default', 255: 'local', 52: '52 (tailscale)' };
export const tableName = (t: number | undefined) => (t === undefined ? '?' : TABLE_NAMES[t] ?? String(t));


/** Why a destination is excluded for a unit, naming the named set part when there is one. */
export function exclusionReason(u: Unit, facts: Facts, family: Family, addr: bigint): string | undefined {
  const hit = (p: Prefix) => containsAddress(p, family, addr);
  const iface = facts.interfaces.get(u.profile.interface) ?? facts.remembered.get(u.profile.interface);
  const canUdp = u.profile.protocols === undefined || u.profile.protocols.includes('udp');
  for (const ep of canUdp ? iface?.endpoints ?? [] : []) {
    const a = parseAddress(ep.address);
    if (a && a.family === family && a.addr === addr) return `it is the WireGuard endpoint of ${u.profile.interface} (${ep.address}:${ep.port}), never routed into its own tunnel`;
  }
  for (const src of u.profile.exclude) {
    const p = src.prefixes.find(hit);
    if (!p) continue;
    if (src.text === '@private') {
      const part = PRIVATE_PARTS.find((n) => NAMED_SETS[n].prefixes.some((t) => {
        const r = parsePrefix(t);
        return r.ok && hit(r.prefix);
      }));
      return `excluded by @private (@${part} ${formatPrefix(p)})`;
    }
    return `excluded by ${src.text}${src.text.startsWith('@') || src.text.startsWith('file ') ? ` (${formatPrefix(p)})` : ''}`;
  }
  if (u.profile.excludeConnected) {
    for (const c of facts.connected) {
      if (c.dev === u.profile.interface) continue;
      const r = parsePrefix(c.prefix);
      if (r.ok && hit(r.prefix)) return `${c.prefix} is directly connected on ${c.dev} (exclude_connected)`;
    }
  }
  return undefined;
}

function included(u: Unit, family: Family, addr: bigint): boolean {
  return u.profile.include.some((s) => s.prefixes.some((p) => containsAddress(p, family, addr)));
}

/**
 * Which domain set of a unit holds an address dnsmasq learned (include_domains /
 * exclude_domains), read from the kernel's sets by the caller; undefined: none.
 */
export type Learned = (u: Unit, family: Family, dst: string) => { which: 'include' | 'exclude'; set: string } | undefined;

/** Selector-level verdict of one unit for the query (protocol, ports, uid, source). */
export function judge(u: Unit, q: ExplainQuery, facts: Facts, learned?: Learned): ProfileVerdict {
  const base = { profile: u.profile.name, mode: u.mode };
  const p = u.profile;
  // The profile's selectors, as compile writes them into rules and nft (model/selector.ts).
  const sel = trafficMismatch(p, q);
  if (sel) return { ...base, matches: false, reason: sel };
  const fwd = forwardedVerdict(u, q);
  if (fwd) return { ...base, matches: false, reason: fwd };
  const uid = q.iif ? undefined : uidMismatch(p, q);
  if (uid) return { ...base, matches: false, reason: uid };
  const appWhy = q.iif ? undefined : appRefusal(p, q.app, facts.cgroups);
  if (appWhy) return { ...base, matches: false, reason: appWhy };
  // The loop guard: the proxy's own sockets are never handed back to it.
  if (!q.iif && p.proxy?.bypassUids.length && inRanges(q.uid ?? 0, p.proxy.bypassUids)) return { ...base, matches: false, reason: `uid ${q.uid ?? 0} is in bypass_uids: the proxy's own traffic is not diverted` };
  const addr = parseAddress(q.dst)!.addr;
  const dom = learned?.(u, q.family, q.dst);
  if (!included(u, q.family, addr) && dom?.which !== 'include') {
    const names = u.profile.includeDomains.length ? ` and not in set ${u.feeds?.find((f) => f.set.endsWith('_include_domains'))?.set} (no DNS answer for ${u.profile.includeDomains.join(', ')} through dnsmasq gave it)` : '';
    return { ...base, matches: false, reason: `${q.dst} is not in the profile's include${names}` };
  }
  const ex = exclusionReason(u, facts, q.family, addr);
  if (ex) return { ...base, matches: false, reason: ex };
  if (dom?.which === 'exclude') return { ...base, matches: false, reason: `${q.dst} is in set ${dom.set}, learned from a DNS answer for exclude_domains (${u.profile.excludeDomains.join(', ')}): stays direct` };
  if (q.from && !q.iif && u.mode === 'rule') {
    const own = (facts.interfaces.get(p.interface)?.addresses[q.family] ?? []).includes(q.from);
    const unspecified = q.from === '0.0.0.0' || q.from === '::';
    if (!own && !unspecified) return { ...base, matches: false, reason: `the source ${q.from} is already chosen and is not ${p.interface}'s: replies and bound sockets leave where they belong` };
  }
  return { ...base, matches: true, reason: `matches (${[q.iif && `forwarded from ${q.from} on ${q.iif}`, q.proto && `protocol ${q.proto}`, q.dport !== undefined && `dport ${q.dport}`, !q.iif && p.uids.length && `uid ${q.uid ?? 0}`, q.app !== undefined && (p.apps !== undefined || p.excludeApps !== undefined) && `application ${q.app}`].filter(Boolean).join(', ') || 'any packet'})` };
}

/** The first fwmark unit (by priority) whose nftables rule would mark this packet. */
export function markFor(units: Unit[], q: ExplainQuery, facts: Facts, learned?: Learned): Unit | undefined {
  return units
    // Forwarded packets are marked by gateway units in either mode; the host's own by fwmark units.
    .filter((u) => (q.iif ? marksForwarded(u) : u.mode === 'fwmark' && u.profile.from.host) && u.family === q.family && (u.status === 'active' || u.status === 'down'))
    .sort((a, b) => a.profile.priority - b.profile.priority)
    .find((u) => judge(u, q, facts, learned).matches);
}

export function ipprotoOf(q: ExplainQuery): number | undefined {
  return q.proto ? IPPROTO[q.proto][q.family] : undefined;
}

export function explain(q: ExplainQuery, units: Unit[], facts: Facts, result: LookupResult, marked?: Unit, learned?: Learned): Explanation {
  const mine = units.filter((u) => u.family === q.family && u.status !== 'absent' && u.status !== 'stopped').sort((a, b) => a.profile.priority - b.profile.priority);
  const profiles = mine.map((u) => judge(u, q, facts, learned));
  const byTable = mine.find((u) => u.profile.table === result.table);
  const what = [q.proto, q.dport !== undefined && `dport ${q.dport}`, q.uid !== undefined && `uid ${q.uid}`].filter(Boolean).join(' ');
  const head = `${q.dst}${what ? ' ' + what : ''}${q.iif ? ` from ${q.from} on ${q.iif}` : ''}`;
  const base = { query: q, profiles, mark: marked?.profile.fwmark };
  if (!result.ok) {
    const blockedBy = byTable ?? mine.find((u) => profiles.find((v) => v.profile === u.profile.name)?.matches && u.status === 'down');
    if (blockedBy && blockedBy.status === 'down') {
      return {
        ...base,
        verdict: 'blocked',
        profile: blockedBy.profile.name,
        table: blockedBy.profile.table,
        interface: blockedBy.profile.interface,
        headline: `${head}: blocked: ${blockedBy.profile.interface} is down and on_down = "block" (profile ${blockedBy.profile.name}, unreachable in table ${blockedBy.profile.table})`,
        summary: `${head}: blocked: ${blockedBy.profile.interface} is down and on_down = "block" (profile ${blockedBy.profile.name}, unreachable in table ${blockedBy.profile.table})`,
      };
    }
    return { ...base, verdict: 'unreachable', headline: `${head}: no route (${result.error})`, summary: `${head}: no route (${result.error})` };
  }
  if (marked?.profile.proxy && result.table === marked.profile.table) {
    const line = `${head}: to the proxy at ${proxyEndpoint(marked.profile.proxy, q.family)} (profile ${marked.profile.name}: marked 0x${marked.profile.fwmark.toString(16)} by nftables, TPROXY; rule fwmark -> table ${result.table}, local)`;
    return { ...base, verdict: 'proxy', profile: marked.profile.name, table: result.table, interface: result.dev, headline: line, summary: line };
  }
  const tunnel = mine.find((u) => !u.profile.proxy && u.profile.table === result.table && u.profile.interface === result.dev);
  if (tunnel) {
    // A forwarded packet keeps the client's source up to the tunnel, where it is masqueraded.
    const masq = q.iif && tunnel.profile.masquerade ? facts.interfaces.get(tunnel.profile.interface)?.addresses[q.family][0] : undefined;
    const src = masq ? `, masqueraded to ${masq}` : q.iif && !tunnel.profile.masquerade ? `, source ${q.from} kept (masquerade = false)` : result.src ? `, source ${result.src}` : '';
    const how = tunnel.mode === 'fwmark' || q.iif ? `marked 0x${tunnel.profile.fwmark.toString(16)} by nftables, rule fwmark` : `rule pref ${tunnel.profile.priority}`;
    return {
      ...base,
      verdict: 'tunnel',
      profile: tunnel.profile.name,
      table: result.table,
      interface: result.dev,
      source: result.src,
      headline: `${head}: through the tunnel ${result.dev} (profile ${tunnel.profile.name}: ${how} -> table ${result.table}${src})`,
      summary: `${head}: through the tunnel ${result.dev} (profile ${tunnel.profile.name}: ${how} -> table ${result.table}${src})`,
    };
  }
  const why = profiles.length
    ? profiles.map((v) => `profile ${v.profile}: ${v.matches ? 'matches, but the kernel chose another route (drift? see wgsplit diff)' : v.reason}`).join('; ')
    : `no profile covers IPv${q.family}`;
  return {
    ...base,
    verdict: 'direct',
    table: result.table,
    interface: result.dev,
    gateway: result.gateway,
    source: result.src,
    headline: `${head}: direct via ${result.dev ?? '?'}${result.gateway ? ` (gateway ${result.gateway})` : ''}, table ${tableName(result.table)}`,
    summary: `${head}: direct via ${result.dev ?? '?'}${result.gateway ? ` (gateway ${result.gateway})` : ''}, table ${tableName(result.table)}; ${why}`,
  };
}
