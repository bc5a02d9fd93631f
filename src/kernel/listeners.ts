/**
 * Is anything listening on the proxy's port? Read from /proc/net/{tcp,tcp6,udp,udp6}, which
 * list the sockets of the reading process's network namespace (proc(5)). A proxy profile
 * whose proxy is not running fails closed (TPROXY finds no socket; the marked packet is
 * delivered locally and refused), and `status` says why.
 */
import { readFileSync } from 'node:fs';
import type { Family } from '../model/prefix.js';

/** `st` column: TCP_LISTEN; an unconnected UDP socket shows TCP_CLOSE (07). */
const TCP_LISTEN = '0A';
const UDP_UNCONNECTED = '07';

export interface PortListeners {
  tcp: boolean;
  udp: boolean;
}

/** Local addresses (hex, as /proc writes them) of sockets in `state` on `port`. Pure. */
export function socketsOnPort(text: string, port: number, state: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const [addr, p] = f[1].split(':');
    if (parseInt(p, 16) === port && f[3].toUpperCase() === state) out.push(addr);
  }
  return out;
}

/** Per family: a TCP listener and an unconnected UDP socket on the port (any local address). */
export function proxyListeners(port: number, read: (file: string) => string = (f) => readFileSync(f, 'utf8')): Record<Family, PortListeners> {
  const has = (file: string, state: string) => {
    try {
      return socketsOnPort(read(file), port, state).length > 0;
    } catch {
      return false;
    }
  };
  // A dual-stack socket on :: (IPV6_V6ONLY off) takes IPv4 too; /proc/net/tcp6 cannot say
  // which, so a wildcard IPv6 listener counts for both families.
  const wild6 = (file: string, state: string) => {
    try {
      return socketsOnPort(read(file), port, state).includes('00000000000000000000000000000000');
    } catch {
      return false;
    }
  };
  return {
    4: { tcp: has('/proc/net/tcp', TCP_LISTEN) || wild6('/proc/net/tcp6', TCP_LISTEN), udp: has('/proc/net/udp', UDP_UNCONNECTED) || wild6('/proc/net/udp6', UDP_UNCONNECTED) },
    6: { tcp: has('/proc/net/tcp6', TCP_LISTEN), udp: has('/proc/net/udp6', UDP_UNCONNECTED) },
  };
}
