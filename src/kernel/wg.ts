/**
 * WireGuard endpoints via `wg show IFACE endpoints`: works for kernel WireGuard and for
 * userspace implementations (wireguard-go) alike, which a netlink genl query would not.
 */
import { execa } from 'execa';
import { parseAddress } from '../model/prefix.js';
import type { Endpoint } from '../compile/facts.js';

/** Parse `wg show IFACE endpoints` output: `<pubkey>\t<ip:port | [ip6]:port | (none)>`. */
export function parseEndpoints(text: string): Endpoint[] {
  const out: Endpoint[] = [];
  for (const line of text.split('\n')) {
    const ep = line.split('\t')[1]?.trim();
    if (!ep || ep === '(none)') continue;
    const m = /^\[(.+)\]:(\d+)$/.exec(ep) ?? /^([^:]+):(\d+)$/.exec(ep);
    if (!m) continue;
    const a = parseAddress(m[1].replace(/%.*$/, ''));
    if (!a) continue;
    out.push({ family: a.family, address: m[1].replace(/%.*$/, ''), port: Number(m[2]) });
  }
  return out;
}

export async function wgEndpoints(iface: string): Promise<{ endpoints: Endpoint[]; note?: string }> {
  try {
    const r = await execa('wg', ['show', iface, 'endpoints'], { reject: false, timeout: 5000 });
    if (r.exitCode !== 0) return { endpoints: [], note: `wg show ${iface} endpoints failed: ${String(r.stderr).trim() || 'exit ' + r.exitCode}` };
    return { endpoints: parseEndpoints(String(r.stdout)) };
  } catch (e) {
    return { endpoints: [], note: `wg (wireguard-tools) not available: ${(e as Error).message.split('\n')[0]}` };
  }
}
