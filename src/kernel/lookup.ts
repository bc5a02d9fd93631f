/**
 * "Which route would this packet take?" asked of the kernel, as `ip route get` does
 * (RTM_GETROUTE with ipproto, ports, uid and mark; Linux 4.18+). Encoding details that give
 * silently wrong answers otherwise (DESIGN.md): ipproto is 1 byte, ports are 2 bytes big
 * endian, and IPv4 needs RTM_F_LOOKUP_TABLE to report the real table instead of 252.
 */
import { parseAddress, type Family } from '../model/prefix.js';

export interface LookupQuery {
  family: Family;
  dst: string;
  ipproto?: number;
  dport?: number;
  sport?: number;
  uid?: number;
  from?: string;
  mark?: number;
  /** a forwarded packet: the interface it came in on (an input route lookup, with `from`) */
  iif?: string;
}

export interface LookupResult {
  ok: boolean;
  /** errno name when the kernel refused (ENETUNREACH for unreachable routes, ...) */
  error?: string;
  table?: number;
  type?: string;
  dev?: string;
  gateway?: string;
  src?: string;
}

export function addressBytes(text: string): { family: Family; bytes: Buffer } | undefined {
  const a = parseAddress(text);
  if (!a) return undefined;
  const n = a.family === 4 ? 4 : 16;
  const b = Buffer.alloc(n);
  let v = a.addr;
  for (let i = n - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return { family: a.family, bytes: b };
}
