/**
 * IP prefixes as (family, bigint network, length): parsing with strict host-bit checks,
 * formatting in the kernel's canonical form, and aggregation (merge covered and adjacent
 * prefixes) so a table holds as few `throw` routes as possible. Pure: no I/O.
 */
export type Family = 4 | 6;

export interface Prefix {
  family: Family;
  addr: bigint; // network address, host bits zero
  len: number;
}

export const BITS: Record<Family, number> = { 4: 32, 6: 128 };

/**
 * Dotted-quad IPv4 to a number, or -1. Hand-written because country lists run to 100k
 * lines and the generic path (isIPv4's regex, split, map) dominated load time. Same
 * grammar as node's isIPv4: four decimal octets 0-255, no leading zeros. Reads
 * text[start, end) (list files parse lines in place: profile/listFile.ts).
 */
export function parseIPv4(text: string, start = 0, end = text.length): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      dots++;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1; // leading zero
      octet = octet * 10 + (c - 48);
      digits++;
      if (octet > 255) return -1;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

/**
 * Colon-hex IPv6 (RFC 4291 2.2: groups of 1-4 hex digits, one `::` for one or more zero
 * groups, an optional dotted-quad tail for the last 32 bits) to 8 group values, or
 * undefined. The same grammar as node's isIPv6 without its zone suffix (`%eth0` means
 * nothing in a route prefix; test/unit/prefix.test.ts compares the two). Hand-written:
 * isIPv6's regex alone took ~8 ms to compile on every `wgsplit up` (the @private sets).
 */
function parseIPv6(text: string): number[] | undefined {
  const gap = text.indexOf('::');
  if (gap >= 0 && text.indexOf('::', gap + 1) >= 0) return undefined;
  const side = (part: string, last: boolean): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const g = pieces[i];
      if (last && i === pieces.length - 1 && g.includes('.')) {
        const v4 = parseIPv4(g);
        if (v4 < 0) return undefined;
        out.push(Math.floor(v4 / 65536), v4 % 65536);
        continue;
      }
      if (g.length < 1 || g.length > 4) return undefined;
      let v = 0;
      for (let k = 0; k < g.length; k++) {
        const c = g.charCodeAt(k);
        const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
        if (d < 0) return undefined;
        v = v * 16 + d;
      }
      out.push(v);
    }
    return out;
  };
  if (gap < 0) {
    const all = side(text, true);
    return all && all.length === 8 ? all : undefined;
  }
  const head = side(text.slice(0, gap), false);
  const tail = side(text.slice(gap + 2), true);
  if (!head || !tail || head.length + tail.length > 7) return undefined;
  return [...head, ...Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

export function parseAddress(text: string): { family: Family; addr: bigint } | undefined {
  const v4 = parseIPv4(text);
  if (v4 >= 0) return { family: 4, addr: BigInt(v4) };
  const groups = text.includes(':') ? parseIPv6(text) : undefined;
  if (!groups) return undefined;
  let addr = 0n;
  for (const g of groups) addr = (addr << 16n) | BigInt(g);
  return { family: 6, addr };
}

export function formatAddress(family: Family, addr: bigint): string {
  if (family === 4) {
    const n = Number(addr);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((addr >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on ties.
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return hex.slice(0, best).join(':') + '::' + hex.slice(best + bestLen).join(':');
}

const MASKS: Record<Family, bigint[]> = { 4: [], 6: [] };
for (const f of [4, 6] as Family[]) {
  const bits = BITS[f];
  for (let len = 0; len <= bits; len++) MASKS[f].push(((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - len)) - 1n));
}

export function mask(family: Family, len: number): bigint {
  return MASKS[family][len];
}

export type PrefixParse = { ok: true; prefix: Prefix } | { ok: false; reason: string };

/**
 * Parse `a.b.c.d/len`, `x::/len` or a bare address (a host prefix). Host bits set
 * (`10.0.0.1/8`) is an error, not silently truncated: it is almost always a typo.
 */
export function parsePrefix(text: string): PrefixParse {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  // IPv4 fast path in plain numbers (list files are mostly IPv4; BigInt masks were the cost).
  const v4 = parseIPv4(addrText);
  if (v4 >= 0) {
    // The length by hand too: 1-2 decimal digits, 0-32 (a regex and a slice per line cost
    // more than the address).
    let len = slash < 0 ? 32 : -1;
    if (slash >= 0) {
      const digits = text.length - slash - 1;
      const d0 = text.charCodeAt(slash + 1) - 48;
      const d1 = digits === 2 ? text.charCodeAt(slash + 2) - 48 : 0;
      if ((digits === 1 || digits === 2) && d0 >= 0 && d0 <= 9 && d1 >= 0 && d1 <= 9) len = digits === 2 ? d0 * 10 + d1 : d0;
      if (len < 0 || len > 32) {
        // The general rule (three digits, out of range, not digits): as before.
        const lenText = text.slice(slash + 1);
        if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > 32) return { ok: false, reason: `"${text}": prefix length must be 0-32 for IPv4` };
        len = Number(lenText);
      }
    }
    const hostBits = len === 32 ? 0 : v4 % 2 ** (32 - len);
    if (hostBits !== 0) {
      const net = formatPrefix({ family: 4, addr: BigInt(v4 - hostBits), len });
      return { ok: false, reason: `"${text}" has host bits set (did you mean ${net}?)` };
    }
    return { ok: true, prefix: { family: 4, addr: BigInt(v4), len } };
  }
  const a = parseAddress(addrText);
  if (!a) return { ok: false, reason: `"${text}" is not an IPv4 or IPv6 prefix` };
  const bits = BITS[a.family];
  let len = bits;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > bits) {
      return { ok: false, reason: `"${text}": prefix length must be 0-${bits} for IPv${a.family}` };
    }
    len = Number(lenText);
  }
  const m = mask(a.family, len);
  if ((a.addr & ~m & ((1n << BigInt(bits)) - 1n)) !== 0n) {
    const net = formatPrefix({ family: a.family, addr: a.addr & m, len });
    return { ok: false, reason: `"${text}" has host bits set (did you mean ${net}?)` };
  }
  return { ok: true, prefix: { family: a.family, addr: a.addr, len } };
}

