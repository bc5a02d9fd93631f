/**
 * The `from` key: where a profile's traffic comes from. Pure; problems carry the element's
 * position (parse.ts passes its `at`).
 *
 *   "host"          the host's own traffic (the default): policy rules with `iif lo`
 *   "docker0"       forwarded traffic that came in on that interface
 *   "br-*"          ... on any interface whose name starts with "br-" (nft's iifname
 *                   wildcard, evaluated per packet: docker's per-network bridges created
 *                   later are covered without touching the kernel)
 *   "192.168.1.0/24", "2001:db8::/64", "@rfc1918"
 *                   forwarded traffic whose source is in the prefix (never the host's
 *                   own, even though its LAN address is in the prefix: only packets that
 *                   came in through an interface other than lo are matched)
 */
import { namedSet } from '../model/namedSets.js';
import { parsePrefix, type Prefix } from '../model/prefix.js';
import type { FromSpec, PrefixSource } from './types.js';

type At = (message: string, key?: string, index?: number) => void;

/** An interface name (IFNAMSIZ 16 with the NUL) with an optional `*` at the end. */
const IFACE_PATTERN = /^[A-Za-z0-9_.:@-]{1,15}\*?$/;
const LOOKS_LIKE_ADDRESS = /^[0-9.]+(\/.*)?$|:/;

export const HOST_ONLY: FromSpec = { host: true, interfaces: [], sources: [] };

export function parseFrom(list: string[] | undefined, tunnel: string, at: At, atValue: (message: string, key: string) => void): FromSpec {
  if (list === undefined) return HOST_ONLY;
  const out: FromSpec = { host: false, interfaces: [], sources: [] };
  if (list.length === 0) atValue('from is empty: list "host", interfaces or source prefixes (or remove the key for "host")', 'from');
  const seen = new Set<string>();
  list.forEach((raw, i) => {
    const bad = (m: string) => at(`from[${i}]: ${m}`, 'from', i);
    const text = raw.trim();
    if (seen.has(text)) return bad(`"${text}" is listed twice`);
    seen.add(text);
    if (text === 'host') {
      out.host = true;
      return;
    }
    if (text.startsWith('@')) {
      const set = namedSet(text.slice(1));
      if (!set) return bad(`unknown named set "${text}"`);
      out.sources.push({ text, prefixes: set.prefixes.map((p) => (parsePrefix(p) as { ok: true; prefix: Prefix }).prefix) });
      return;
    }
    if (LOOKS_LIKE_ADDRESS.test(text)) {
      const r = parsePrefix(text.includes('/') ? text : `${text}/${text.includes(':') ? 128 : 32}`);
      if (!r.ok) return bad(r.reason);
      if (r.prefix.len === 0) return bad(`${text} is every source: name the interfaces or prefixes of the clients (the uplink's inbound connections must keep their path)`);
      out.sources.push({ text, prefixes: [r.prefix] } satisfies PrefixSource);
      return;
    }
    if (text === '*') return bad('"*" matches every interface, the uplink too (a published port would be answered through the tunnel); name the interfaces, e.g. "br-*"');
    if (!IFACE_PATTERN.test(text)) return bad(`"${text}" is not "host", an interface name (1-15 characters, "*" only at the end) or a prefix`);
    if (text === 'lo') return bad('"lo" is the host\'s own traffic: write "host"');
    if (text === tunnel || (text.endsWith('*') && tunnel.startsWith(text.slice(0, -1)))) return bad(`"${text}" matches ${tunnel}, the profile's own interface: its traffic cannot be sent back into it`);
    out.interfaces.push(text);
  });
  return out;
}

/** Does the profile divert forwarded traffic (anything in `from` but "host")? */
export function isGateway(f: FromSpec): boolean {
  return f.interfaces.length > 0 || f.sources.length > 0;
}
