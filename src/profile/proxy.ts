/**
 * Proxy profiles (`proxy_port`, `proxy_address`, `bypass_uids`, `bypass_mark`): matching
 * traffic is handed to a local transparent proxy (TPROXY) instead of an interface. Pure;
 * problems carry positions (parse.ts passes its `at`/`atValue`).
 *
 * The loop guard: a proxy that is given the host's own traffic also originates traffic
 * itself (its outbound connections to the real destinations). Unless those are recognised
 * by the proxy's uid (`bypass_uids`, nft `meta skuid`) or by the mark it sets on its sockets
 * (`bypass_mark`, SO_MARK: clash's routing-mark, sing-box's routing_mark, xray's
 * sockopt.mark), they match the profile again and go back into the proxy, forever. Such a
 * profile is refused when loaded.
 */
import { parseAddress, type Family } from '../model/prefix.js';
import type { Range } from '../model/rule.js';
import type { RawProfile } from './schema.js';
import type { FromSpec, Protocol, ProxyTarget } from './types.js';

type At = (message: string, key?: string, index?: number) => void;
type AtValue = (message: string, key: string) => void;
type Ranges = (key: string, list: (number | string)[] | undefined, min: number, max: number, at: At) => Range[];

/** The interface name of proxy profiles: the table's `local default dev lo` delivers there. */
export const PROXY_INTERFACE = 'lo';
export const DEFAULT_PROXY_ADDRESS: Record<Family, string> = { 4: '127.0.0.1', 6: '::1' };
/** TPROXY takes TCP and UDP only (nft(8) TPROXY: a transport protocol match is required). */
export const PROXY_PROTOCOLS: Protocol[] = ['tcp', 'udp'];

const MAX_UID = 4294967294;

export interface ProxyParse {
  proxy?: ProxyTarget;
  /** the families the proxy addresses cover when `families` is not set */
  families?: Family[];
}

export function parseProxy(
  raw: RawProfile,
  ctx: { from: FromSpec; families?: Family[]; protocols?: Protocol[]; fwmark: number; fwmarkMask: number; at: At; atValue: AtValue; ranges: Ranges },
): ProxyParse {
  const { at, atValue } = ctx;
  if (raw.proxy_port === undefined) {
    for (const k of ['proxy_address', 'bypass_uids', 'bypass_mark'] as const) {
      if (raw[k] !== undefined) atValue(`${k} applies to proxy profiles only: set proxy_port (and remove interface) to hand traffic to a local proxy`, k);
    }
    return {};
  }
  if (raw.interface !== undefined) atValue('interface and proxy_port exclude each other: a profile sends its traffic to a WireGuard interface or to a local proxy, not both', 'proxy_port');
  if (raw.proxy_port < 1 || raw.proxy_port > 65535) atValue(`proxy_port ${raw.proxy_port} is out of range (1-65535)`, 'proxy_port');
  if (raw.mode !== undefined && raw.mode !== 'auto' && raw.mode !== 'fwmark') atValue(`mode "${raw.mode}": a proxy profile always works with nftables marks (TPROXY has no policy-rule form); remove mode`, 'mode');
  if (raw.masquerade !== undefined) atValue('masquerade does not apply to a proxy profile: its traffic is delivered to the proxy on this host, not forwarded', 'masquerade');
  if (raw.on_down !== undefined) atValue('on_down does not apply to a proxy profile: there is no interface to go down; a proxy that is not running refuses the traffic (nothing leaks)', 'on_down');
  if (ctx.protocols?.includes('icmp')) atValue('protocols: a transparent proxy takes tcp and udp only (TPROXY); remove "icmp"', 'protocols');

  // Addresses: one per family; the default is each family's loopback.
  const addresses: Partial<Record<Family, string>> = {};
  let families = ctx.families;
  if (raw.proxy_address !== undefined) {
    const list = typeof raw.proxy_address === 'string' ? [raw.proxy_address] : raw.proxy_address;
    const many = typeof raw.proxy_address !== 'string';
    if (list.length === 0) atValue('proxy_address is empty: give the address the proxy listens on (or remove the key for 127.0.0.1 and ::1)', 'proxy_address');
    list.forEach((text, i) => {
      const bad = (m: string) => (many ? at(`proxy_address[${i}]: ${m}`, 'proxy_address', i) : atValue(`proxy_address: ${m}`, 'proxy_address'));
      const a = text.includes('/') ? undefined : parseAddress(text.trim());
      if (!a) return bad(`"${text}" is not an IPv4 or IPv6 address`);
      if (addresses[a.family]) return bad(`a second IPv${a.family} address ("${text}"); give at most one per family`);
      addresses[a.family] = text.trim();
    });
    const given = ([4, 6] as Family[]).filter((f) => addresses[f]);
    if (families === undefined) families = given;
    else for (const f of families) if (!addresses[f] && given.length) atValue(`families includes ipv${f} but proxy_address has no IPv${f} address`, 'proxy_address');
  } else {
    addresses[4] = DEFAULT_PROXY_ADDRESS[4];
    addresses[6] = DEFAULT_PROXY_ADDRESS[6];
  }

  // Numbers, ranges, or user names resolved through NSS like `uids` (load.ts hands the
  // resolver to the parser).
  const bypassUids: Range[] = [];
  (raw.bypass_uids ?? []).forEach((v, i) => {
    // One element at a time, so problems keep the element's own index.
    bypassUids.push(...ctx.ranges('bypass_uids', [v], 0, MAX_UID, (m) => at(m.replace(/^bypass_uids\[0\]/, `bypass_uids[${i}]`), 'bypass_uids', i)));
  });
  if (raw.bypass_uids !== undefined && raw.bypass_uids.length === 0) atValue('bypass_uids is empty: list the uid the proxy runs as (or remove the key)', 'bypass_uids');

  const bypassMark = raw.bypass_mark;
  const hex = (n: number) => '0x' + n.toString(16);
  if (bypassMark !== undefined) {
    if (bypassMark <= 0 || bypassMark > 0xffffffff) atValue(`bypass_mark ${hex(bypassMark)} must be a non-zero 32-bit mark`, 'bypass_mark');
    else if ((bypassMark & ctx.fwmarkMask) === ctx.fwmark) atValue(`bypass_mark ${hex(bypassMark)} carries this profile's own fwmark ${hex(ctx.fwmark)} (mask ${hex(ctx.fwmarkMask)}): the proxy's packets would be routed back to it`, 'bypass_mark');
  }

  if (ctx.from.host && raw.bypass_uids === undefined && bypassMark === undefined) {
    atValue(
      'a proxy profile that covers the host\'s own traffic needs bypass_uids (the uid the proxy runs as) or bypass_mark (the mark it sets on its outbound sockets): ' +
        'otherwise the proxy\'s own connections are sent back to it, a loop',
      'proxy_port',
    );
  }
  return { proxy: { port: raw.proxy_port, addresses, bypassUids, ...(bypassMark !== undefined ? { bypassMark } : {}) }, families };
}
