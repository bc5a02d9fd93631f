/**
 * fwmark mode's nftables objects for one unit (profile and family). Pure.
 *
 *   output chain (type route, hook output: a mark change there makes the kernel route the
 *   packet again, ip_route_me_harder): packets this host originates, in the original
 *   direction of their connection (replies of local servers are the reply direction and stay
 *   untouched), matching protocol / ports / uid, to an included destination that is not
 *   excluded (interval sets: 100k prefixes cost a set lookup, not a rule chain), not yet
 *   marked by an earlier profile -> mark. Then `ip rule fwmark M/mask lookup T` sends them to
 *   T (`default dev wg0`).
 *   postrouting chain (nat): what leaves the interface with our mark was routed with the
 *   uplink's source address; masquerade rewrites it to the interface's address.
 */
import { createHash } from 'node:crypto';
import { BASE_CHAINS, type NftSet, type NftState } from '../model/nft.js';
import type { Family } from '../model/prefix.js';
import type { PrefixList } from '../model/prefixList.js';
import type { Range } from '../model/rule.js';
import type { Protocol } from '../profile/types.js';
import { nftSelectors } from '../model/selector.js';

export const hex = (n: number) => '0x' + (n >>> 0).toString(16).padStart(8, '0');

/**
 * A profile name as part of an nft identifier. Profile names are file names, so anything
 * goes: nft identifiers must start with a letter (`10-office` is a syntax error) and are at
 * most 256 bytes (set names 255). A plain short name is used as is; any other is shortened
 * and gets a hash of itself, so `office-a` and `office_a` never share a set.
 */
export const ident = (s: string) =>
  /^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(s) ? s : `p_${s.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 64)}_${createHash('sha256').update(s).digest('hex').slice(0, 8)}`;

export const familyTag = (f: Family) => (f === 4 ? 'v4' : 'v6');
export const ipKeyword = (f: Family) => (f === 4 ? 'ip' : 'ip6');

/** What every marking part of a unit knows: whose, which family, the mark, the selectors. */
export interface MarkInput {
  profile: string;
  family: Family;
  iface: string;
  mark: number;
  mask: number;
  protocols?: Protocol[];
  dports: Range[];
  sports: Range[];
}

export interface FwmarkInput extends MarkInput {
  uids: Range[];
  include: PrefixList;
  exclude: PrefixList;
}

export function prefixSet(name: string, family: Family, prefixes: PrefixList, owner: string): NftSet {
  return { name, type: family === 4 ? 'ipv4_addr' : 'ipv6_addr', flags: ['interval'], elements: prefixes.texts(), owner };
}

export function fwmarkObjects(f: FwmarkInput): NftState {
  const base = `${ident(f.profile)}_${familyTag(f.family)}`;
  const ip = ipKeyword(f.family);
  const nfproto = `meta nfproto ${f.family === 4 ? 'ipv4' : 'ipv6'}`;
  const sets = [prefixSet(`${base}_include`, f.family, f.include, f.profile), prefixSet(`${base}_exclude`, f.family, f.exclude, f.profile)];
  const mark = [nfproto, `meta mark & ${hex(f.mask)} == 0`, 'ct direction original', ...nftSelectors(f)];
  mark.push(`${ip} daddr @${base}_include`, `${ip} daddr != @${base}_exclude`, `meta mark set meta mark & ${hex(~f.mask)} | ${hex(f.mark)}`);
  const key = `${ident(f.profile)}/${familyTag(f.family)}`;
  return {
    chains: [BASE_CHAINS.output, BASE_CHAINS.postrouting],
    sets,
    rules: [
      { chain: 'output', key: `${key}/mark`, expr: mark.join(' '), owner: f.profile },
      { chain: 'postrouting', key: `${key}/masquerade`, expr: `${nfproto} oifname "${f.iface}" meta mark & ${hex(f.mask)} == ${hex(f.mark)} masquerade`, owner: f.profile },
    ],
  };
}
