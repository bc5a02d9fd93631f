/**
 * wgsplit's table over nfnetlink (nfnetlink.ts): read as objects, and set elements added or
 * removed in one batch. Pure encoding and parsing here; the socket is passed in.
 *
 * Interval sets (prefixes) as the kernel keeps them (nft_set_rbtree; seen here with nft
 * 1.0.6 on Linux 6.18): each interval is a start element and an end element flagged
 * NFT_SET_ELEM_INTERVAL_END whose key is the interval's last address + 1; an interval that
 * reaches the top of the address space has no end element and carries nft's element
 * userdata flag NFTNL_SET_ELEM_F_INTERVAL_OPEN, so nft(8) lists it as the prefix it is. nft
 * also puts a lone end element at address 0 when no interval starts there (a marker older
 * kernels needed); a lone end element is ignored when reading. A dump lists elements from
 * the highest key down.
 */
import { HOOK_NUM, NFT_TABLE_REF, parseRuleComment, type NftChain, type NftHook, type NftKeyType, type NftSet } from '../model/nft.js';
import { NFT_TABLE } from '../model/constants.js';
import { BITS, formatAddress, parsePrefix, type Family } from '../model/prefix.js';
import type { ObservedNft, ObservedNftRule } from '../plan/nftDiff.js';
import { rangeElement } from './nftJson.js';
import { attrs, be32, eachAttr, F_ACK, F_CREATE, F_REQUEST, message, MSG, nested, nftType, NfnlError, str, type Attr, type Nfnl } from './nfnetlink.js';

const HOOK_NAME = Object.fromEntries(Object.entries(HOOK_NUM).map(([k, v]) => [v, k])) as Record<number, NftHook>;
const KEY_TYPE: Record<number, NftKeyType> = { 7: 'ipv4_addr', 8: 'ipv6_addr', 13: 'inet_service', 19: 'mark', 41: 'ifname' };
const SET_F_ANONYMOUS = 0x1;
const SET_F_INTERVAL = 0x4;
const SET_F_TIMEOUT = 0x10;
const ELEM_INTERVAL_END = 0x1;
/** NFTNL_UDATA_SET_ELEM_FLAGS (1), 4 bytes host order: NFTNL_SET_ELEM_F_INTERVAL_OPEN (1). */
const OPEN_INTERVAL_UDATA = Buffer.from([1, 4, 1, 0, 0, 0]);

const cstr = (b: Buffer, off: number, len: number) => b.toString('utf8', off, off + len).replace(/\0.*$/s, '');

/** NFTA_RULE_USERDATA: libnftnl TLVs (u8 type, u8 length); type 0 is the comment. */
function ruleComment(b: Buffer, o: number, l: number): string | undefined {
  for (let u = o; u + 2 <= o + l; u += 2 + b[u + 1]) if (b[u] === 0) return cstr(b, u + 2, b[u + 1]);
  return undefined;
}

/**
 * The values of the `counter` statements of the rules in `chains`, by the key in each
 * rule's comment: one rule dump (NFTA_RULE_EXPRESSIONS: a list of {NFTA_EXPR_NAME,
 * NFTA_EXPR_DATA}; a counter's data holds NFTA_COUNTER_BYTES and _PACKETS, u64). nft(8)
 * would load every set element first to list even one chain.
 */
export async function countersByNetlink(nl: Nfnl, chains: string[]): Promise<Map<string, { packets: number; bytes: number }>> {
  const out = new Map<string, { packets: number; bytes: number }>();
  if (!(await observeTable(nl)).present) return out;
  await nl.dump(MSG.GETRULE, attrs([[1, str(NFT_TABLE)]]), (b, s, e) => {
    let mine = false;
    let chain = '';
    let comment: string | undefined;
    let counter: { packets: number; bytes: number } | undefined;
    eachAttr(b, s, e, (t, o, l) => {
      if (t === 1) mine = cstr(b, o, l) === NFT_TABLE;
      else if (t === 2) chain = cstr(b, o, l);
      else if (t === 7) comment = ruleComment(b, o, l);
      else if (t === 4)
        eachAttr(b, o, o + l, (_lt, eo, el) => {
          let name = '';
          let data: [number, number] | undefined;
          eachAttr(b, eo, eo + el, (et, xo, xl) => {
            if (et === 1) name = cstr(b, xo, xl);
            else if (et === 2) data = [xo, xl];
          });
          if (name !== 'counter' || !data || counter) return;
          const c = { packets: 0, bytes: 0 };
          eachAttr(b, data[0], data[0] + data[1], (ct, co) => {
            if (ct === 1) c.bytes = Number(b.readBigUInt64BE(co));
            else if (ct === 2) c.packets = Number(b.readBigUInt64BE(co));
          });
          counter = c;
        });
    });
    const id = parseRuleComment(comment);
    if (mine && chains.includes(chain) && id && counter) out.set(id.key, counter);
  });
  return out;
}

