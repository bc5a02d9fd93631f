/**
 * Which profiles put a mark on packets (fwmark mode, and every nftables feature that picks
 * traffic rules cannot: forwarded clients, applications, domain sets). Such a profile is
 * routed by `ip rule fwmark MARK/MASK lookup TABLE`, so its mark must be its own: two
 * profiles with one mark would route each other's traffic. One place for the question, so
 * validateSet (every profile at load) and compile (the fwmark rule) never disagree.
 */
import { hasApps } from './apps.js';
import { isGateway } from './from.js';
import type { Profile } from './types.js';

export function usesMarks(p: Profile): boolean {
  // Gateway mode (`from` with interfaces or prefixes) marks forwarded packets in prerouting.
  // Proxy profiles mark what goes to the proxy (output and prerouting).
  return p.mode === 'fwmark' || hasApps(p) || hasDomains(p) || isGateway(p.from) || p.proxy !== undefined;
}

/** Profiles with include_domains / exclude_domains match destinations by nftables sets dnsmasq fills. */
export function hasDomains(p: Pick<Profile, 'includeDomains' | 'excludeDomains'>): boolean {
  return (p.includeDomains?.length ?? 0) > 0 || (p.excludeDomains?.length ?? 0) > 0;
}
