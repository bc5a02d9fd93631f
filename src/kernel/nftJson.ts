/**
 * `nft -j list table inet wgsplit` (libnftables-json(5)) -> observed objects. Pure.
 * Elements come back in nft's own forms: a prefix `{prefix: {addr, len}}`, a range
 * `{range: [a, b]}`, a bare address (a host in an interval set), or wrapped as
 * `{elem: {val, timeout, expires}}` in sets with timeouts. They are made canonical so they
 * compare with what compile wrote: prefixes as formatPrefix prints them, a host as /32 or
 * /128 in an interval set, a range that is exactly one prefix as that prefix.
 */
import { HOOK_NUM, type NftChain, type NftHook, type NftKeyType, type NftSet } from '../model/nft.js';
import { BITS, formatPrefix, parseAddress, parsePrefix, type Family } from '../model/prefix.js';
import type { ObservedNft, ObservedNftRule } from '../plan/nftDiff.js';

type J = Record<string, unknown>;

function canonicalPrefix(text: string, interval: boolean): string {
  const r = parsePrefix(text);
  if (r.ok) return interval || text.includes('/') ? formatPrefix(r.prefix) : formatPrefix(r.prefix).replace(/\/(32|128)$/, '');
  return text;
}

/** A range [a, b] as one prefix when it is one, else `a-b`. */
export function rangeElement(a: string, b: string): string {
  const x = parseAddress(a);
  const y = parseAddress(b);
  if (!x || !y || x.family !== y.family) return `${a}-${b}`;
  const bits = BITS[x.family as Family];
  const size = y.addr - x.addr + 1n;
  if (size > 0n && (size & (size - 1n)) === 0n) {
    const len = bits - (size.toString(2).length - 1);
    if ((x.addr & (size - 1n)) === 0n) return formatPrefix({ family: x.family, addr: x.addr, len });
  }
  return `${a}-${b}`;
}

function element(e: unknown, interval: boolean): string {
  if (typeof e === 'string' || typeof e === 'number') return interval ? canonicalPrefix(String(e), true) : String(e);
  const o = e as J;
  if (o.elem) return element((o.elem as J).val, interval);
  if (o.prefix) {
    const p = o.prefix as { addr: string; len: number };
    return canonicalPrefix(`${p.addr}/${p.len}`, true);
  }
  if (o.range) {
    const [a, b] = o.range as [string, string];
    return rangeElement(String(a), String(b));
  }
  return JSON.stringify(e);
}

const PRIORITY_NAMES: Record<string, number> = { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 };

export function parseNftJson(text: string): ObservedNft {
  const doc = JSON.parse(text) as { nftables?: J[] };
  const out: ObservedNft = { present: false, chains: [], sets: [], rules: [] };
  // Same key order as the netlink reader's objects (tag after present).
  for (const item of doc.nftables ?? []) {
    if (item.table) {
      out.present = true;
      const c = (item.table as J).comment;
      if (typeof c === 'string') out.tag = c;
    }
    if (item.chain) {
      const c = item.chain as J;
      const chain: NftChain = { name: String(c.name), owner: '' };
      if (c.hook && (c.hook as string) in HOOK_NUM) {
        chain.type = c.type as NftChain['type'];
        chain.hook = c.hook as NftHook;
        chain.priority = typeof c.prio === 'number' ? c.prio : PRIORITY_NAMES[String(c.prio)] ?? Number(c.prio);
        chain.policy = (c.policy as NftChain['policy']) ?? 'accept';
      }
      out.chains.push(chain);
    }
    if (item.set) {
      const s = item.set as J;
      const flags = ((s.flags as string[] | undefined) ?? []).filter((f) => f === 'interval' || f === 'timeout') as NftSet['flags'];
      const interval = flags.includes('interval');
      const set: NftSet = { name: String(s.name), type: String(s.type) as NftKeyType, flags, elements: ((s.elem as unknown[]) ?? []).map((e) => element(e, interval)), owner: '' };
      if (typeof s.timeout === 'number') set.timeout = s.timeout;
      out.sets.push(set);
    }
    if (item.rule) {
      const r = item.rule as J;
      const rule: ObservedNftRule = { chain: String(r.chain), handle: Number(r.handle) };
      if (typeof r.comment === 'string') rule.comment = r.comment;
      out.rules.push(rule);
    }
  }
  return out;
}