/** Is our table there, and which tag does its comment carry? */
export async function observeTable(nl: Nfnl): Promise<Pick<ObservedNft, 'present' | 'tag'>> {
  const out: Pick<ObservedNft, 'present' | 'tag'> = { present: false };
  await nl.dump(MSG.GETTABLE, Buffer.alloc(0), (b, s, e) => {
    let name = '';
    let tag: string | undefined;
    eachAttr(b, s, e, (t, o, l) => {
      if (t === 1) name = cstr(b, o, l);
      // NFTA_TABLE_USERDATA (6): libnftnl TLVs; type 0 is the comment.
      else if (t === 6)
        for (let u = o; u + 2 <= o + l; ) {
          if (b[u] === 0) tag = cstr(b, u + 2, b[u + 1]);
          u += 2 + b[u + 1];
        }
    });
    if (name === NFT_TABLE) {
      out.present = true;
      if (tag !== undefined) out.tag = tag;
    }
  });
  return out;
}

/**
 * The whole table as objects. `knownElements(set)` may supply a set's elements instead of
 * dumping them (after an apply whose result is known: kernel/nft.ts).
 */
export async function observeByNetlink(nl: Nfnl, knownElements: (set: string) => string[] | undefined = () => undefined): Promise<ObservedNft> {
  const out: ObservedNft = { ...(await observeTable(nl)), chains: [], sets: [], rules: [] };
  if (!out.present) return out;
  const table = attrs([[1, str(NFT_TABLE)]]);
  await nl.dump(MSG.GETCHAIN, table, (b, s, e) => {
    let mine = false;
    const c: NftChain = { name: '', owner: '' };
    eachAttr(b, s, e, (t, o, l) => {
      if (t === 1) mine = cstr(b, o, l) === NFT_TABLE;
      else if (t === 3) c.name = cstr(b, o, l);
      else if (t === 4)
        eachAttr(b, o, o + l, (ht, ho) => {
          if (ht === 1) c.hook = HOOK_NAME[b.readUInt32BE(ho)];
          else if (ht === 2) c.priority = b.readInt32BE(ho);
        });
      else if (t === 5) c.policy = b.readUInt32BE(o) === 1 ? 'accept' : 'drop';
      else if (t === 7) c.type = cstr(b, o, l) as NftChain['type'];
    });
    if (!mine) return;
    // Same shape as nftJson's chains, so both readers compare equal.
    out.chains.push(c.hook ? { name: c.name, owner: '', type: c.type, hook: c.hook, priority: c.priority, policy: c.policy ?? 'accept' } : { name: c.name, owner: '' });
  });
  await nl.dump(MSG.GETRULE, table, (b, s, e) => {
    let mine = false;
    const r: ObservedNftRule = { chain: '', handle: 0 };
    eachAttr(b, s, e, (t, o, l) => {
      if (t === 1) mine = cstr(b, o, l) === NFT_TABLE;
      else if (t === 2) r.chain = cstr(b, o, l);
      else if (t === 3) r.handle = Number(b.readBigUInt64BE(o));
      else if (t === 7) {
        const c = ruleComment(b, o, l);
        if (c !== undefined) r.comment = c;
      }
    });
    if (mine) out.rules.push(r);
  });
  const sets: { set: NftSet; keyLen: number; interval: boolean }[] = [];
  await nl.dump(MSG.GETSET, table, (b, s, e) => {
    let mine = false;
    let flags = 0;
    let keyType = 0;
    let keyLen = 0;
    let name = '';
    let timeout: number | undefined;
    eachAttr(b, s, e, (t, o, l) => {
      if (t === 1) mine = cstr(b, o, l) === NFT_TABLE;
      else if (t === 2) name = cstr(b, o, l);
      else if (t === 3) flags = b.readUInt32BE(o);
      else if (t === 4) keyType = b.readUInt32BE(o);
      else if (t === 5) keyLen = b.readUInt32BE(o);
      else if (t === 11) timeout = Number(b.readBigUInt64BE(o)) / 1000;
    });
    if (!mine || flags & SET_F_ANONYMOUS) return;
    const set: NftSet = {
      name,
      type: KEY_TYPE[keyType] ?? (`type ${keyType}` as NftKeyType),
      flags: [...(flags & SET_F_INTERVAL ? ['interval' as const] : []), ...(flags & SET_F_TIMEOUT ? ['timeout' as const] : [])],
      elements: [],
      owner: '',
    };
    if (timeout !== undefined) set.timeout = timeout;
    sets.push({ set, keyLen, interval: !!(flags & SET_F_INTERVAL) });
  });
  for (const { set, keyLen, interval } of sets) {
    const known = knownElements(set.name);
    if (known) {
      set.elements = [...known];
      out.sets.push(set);
      continue;
    }
    const keys: { key: Buffer; end: boolean }[] = [];
    await nl.dump(MSG.GETSETELEM, attrs([[1, str(NFT_TABLE)], [2, str(set.name)]]), (b, s, e) => {
      eachAttr(b, s, e, (t, o, l) => {
        if (t !== 3) return;
        eachAttr(b, o, o + l, (_t, eo, el) => {
          let key: Buffer | undefined;
          let end = false;
          eachAttr(b, eo, eo + el, (at, ao, al) => {
            if (at === 1) eachAttr(b, ao, ao + al, (vt, vo, vl) => vt === 1 && (key = Buffer.from(b.subarray(vo, vo + vl))));
            else if (at === 3) end = (b.readUInt32BE(ao) & ELEM_INTERVAL_END) !== 0;
          });
          if (key) keys.push({ key, end });
        });
      });
    });
    set.elements = elementsText(keys.reverse(), keyLen, interval);
    out.sets.push(set);
  }
  return out;
}

