/**
 * Per-profile traffic counters: nft `counter` rules in two chains of wgsplit's own table,
 * one rule per unit (profile and family) and direction. Pure.
 *
 * What "took the profile's path" means here:
 *   out: packets this host sent out of the profile's interface because of the profile.
 *        Counted in `counters_out` (type filter hook postrouting priority 300: after every
 *        routing decision and after masquerade, so the oif is the one the packet really
 *        leaves by; a filter chain sees every packet, unlike the nat chain, which sees only
 *        the first packet of a connection).
 *          fwmark mode: the profile's mark (meta mark & mask == mark) leaving the interface:
 *                       exactly the packets its nft rule diverted.
 *          rule mode:   locally originated (`iif 0`) packets leaving the interface that match
 *                       the profile's selectors (protocol, ports, uid). The interface has no
 *                       route outside wgsplit's tables (wg-quick Table = off), so leaving by it
 *                       means one of them routed it; which profile did is decided by the
 *                       selectors, first profile by priority, as the `ip rule`s do.
 *   in:   replies arriving through the interface on those connections: `ct direction reply`
 *        packets delivered to this host (`counters_in`, type filter hook input: after the
 *        routing decision, after NAT is undone) from the interface, matching the profile's
 *        protocols and ports seen from the reply side (a reply's source port is the
 *        connection's destination port). Replies carry no mark and no uid, so two profiles
 *        on one interface that differ only by uid or destinations share their replies: the
 *        first by priority counts them.
 * A rule ends with `accept`, which ends only this chain (nft(8): other base chains on the
 * hook still see the packet): a packet is counted once, by the first profile that matches,
 * in the order nftMerge gives (profile priority, then family).
 *
 * The counter values are kernel state, not part of the rule text (the rule's comment and
 * hash identify it), so a re-apply that keeps the rule keeps its numbers and diff never
 * sees them; a changed profile (other selectors, interface or mark) is a new rule and its
 * counters start at zero, as a Prometheus counter reset.
 */
import type { NftChain, NftRule, NftState } from '../model/nft.js';
import type { Family } from '../model/prefix.js';
import type { Range } from '../model/rule.js';
import type { Protocol } from '../profile/types.js';
import { mergeNft } from '../model/nft.js';
import type { Unit } from './desired.js';
import { familyTag, hex, ident, type MarkInput } from './nftFwmark.js';
import { nftSelectors } from '../model/selector.js';

export const COUNTER_CHAINS: Record<'out' | 'in', NftChain> = {
  out: { name: 'counters_out', type: 'filter', hook: 'postrouting', priority: 300, policy: 'accept', owner: 'wgsplit' },
  in: { name: 'counters_in', type: 'filter', hook: 'input', priority: 0, policy: 'accept', owner: 'wgsplit' },
};

export type Direction = 'out' | 'in';
export const DIRECTIONS: Direction[] = ['out', 'in'];

/** The rule key of a unit's counter: `<ident>/<v4|v6>/count-<out|in>` (model/nft.ts keys). */
export function counterKey(profile: string, family: Family, dir: Direction): string {
  return `${ident(profile)}/${familyTag(family)}/count-${dir}`;
}

export interface CounterInput extends MarkInput {
  mode: 'rule' | 'fwmark';
  uids: Range[];
}

export function counterObjects(c: CounterInput): NftState {
  const nfproto = `meta nfproto ${c.family === 4 ? 'ipv4' : 'ipv6'}`;
  const out = [nfproto, `oifname "${c.iface}"`];
  if (c.mode === 'fwmark') out.push(`meta mark & ${hex(c.mask)} == ${hex(c.mark)}`);
  else out.push('meta iif 0', ...nftSelectors(c));
  // From the reply side: source and destination ports swap; no uid on an incoming packet.
  const back = nftSelectors({ family: c.family, protocols: c.protocols, dports: c.sports, sports: c.dports, uids: [] });
  const replies = [nfproto, `iifname "${c.iface}"`, 'ct direction reply', ...back];
  const rule = (dir: Direction, expr: string[]): NftRule => ({ chain: COUNTER_CHAINS[dir].name, key: counterKey(c.profile, c.family, dir), expr: [...expr, 'counter', 'accept'].join(' '), owner: c.profile });
  return { chains: [COUNTER_CHAINS.out, COUNTER_CHAINS.in], sets: [], rules: [rule('out', out), rule('in', replies)] };
}

/** A unit with its counters added to its nft objects (installed units only). */
export function withCounters(u: Unit): Unit {
  if ((u.status !== 'active' && u.status !== 'down') || !u.profile.counters) return u;
  const p = u.profile;
  const counters = counterObjects({ profile: p.name, family: u.family, iface: p.interface, mode: u.mode, mark: p.fwmark, mask: p.fwmarkMask, protocols: p.protocols, dports: p.dports, sports: p.sports, uids: p.uids });
  return { ...u, nft: u.nft ? mergeNft([u.nft, counters]) : counters };
}
