/**
 * The dnsmasq drop-in wgsplit writes: one `nftset=` line per domain, naming every set that
 * domain feeds. Pure.
 *
 * dnsmasq keeps one nftset entry per domain: a second `nftset=/example.com/...` line for the
 * same name replaces the first, which is how a domain in two policies ends up filling only
 * one set (OpenWrt pbr #112). So all sets of a name go on one line, comma-separated
 * (dnsmasq(8): `--nftset=/<domain>[/<domain>...]/[(6|4)#[<family>#]<table>#<set>[,...]`),
 * in the order of the profiles' priorities. `4#` / `6#` make dnsmasq add only A answers to
 * an IPv4 set and AAAA answers to an IPv6 set.
 */
import { NFT_TABLE } from '../model/constants.js';
import type { DomainFeed } from '../compile/nftDomains.js';

export const DROPIN_HEADER = '# Written by wgsplit from the include_domains / exclude_domains of its profiles; do not edit\n# (wgsplit apply rewrites it). See wgsplit.toml(5).\n';

/**
 * Is this drop-in text wgsplit's (or no file at all)? A file at the configured path that
 * wgsplit did not write (a mistyped --dnsmasq-conf naming dnsmasq.conf itself) is never
 * overwritten or removed.
 */
export function isOurs(text: string): boolean {
  return text === '' || text.startsWith(DROPIN_HEADER.split('\n')[0]);
}

/** The file's whole content; '' when no profile lists a domain (the file is then removed). */
export function renderDropin(feeds: DomainFeed[]): string {
  const byDomain = new Map<string, string[]>();
  for (const f of feeds)
    for (const d of f.domains) {
      const sets = byDomain.get(d) ?? byDomain.set(d, []).get(d)!;
      const ref = `${f.family}#inet#${NFT_TABLE}#${f.set}`;
      if (!sets.includes(ref)) sets.push(ref);
    }
  if (!byDomain.size) return '';
  const lines = [...byDomain.keys()].sort().map((d) => `nftset=/${d}/${byDomain.get(d)!.join(',')}`);
  return DROPIN_HEADER + lines.join('\n') + '\n';
}

/** Domain set names the drop-in refers to (a set re-created empty needs dnsmasq's cache cleared). */
export function feedSets(feeds: DomainFeed[]): Set<string> {
  return new Set(feeds.map((f) => f.set));
}

/**
 * Did this plan create (or re-create) a domain set the drop-in feeds? Such a set starts
 * empty while dnsmasq may still answer its names from its cache, which adds nothing.
 */
export function cacheStale(feeds: DomainFeed[], ops: readonly { kind: string; op: string; set?: unknown }[]): boolean {
  const sets = feedSets(feeds);
  return ops.some((o) => o.kind === 'nft-set' && (o.op === 'add' || o.op === 'replace') && sets.has((o.set as { name: string }).name));
}
