/**
 * A profile with include_domains / exclude_domains: its nftables objects for one unit
 * (profile and family). Pure.
 *
 * The addresses behind a name are known only when someone looks the name up, so they cannot
 * be routes: dnsmasq adds each address of an upstream answer for a listed name (or a
 * subdomain of it) to a set of ours (`nftset=`, dnsmasq(8)), and a rule in the output chain
 * marks what goes to them. The profile is then routed the fwmark way (nftFwmark.ts): table T
 * holds `default dev IFACE`, `ip rule fwmark MARK/MASK lookup T` sends marked packets there,
 * masquerade gives them the tunnel's source. Prefixes stay interval sets, so include,
 * exclude, ports, protocols and uids combine with names in the same rules:
 *
 *   mark          ... daddr @include          daddr != @exclude daddr != @exclude_domains -> mark
 *   mark-domains  ... daddr @include_domains  daddr != @exclude daddr != @exclude_domains -> mark
 *
 * Exclusions win, as everywhere: a listed name that resolves into @private, the WireGuard
 * endpoint or a connected network stays direct.
 *
 * The domain sets are `external`: wgsplit creates them (before dnsmasq is told about them,
 * see src/dnsmasq/) and never adds or removes elements; diff never reports what dnsmasq
 * learned. Keys ipv4_addr / ipv6_addr (dnsmasq adds single addresses), flags timeout.
 */
import { BASE_CHAINS, type NftSet, type NftState } from '../model/nft.js';
import type { Family } from '../model/prefix.js';
import { familyTag, hex, ident, ipKeyword, prefixSet, type FwmarkInput } from './nftFwmark.js';
import { nftSelectors } from '../model/selector.js';

/**
 * Default element timeout of the domain sets: one day. dnsmasq's nftset adds elements with
 * a plain `add element` (no timeout of their own; measured: test/e2e/domains.test.ts), so
 * the set's timeout is each address's lifetime. dnsmasq adds an address only when an answer
 * comes from upstream, never when it answers from its cache, and an `add` of an element
 * already present does not restart its timer (nft 1.0.6). So the timeout must outlast the
 * cached answers clients keep getting: answers are cached for their TTL (dnsmasq keeps
 * them for at most max-cache-ttl when set), rarely more than a day, usually minutes. Once an
 * element has expired, the next upstream answer (at the latest one TTL later) adds it
 * again. A day also lets addresses a service stopped using age out the same day, and a
 * long download keeps its path: the rule is evaluated per packet, and an element that
 * expires under a running connection reroutes its remaining packets.
 */
export const DOMAIN_SET_TIMEOUT = 86400;

export interface DomainInput extends FwmarkInput {
  includeDomains: string[];
  excludeDomains: string[];
}

/** What one domain set is filled with: the dnsmasq drop-in's input (src/dnsmasq/dropin.ts). */
export interface DomainFeed {
  set: string;
  family: Family;
  domains: string[];
  profile: string;
}

export function domainSetName(profile: string, family: Family, which: 'include' | 'exclude'): string {
  return `${ident(profile)}_${familyTag(family)}_${which}_domains`;
}

function domainSet(name: string, family: Family, owner: string): NftSet {
  return { name, type: family === 4 ? 'ipv4_addr' : 'ipv6_addr', flags: ['timeout'], timeout: DOMAIN_SET_TIMEOUT, elements: [], external: true, owner };
}

export function domainObjects(f: DomainInput): { nft: NftState; feeds: DomainFeed[] } {
  const base = `${ident(f.profile)}_${familyTag(f.family)}`;
  const key = `${ident(f.profile)}/${familyTag(f.family)}`;
  const ip = ipKeyword(f.family);
  const nfproto = `meta nfproto ${f.family === 4 ? 'ipv4' : 'ipv6'}`;
  const inDom = domainSetName(f.profile, f.family, 'include');
  const exDom = domainSetName(f.profile, f.family, 'exclude');
  const sets: NftSet[] = [];
  const feeds: DomainFeed[] = [];
  if (f.include.size) sets.push(prefixSet(`${base}_include`, f.family, f.include, f.profile));
  sets.push(prefixSet(`${base}_exclude`, f.family, f.exclude, f.profile));
  if (f.includeDomains.length) {
    sets.push(domainSet(inDom, f.family, f.profile));
    feeds.push({ set: inDom, family: f.family, domains: f.includeDomains, profile: f.profile });
  }
  if (f.excludeDomains.length) {
    sets.push(domainSet(exDom, f.family, f.profile));
    feeds.push({ set: exDom, family: f.family, domains: f.excludeDomains, profile: f.profile });
  }
  const head = [nfproto, `meta mark & ${hex(f.mask)} == 0`, 'ct direction original', ...nftSelectors(f)];
  const guard = [`${ip} daddr != @${base}_exclude`, ...(f.excludeDomains.length ? [`${ip} daddr != @${exDom}`] : [])];
  const set = `meta mark set meta mark & ${hex(~f.mask)} | ${hex(f.mark)}`;
  const rules: NftState['rules'] = [];
  if (f.include.size) rules.push({ chain: 'output', key: `${key}/mark`, expr: [...head, `${ip} daddr @${base}_include`, ...guard, set].join(' '), owner: f.profile });
  if (f.includeDomains.length) rules.push({ chain: 'output', key: `${key}/mark-domains`, expr: [...head, `${ip} daddr @${inDom}`, ...guard, set].join(' '), owner: f.profile });
  rules.push({ chain: 'postrouting', key: `${key}/masquerade`, expr: `${nfproto} oifname "${f.iface}" meta mark & ${hex(f.mask)} == ${hex(f.mark)} masquerade`, owner: f.profile });
  return { nft: { chains: [BASE_CHAINS.output, BASE_CHAINS.postrouting], sets, rules }, feeds };
}

/**
 * Every domain feed of the installed units, in the order their rules are (profile priority,
 * then family): the drop-in lists a name's sets in that order.
 */
export function mergeFeeds(units: { status: string; nft?: NftState; feeds?: DomainFeed[]; profile: { priority: number }; family: Family }[]): DomainFeed[] {
  return units
    .filter((u) => u.nft && u.feeds?.length && (u.status === 'active' || u.status === 'down'))
    .sort((a, b) => a.profile.priority - b.profile.priority || a.family - b.family)
    .flatMap((u) => u.feeds!);
}
