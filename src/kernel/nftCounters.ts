/**
 * The kernel's traffic counters of wgsplit's counter rules (compile/counters.ts), read with
 * one nfnetlink rule dump (kernel/nftNetlink.ts countersByNetlink); `nft -j list chain inet
 * wgsplit counters_out` (and counters_in) only where that socket cannot be used: nft 1.0.6
 * loads every set element even to list one chain (about a second at 100k prefixes). A rule
 * is found by the key in its comment (model/nft.ts parseRuleComment), never by handle.
 * The JSON form (libnftables-json(5)) carries a counter statement's values inside the
 * rule's expression: {"counter": {"packets": N, "bytes": N}}.
 */
import { NFT_TABLE } from '../model/constants.js';
import { parseRuleComment } from '../model/nft.js';
import { COUNTER_CHAINS } from '../compile/counters.js';
import { WgsplitError } from '../errors.js';
import { nftBinary } from './nft.js';
import { Nfnl, NfnlError } from './nfnetlink.js';
import { countersByNetlink } from './nftNetlink.js';

export interface Counter {
  packets: number;
  bytes: number;
}

/** key -> counter, from the JSON of `nft -j list chain ...`. Pure. */
export function parseCounters(json: string): Map<string, Counter> {
  const out = new Map<string, Counter>();
  const doc = JSON.parse(json) as { nftables?: Record<string, unknown>[] };
  for (const item of doc.nftables ?? []) {
    const r = item.rule as { comment?: string; expr?: Record<string, unknown>[] } | undefined;
    if (!r) continue;
    const id = parseRuleComment(r.comment);
    const c = r.expr?.find((e) => e.counter)?.counter as Counter | undefined;
    if (!id || !c) continue;
    out.set(id.key, { packets: Number(c.packets), bytes: Number(c.bytes) });
  }
  return out;
}

/** Every counter of wgsplit's counter chains; an empty map when the table or chain is not there. */
export async function readCounters(): Promise<Map<string, Counter>> {
  const chains = [COUNTER_CHAINS.out.name, COUNTER_CHAINS.in.name];
  let nl: Nfnl | undefined;
  try {
    nl = new Nfnl();
    return await countersByNetlink(nl, chains);
  } catch (e) {
    if (e instanceof NfnlError && (e.errno === 1 || e.errno === 13)) throw new WgsplitError('ENVIRONMENT', 'permission denied: reading the traffic counters needs root (CAP_NET_ADMIN)', { cause: e });
    // no nfnetlink here: nft(8) below
  } finally {
    nl?.close();
  }
  return readCountersByNft();
}

export async function readCountersByNft(): Promise<Map<string, Counter>> {
  const { execa } = await import('execa');
  const out = new Map<string, Counter>();
  for (const chain of [COUNTER_CHAINS.out.name, COUNTER_CHAINS.in.name]) {
    const r = await execa(nftBinary(), ['-j', 'list', 'chain', 'inet', NFT_TABLE, chain], { reject: false, env: { LC_ALL: 'C' }, maxBuffer: 1 << 26 });
    if (r.exitCode !== 0) {
      const stderr = String(r.stderr);
      if (/No such file or directory/.test(stderr)) continue;
      if (/Operation not permitted|Permission denied/.test(stderr)) throw new WgsplitError('ENVIRONMENT', 'permission denied: reading the traffic counters needs root (CAP_NET_ADMIN)');
      throw new WgsplitError('ENVIRONMENT', `nft list chain inet ${NFT_TABLE} ${chain} failed: ${stderr.split('\n')[0]}`);
    }
    for (const [k, v] of parseCounters(String(r.stdout))) out.set(k, v);
  }
  return out;
}
