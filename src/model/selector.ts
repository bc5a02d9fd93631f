/**
 * What a profile selects traffic by besides its destinations: protocols, destination and
 * source port ranges, user id ranges. One model with its three renderings, so that the
 * rules compile writes, the nft statements fwmark mode, gateway mode, the proxy target and
 * the counters write, and the reasons `explain` gives cannot drift apart:
 *
 *   ruleSelectors   `ip rule` fields, one combination per rule: a rule holds one protocol
 *                   and one range of each kind (fib_rules.c: FRA_IP_PROTO, FRA_DPORT_RANGE,
 *                   FRA_SPORT_RANGE, FRA_UID_RANGE)
 *   nftSelectors    nft statements with anonymous sets: one rule matches them all
 *   trafficMismatch why a packet is not selected, the first field it fails, in words
 *   uidMismatch     (explain checks a forwarded packet's source between the two)
 */
import { IPPROTO } from './constants.js';
import type { Family } from './prefix.js';
import { rangeText, type Range, type RuleSpec } from './rule.js';

export type Protocol = 'tcp' | 'udp' | 'icmp';

export interface Selector {
  /** undefined: every protocol (no selector) */
  protocols?: Protocol[];
  dports: Range[];
  sports: Range[];
  uids: Range[];
}

export type RuleSelector = Pick<RuleSpec, 'ipproto' | 'dport' | 'sport' | 'uid'>;

/** Every combination, protocols outermost, uids innermost (the order rules are written in). */
export function ruleSelectors(s: Selector, family: Family): RuleSelector[] {
  const protos: (number | undefined)[] = s.protocols ? s.protocols.map((x) => IPPROTO[x][family]) : [undefined];
  const opt = <T>(xs: T[]): (T | undefined)[] => (xs.length ? xs : [undefined]);
  const out: RuleSelector[] = [];
  for (const ipproto of protos)
    for (const dport of opt(s.dports))
      for (const sport of opt(s.sports))
        for (const uid of opt(s.uids)) {
          const r: RuleSelector = {};
          if (ipproto !== undefined) r.ipproto = ipproto;
          if (dport) r.dport = dport;
          if (sport) r.sport = sport;
          if (uid) r.uid = uid;
          out.push(r);
        }
  return out;
}

/** nft's names for the protocols (ICMPv6 is its own protocol, as in IPPROTO). */
const L4: Record<Protocol, Record<Family, string>> = { tcp: { 4: 'tcp', 6: 'tcp' }, udp: { 4: 'udp', 6: 'udp' }, icmp: { 4: 'icmp', 6: 'ipv6-icmp' } };

/** The nft statements selecting the same packets (`th` covers TCP and UDP ports alike). */
export function nftSelectors(s: Selector & { family: Family }): string[] {
  const m: string[] = [];
  if (s.protocols) m.push(`meta l4proto { ${s.protocols.map((p) => L4[p][s.family]).join(', ')} }`);
  if (s.dports.length) m.push(`th dport { ${s.dports.map(rangeText).join(', ')} }`);
  if (s.sports.length) m.push(`th sport { ${s.sports.map(rangeText).join(', ')} }`);
  if (s.uids.length) m.push(`meta skuid { ${s.uids.map(rangeText).join(', ')} }`);
  return m;
}

export function inRanges(v: number | undefined, ranges: readonly Range[]): boolean {
  if (!ranges.length) return true;
  if (v === undefined) return false;
  return ranges.some((r) => v >= r.start && v <= r.end);
}

export interface SelectorQuery {
  proto?: Protocol;
  dport?: number;
  sport?: number;
  uid?: number;
}

/** Why a packet is not selected by protocol, destination or source port (the first it fails); undefined when it is. */
export function trafficMismatch(s: Selector, q: SelectorQuery): string | undefined {
  if (s.protocols && (!q.proto || !s.protocols.includes(q.proto))) return `protocol ${q.proto ?? '(any)'} is not in ${s.protocols.join(', ')}`;
  if (!inRanges(q.dport, s.dports)) return `destination port ${q.dport ?? '(none)'} is not in ${s.dports.map(rangeText).join(', ')}`;
  if (!inRanges(q.sport, s.sports)) return `source port ${q.sport ?? '(none)'} is not in the profile's sports`;
  return undefined;
}

/** Why the sender's uid is not selected (a packet the host sends: forwarded ones have no uid). */
export function uidMismatch(s: Selector, q: SelectorQuery): string | undefined {
  return inRanges(q.uid ?? 0, s.uids) ? undefined : `uid ${q.uid ?? 0} is not in the profile's uids`;
}