function keyValue(k: Buffer): bigint {
  let v = 0n;
  for (const byte of k) v = (v << 8n) | BigInt(byte);
  return v;
}

/** Elements in ascending key order -> canonical text (see the file comment). */
export function elementsText(keys: { key: Buffer; end: boolean }[], keyLen: number, interval: boolean): string[] {
  const family: Family | undefined = keyLen === 4 ? 4 : keyLen === 16 ? 6 : undefined;
  if (!family) return keys.map((k) => k.key.toString('hex'));
  if (!interval) return keys.map((k) => formatAddress(family, keyValue(k.key)));
  const out: string[] = [];
  const top = (1n << BigInt(BITS[family])) - 1n;
  let open: bigint | undefined;
  for (const k of keys) {
    const v = keyValue(k.key);
    if (!k.end) {
      if (open !== undefined) out.push(rangeElement(formatAddress(family, open), formatAddress(family, v - 1n)));
      open = v;
    } else if (open !== undefined) {
      out.push(rangeElement(formatAddress(family, open), formatAddress(family, v - 1n)));
      open = undefined;
    }
  }
  if (open !== undefined) out.push(rangeElement(formatAddress(family, open), formatAddress(family, top)));
  return out;
}

function addrBytes(family: Family, v: bigint): Buffer {
  const n = family === 4 ? 4 : 16;
  const b = Buffer.alloc(n);
  for (let i = n - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}

/** The kernel elements of one element text of an interval or plain address set. */
export function elementAttrs(text: string, interval: boolean): Attr[][] | undefined {
  const dash = text.indexOf('-');
  let family: Family;
  let start: bigint;
  let last: bigint;
  if (dash > 0) {
    const a = parsePrefix(text.slice(0, dash));
    const b = parsePrefix(text.slice(dash + 1));
    if (!a.ok || !b.ok || a.prefix.family !== b.prefix.family) return undefined;
    family = a.prefix.family;
    start = a.prefix.addr;
    last = b.prefix.addr;
  } else {
    const p = parsePrefix(text);
    if (!p.ok) return undefined;
    family = p.prefix.family;
    start = p.prefix.addr;
    last = start + (1n << BigInt(BITS[family] - p.prefix.len)) - 1n;
  }
  const key = (v: bigint): Attr => nested(1, [[1, addrBytes(family, v)]]);
  if (!interval) return [[key(start)]];
  const top = (1n << BigInt(BITS[family])) - 1n;
  if (last === top) return [[key(start), [6, OPEN_INTERVAL_UDATA]]];
  return [[key(start)], [key(last + 1n), [3, be32(ELEM_INTERVAL_END)]]];
}

export interface ElementChange {
  set: string;
  interval: boolean;
  op: 'add' | 'delete';
  elements: string[];
}

/**
 * The messages of one element transaction, in size-bounded groups: each group is one
 * batch (one sendmsg). Returns undefined if an element cannot be encoded here (the caller
 * then lets nft(8) do it).
 */
export function elementBatches(changes: ElementChange[], maxBytes: number, perMessage = 256): ((seq: () => number) => Buffer[])[] | undefined {
  type Msg = { type: number; set: string; items: Attr[][] };
  const msgs: Msg[] = [];
  for (const c of changes) {
    const type = c.op === 'add' ? MSG.NEWSETELEM : MSG.DELSETELEM;
    let cur: Msg = { type, set: c.set, items: [] };
    msgs.push(cur);
    for (const e of c.elements) {
      const items = elementAttrs(e, c.interval);
      if (!items) return undefined;
      if (cur.items.length + items.length > perMessage) msgs.push((cur = { type, set: c.set, items: [] }));
      cur.items.push(...items);
    }
  }
  const encoded = (m: Msg, seq: number) =>
    message(nftType(m.type), F_REQUEST | F_ACK | (m.type === MSG.NEWSETELEM ? F_CREATE : 0), seq, attrs([[1, str(NFT_TABLE)], [2, str(m.set)], nested(3, m.items.map((it) => nested(1, it)))]));
  // Group messages into batches of at most maxBytes (sizes measured with a dummy seq).
  const groups: Msg[][] = [];
  let size = 0;
  for (const m of msgs.filter((x) => x.items.length)) {
    const len = encoded(m, 0).length;
    if (!groups.length || size + len > maxBytes) {
      groups.push([]);
      size = 40;
    }
    groups[groups.length - 1].push(m);
    size += len;
  }
  return groups.map((g) => (seq: () => number) => g.map((m) => encoded(m, seq())));
}

export const TABLE_REF = NFT_TABLE_REF;