/** Parse a prefix that is known to be valid (constants, kernel output). */
export function prefix(text: string): Prefix {
  const r = parsePrefix(text);
  if (!r.ok) throw new Error(r.reason);
  return r.prefix;
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddress(p.family, p.addr)}/${p.len}`;
}

/** True when `outer` covers `inner` (same family, shorter or equal and same network). */
export function covers(outer: Prefix, inner: Prefix): boolean {
  return outer.family === inner.family && outer.len <= inner.len && (inner.addr & mask(outer.family, outer.len)) === outer.addr;
}

export function containsAddress(p: Prefix, family: Family, addr: bigint): boolean {
  return p.family === family && (addr & mask(family, p.len)) === p.addr;
}

export function comparePrefix(a: Prefix, b: Prefix): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.addr !== b.addr) return a.addr < b.addr ? -1 : 1;
  return a.len - b.len;
}

/**
 * An IPv4 prefix as one number, address * 64 + length (below 2^38: exact in a double).
 * Sorting such numbers sorts by address, then length; a Float64Array of them sorts with the
 * engine's numeric sort, without a comparator call per step (100k random prefixes: ~10 ms
 * against ~60 ms for an index sort with a callback) and without a BigInt per prefix.
 */
export function key4(addr: number, len: number): number {
  return addr * 64 + len;
}

const OCTET = Array.from({ length: 256 }, (_, i) => String(i));
const SLASH_LEN = Array.from({ length: 33 }, (_, i) => `/${i}`);

export function keyText4(k: number): string {
  const a = Math.floor(k / 64);
  return OCTET[a >>> 24] + '.' + OCTET[(a >>> 16) & 255] + '.' + OCTET[(a >>> 8) & 255] + '.' + OCTET[a & 255] + SLASH_LEN[k - a * 64];
}

/** Network masks by prefix length, as unsigned 32-bit numbers. */
const MASK4 = Uint32Array.from({ length: 33 }, (_, l) => (l === 0 ? 0 : (0xffffffff << (32 - l)) >>> 0));

/** aggregate() for IPv4 keys (key4): sorts `keys` in place and returns the aggregate, sorted. */
export function aggregateKeys4(keys: Float64Array): Float64Array {
  let inOrder = true;
  for (let i = 1; i < keys.length && inOrder; i++) if (keys[i - 1] > keys[i]) inOrder = false;
  // Published lists usually come sorted: then no sort at all.
  if (!inOrder) keys.sort();
  // A stack of (address, length), in 32-bit integer arithmetic (masks, not modulo).
  const sa = new Uint32Array(keys.length);
  const sl = new Uint8Array(keys.length);
  let top = -1;
  // Masks inline, no helper call per prefix: most of 100k iterations run before the
  // optimising compiler inlines anything.
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    const a = (k / 64) >>> 0; // k < 2^38: the quotient is below 2^32, truncated
    const l = k - a * 64;
    // Covered by the top of the stack: nothing to add.
    if (top >= 0 && sl[top] <= l && (a & MASK4[sl[top]]) >>> 0 === sa[top]) continue;
    sa[++top] = a;
    sl[top] = l;
    // Merge siblings as long as the last two are the halves of one parent.
    while (top >= 1 && sl[top] === sl[top - 1] && sl[top] !== 0) {
      const m = MASK4[sl[top] - 1];
      const pa = (sa[top - 1] & m) >>> 0;
      if ((sa[top] & m) >>> 0 !== pa || sa[top] === sa[top - 1]) break;
      top--;
      sa[top] = pa;
      sl[top] = sl[top] - 1;
      // What is below may cover the new parent: then the parent goes.
      while (top >= 1 && sl[top - 1] <= sl[top] && (sa[top] & MASK4[sl[top - 1]]) >>> 0 === sa[top - 1]) top--;
    }
  }
  const out = new Float64Array(top + 1);
  for (let i = 0; i <= top; i++) out[i] = key4(sa[i], sl[i]);
  return out;
}

/** IPv4 aggregation in plain numbers (aggregateKeys4), back to objects. */
function aggregate4(prefixes: readonly Prefix[]): Prefix[] {
  const keys = new Float64Array(prefixes.length);
  for (let i = 0; i < prefixes.length; i++) keys[i] = key4(Number(prefixes[i].addr), prefixes[i].len);
  return Array.from(aggregateKeys4(keys), (k) => ({ family: 4 as Family, addr: BigInt((k - (k % 64)) / 64), len: k % 64 }));
}

/**
 * The smallest set of prefixes covering exactly the same addresses: drop prefixes covered
 * by another, then merge sibling pairs (10.0.0.0/9 + 10.128.0.0/9 = 10.0.0.0/8) until
 * nothing changes. O(n log n); used before programming so a table holds one `throw` per
 * aggregate (each is one FIB entry).
 */
export function aggregate(prefixes: readonly Prefix[]): Prefix[] {
  const out: Prefix[] = aggregate4(prefixes.filter((p) => p.family === 4));
  for (const fam of [6] as Family[]) {
    const sorted = sortPrefixes(prefixes.filter((p) => p.family === fam));
    // Stack-based merge: sorted by address, covered prefixes follow their cover.
    const stack: Prefix[] = [];
    for (const p of sorted) {
      const top = stack[stack.length - 1];
      if (top && covers(top, p)) continue;
      stack.push(p);
      // Merge siblings as long as the last two are the halves of one parent.
      while (stack.length >= 2) {
        const b = stack[stack.length - 1];
        const a = stack[stack.length - 2];
        if (a.len !== b.len || a.len === 0) break;
        const parentLen = a.len - 1;
        const pm = mask(fam, parentLen);
        if ((a.addr & pm) !== (b.addr & pm) || a.addr === b.addr) break;
        stack.splice(stack.length - 2, 2, { family: fam, addr: a.addr & pm, len: parentLen });
        // The new parent may now cover or pair with what is below it.
        while (stack.length >= 2 && covers(stack[stack.length - 2], stack[stack.length - 1])) stack.pop();
      }
    }
    out.push(...stack);
  }
  return out;
}

/** Sort one family's prefixes by address, then length (IPv4 lists go through aggregateKeys4). Already sorted input costs one pass. */
export function sortPrefixes(list: Prefix[]): Prefix[] {
  let sorted = true;
  for (let i = 1; i < list.length && sorted; i++) if (comparePrefix(list[i - 1], list[i]) > 0) sorted = false;
  return sorted ? list : list.sort(comparePrefix);
}

export function prefixKey(p: Prefix): string {
  return formatPrefix(p);
}

export const DEFAULT_ROUTE: Record<Family, Prefix> = {
  4: { family: 4, addr: 0n, len: 0 },
  6: { family: 6, addr: 0n, len: 0 },
};
