/**
 * Gateway mode, the parts besides the nftables objects (gateway.ts): the checks that need
 * the whole compile (forwarding on, masquerade = false in fwmark mode), the throws fwmark
 * mode's table needs for strict reverse-path filtering, and the notes status shows. Pure.
 */
import { PROTOCOL_TAG, ROUTE_METRIC } from '../model/constants.js';
import { aggregate, formatPrefix, parsePrefix, type Family } from '../model/prefix.js';
import type { RouteSpec } from '../model/route.js';
import type { Profile } from '../profile/types.js';
import type { Desired } from './desired.js';
import type { ConnectedRoute, Facts } from './facts.js';
import { gatewaySelection, type GatewaySelection } from './gateway.js';

/** The sysctl that must be on for a family's forwarded traffic (wgsplit never sets it). */
export const FORWARDING_SYSCTL: Record<Family, string> = { 4: 'net/ipv4/ip_forward', 6: 'net/ipv6/conf/all/forwarding' };

/**
 * Forwarding off: the kernel drops every forwarded packet before the tunnel, so a gateway
 * profile cannot work. wgsplit never turns forwarding on (that decides whether this host
 * is a router at all, which is the administrator's call): compile fails, nothing is
 * written, and the message names the sysctl. The unit keeps no gateway objects, so a
 * lenient watcher applies only what the profile's host part wants.
 *
 * IPv6 is an error only when the profile asks for it: an IPv6 source prefix in `from`, or
 * `families` naming ipv6. A profile of interfaces alone (`from = ["docker0"]`) on a host
 * that forwards IPv4 only is the common docker host: its IPv6 part is installed anyway
 * (harmless while the kernel forwards nothing, and right at once, kill switch included,
 * when forwarding is turned on later) and a warning says why it does nothing yet.
 */
function forwardingOff(d: Desired, f: Facts): void {
  for (const u of d.units) {
    const sel = gatewaySelection(u.profile.from, u.family);
    if ((u.status !== 'active' && u.status !== 'down') || !sel) continue;
    const value = f.forwarding?.[u.family];
    if (value === undefined || value !== 0) continue;
    const name = FORWARDING_SYSCTL[u.family].replace(/\//g, '.');
    const what = [...sel.interfaces, ...u.profile.from.sources.filter((s) => s.prefixes.some((p) => p.family === u.family)).map((s) => s.text)].join(', ');
    if (u.family === 6 && sel.sources.length === 0 && !u.profile.families?.includes(6)) {
      d.warnings.push(`profile ${u.profile.name}: ${name} = 0, so the kernel forwards no IPv6 and the clients on ${what} have none to divert; installed anyway, in effect once IPv6 forwarding is on (wgsplit never turns it on)`);
      continue;
    }
    d.errors.push(
      `profile ${u.profile.name}: forwards IPv${u.family} traffic from ${what}, but ${name} = 0 (forwarding is off, the kernel drops forwarded packets); ` +
        `wgsplit never turns it on: run \`sysctl -w ${name}=1\` (and keep it in /etc/sysctl.d)${u.family === 6 ? ', or set families = ["ipv4"] in the profile' : ''}`,
    );
    if (u.nft) {
      const rules = u.nft.rules.filter((r) => !r.key.includes('/gw/'));
      u.nft = rules.length ? { chains: u.nft.chains.filter((c) => rules.some((r) => r.chain === c.name)), sets: u.nft.sets, rules } : undefined;
    }
    u.rules = u.rules.filter((r) => r.fwmark === undefined || u.profile.from.host);
  }
}

/** Checks that need the whole compile: forwarding, and masquerade = false in fwmark mode. */
export function gatewayChecks(d: Desired, f: Facts): void {
  forwardingOff(d, f);
  // fwmark mode masquerades every marked packet leaving the tunnel, the host's and the
  // forwarded alike: it cannot keep the clients' sources.
  const u = d.units.find(
    (x) => x.mode === 'fwmark' && x.profile.from.host && !x.profile.masquerade && gatewaySelection(x.profile.from, x.family) && (x.status === 'active' || x.status === 'down'),
  );
  if (u) d.errors.push(`profile ${u.profile.name}: masquerade = false with "host" in from needs rule mode (in fwmark mode the host's masquerade also rewrites the clients' packets); put the host in a profile of its own`);
}

/**
 * fwmark mode's T holds only the way out, but with src_valid_mark = 1 the reverse-path
 * check of a client's packet looks its source up WITH the mark, in T, and strict
 * rp_filter on the client's interface would drop it. Throws for the connected networks
 * send that lookup back to main (rule mode's T has them anyway, with exclude_connected).
 */
export function connectedThrows(p: Profile, family: Family, connected: ConnectedRoute[]): RouteSpec[] {
  if (!p.excludeConnected) return [];
  const nets = connected.flatMap((c) => {
    const r = c.dev === p.interface ? undefined : parsePrefix(c.prefix);
    return r?.ok && r.prefix.family === family && r.prefix.len > 0 ? [r.prefix] : [];
  });
  return aggregate(nets).map((t) => ({ family, table: p.table, type: 'throw', dst: formatPrefix(t), metric: ROUTE_METRIC[family], protocol: PROTOCOL_TAG }));
}

/** What status and explain say about a unit's gateway part. */
export function gatewayNotes(p: Profile, gw: GatewaySelection): string[] {
  const what = [...gw.interfaces, ...gw.sources.map(formatPrefix)].join(', ');
  return [
    `gateway: forwarded traffic from ${what} is marked in nftables (connections the clients start, not replies) and routed by fwmark${p.masquerade ? ', masqueraded to the tunnel address' : ', not masqueraded'}`,
    ...(p.from.host ? [] : ['the host\'s own traffic is not diverted (no "host" in from)']),
  ];
}
