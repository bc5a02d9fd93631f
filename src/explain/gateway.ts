/**
 * explain for gateway mode: does a profile's `from` select this packet? Pure. A query with
 * `--iif` is a forwarded packet (source `--from`, came in on `--iif`); without it, the
 * host's own. The nftables mark rule (compile/gateway.ts) matches the ingress interface by
 * name (a trailing `*` is a prefix match, as nft's iifname) or the source by prefix.
 */
import type { Unit } from '../compile/desired.js';
import { gatewaySelection } from '../compile/gateway.js';
import { containsAddress, parseAddress } from '../model/prefix.js';
import type { ExplainQuery } from './explain.js';

export function ifaceMatches(pattern: string, name: string): boolean {
  return pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : pattern === name;
}

/** Units whose nftables rules mark forwarded packets. */
export function marksForwarded(u: Unit): boolean {
  return gatewaySelection(u.profile.from, u.family) !== undefined && !!u.nft;
}

/** Why the profile's `from` does not select the packet, or undefined when it does. */
export function forwardedVerdict(u: Unit, q: ExplainQuery): string | undefined {
  const from = u.profile.from;
  const list = [...(from.host ? ['"host"'] : []), ...from.interfaces.map((i) => `"${i}"`), ...from.sources.map((s) => `"${s.text}"`)].join(', ');
  if (!q.iif) return from.host ? undefined : `the host's own traffic is not in from = [${list}] (forwarded traffic only)`;
  const sel = gatewaySelection(from, q.family);
  const src = q.from ? parseAddress(q.from) : undefined;
  if (sel?.interfaces.some((p) => ifaceMatches(p, q.iif!))) return undefined;
  if (src && sel?.sources.some((p) => containsAddress(p, q.family, src.addr))) return undefined;
  return `forwarded traffic from ${q.from} on ${q.iif} is not in from = [${list}]`;
}
