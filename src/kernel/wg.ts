/**
 * WireGuard endpoints via `wg show IFACE endpoints`: works for kernel WireGuard and for
 * userspace implementations (wireguard-go) alike, which a netlink genl query would not.
 * NOTE: node's execFile, not execa, on purpose: this runs on every `wgsplit up` from
 * wg-quick, and importing execa costs ~130 ms here (more than node's own start-up). And
 * child_process itself is imported only here, when asked: a TCP-only profile never needs
 * the endpoints, and loading the module costs ~10 ms of every start.
 */
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

/** The note wgEndpoints gives when `wg` is missing (reconcile refuses UDP profiles on it). */
export const WG_MISSING = 'wg (wireguard-tools) is not installed: WireGuard endpoints unknown';

export async function wgEndpoints(iface: string): Promise<{ endpoints: Endpoint[]; note?: string }> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => {
    execFile('wg', ['show', iface, 'endpoints'], { timeout: 5000 }, (err, stdout, stderr) => {
      if (!err) return resolve({ endpoints: parseEndpoints(stdout) });
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT') return resolve({ endpoints: [], note: WG_MISSING });
      resolve({ endpoints: [], note: `wg show ${iface} endpoints failed: ${stderr.trim() || e.message}` });
    });
  });
}
