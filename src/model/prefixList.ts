/**
 * One family's prefixes, sorted and distinct: aggregated by `of` (also disjoint, the fewest
 * covering the same addresses: what compile turns into `throw` routes and nft set
 * elements), or as found by `distinct` (what the kernel holds, which may overlap). Pure.
 *
 * IPv4 is packed: one double per prefix, address * 64 + length (below 2^38, exact), in a
 * Float64Array. At 100k prefixes (a country list) the object per prefix with its BigInt
 * address, the conversions in and out of BigInt and the garbage they left were most of a
 * `wgsplit up` from nothing (measured: ~400 ms of compile, against ~15 ms packed). IPv6
 * lists are short and keep Prefix objects.
 */
import { aggregate, aggregateKeys4, comparePrefix, covers, formatPrefix, key4, keyText4, sortPrefixes, type Family, type Prefix } from './prefix.js';

/** Where compile gets a source's prefixes from: packed (list files) or as objects. */
export interface PackedPrefixes {
  /** the IPv4 prefixes as key4 values, in the order written */
  keys4: Float64Array;
  v6: Prefix[];
}

export type PrefixInput = PackedPrefixes | readonly Prefix[];

const isPacked = (x: PrefixInput): x is PackedPrefixes => !Array.isArray(x) && 'keys4' in x;

export class PrefixList {
  private constructor(
    readonly family: Family,
    /** IPv4: sorted, distinct key4 values (disjoint when aggregated) */
    private readonly keys: Float64Array,
    /** IPv6: sorted, distinct prefixes (disjoint when aggregated) */
    private readonly list: readonly Prefix[],
  ) {}

  /**
   * The prefixes as given, sorted, duplicates dropped, nothing merged: a table's throw
   * routes as the kernel holds them (kernel/rawRoutes.ts dump), compared exactly with
   * what is wanted. `keys4` is sorted in place.
   */
  static distinct(family: Family, keys4: Float64Array, v6: readonly Prefix[] = []): PrefixList {
    if (family === 6) {
      const list = sortPrefixes(v6.filter((p) => p.family === 6));
      return new PrefixList(6, new Float64Array(0), list.filter((p, i) => i === 0 || comparePrefix(list[i - 1], p) !== 0));
    }
    let inOrder = true;
    for (let i = 1; i < keys4.length && inOrder; i++) if (keys4[i - 1] >= keys4[i]) inOrder = false;
    if (inOrder) return new PrefixList(4, keys4, []);
    keys4.sort();
    let n = 0;
    for (let i = 0; i < keys4.length; i++) if (n === 0 || keys4[n - 1] !== keys4[i]) keys4[n++] = keys4[i];
    return new PrefixList(4, keys4.subarray(0, n), []);
  }

  /** The aggregate of one family's prefixes from every input. */
  static of(family: Family, inputs: readonly PrefixInput[]): PrefixList {
    if (family === 6) {
      const all: Prefix[] = [];
      for (const x of inputs) for (const p of isPacked(x) ? x.v6 : x) if (p.family === 6) all.push(p);
      return new PrefixList(6, new Float64Array(0), aggregate(all));
    }
    let n = 0;
    for (const x of inputs) n += isPacked(x) ? x.keys4.length : x.length;
    const keys = new Float64Array(n);
    let k = 0;
    for (const x of inputs) {
      if (isPacked(x)) {
        keys.set(x.keys4, k);
        k += x.keys4.length;
      } else for (const p of x) if (p.family === 4) keys[k++] = key4(Number(p.addr), p.len);
    }
    return new PrefixList(4, aggregateKeys4(keys.subarray(0, k)), []);
  }

  get size(): number {
    return this.family === 4 ? this.keys.length : this.list.length;
  }

  /** Canonical text of prefix i (`10.0.0.0/8`). */
  text(i: number): string {
    return this.family === 4 ? keyText4(this.keys[i]) : formatPrefix(this.list[i]);
  }

  texts(): string[] {
    const out = new Array<string>(this.size);
    for (let i = 0; i < out.length; i++) out[i] = this.text(i);
    return out;
  }

  /** The prefixes as an input of `of` (shared, not copied: `of` copies). */
  packed(): PackedPrefixes {
    return { keys4: this.keys, v6: [...this.list] };
  }

  /** IPv4 only: prefix i as key4 (address * 64 + length). */
  key(i: number): number {
    return this.keys[i];
  }

  /** Same prefixes? (Both sorted and distinct: compared in one pass.) */
  equals(other: PrefixList): boolean {
    if (other.family !== this.family || other.size !== this.size) return false;
    if (this.family === 4) {
      for (let i = 0; i < this.keys.length; i++) if (this.keys[i] !== other.keys[i]) return false;
      return true;
    }
    return this.list.every((p, i) => comparePrefix(p, other.list[i]) === 0);
  }

  /** The prefixes of this list that `other` does not hold (exact: equal prefix and length). */
  minus(other: PrefixList): PrefixList {
    if (other.family !== this.family) throw new Error('PrefixList: families differ');
    if (other.size === 0) return this;
    if (this.family === 4) {
      const a = this.keys;
      const b = other.keys;
      const out = new Float64Array(a.length);
      let n = 0;
      let j = 0;
      for (let i = 0; i < a.length; i++) {
        while (j < b.length && b[j] < a[i]) j++;
        if (j === b.length || b[j] !== a[i]) out[n++] = a[i];
      }
      return n === a.length ? this : new PrefixList(4, out.subarray(0, n), []);
    }
    const out: Prefix[] = [];
    let j = 0;
    for (const p of this.list) {
      while (j < other.list.length && comparePrefix(other.list[j], p) < 0) j++;
      if (j === other.list.length || comparePrefix(other.list[j], p) !== 0) out.push(p);
    }
    return out.length === this.list.length ? this : new PrefixList(6, new Float64Array(0), out);
  }

  /** Does this list hold exactly `p` (O(log n))? */
  has(p: Prefix): boolean {
    if (p.family !== this.family) return false;
    if (this.family === 4) {
      const k = key4(Number(p.addr), p.len);
      let lo = 0;
      let hi = this.keys.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (this.keys[mid] === k) return true;
        if (this.keys[mid] < k) lo = mid + 1;
        else hi = mid - 1;
      }
      return false;
    }
    let lo = 0;
    let hi = this.list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = comparePrefix(this.list[mid], p);
      if (c === 0) return true;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }

  /** As JSON, the prefixes' text (a plan holding a set of throws stays readable data). */
  toJSON(): string[] {
    return this.texts();
  }

  prefix(i: number): Prefix {
    if (this.family === 6) return this.list[i];
    const len = this.keys[i] % 64;
    return { family: 4, addr: BigInt((this.keys[i] - len) / 64), len };
  }

  /** Is prefix i of this list inside one prefix of `other`? O(log n) (other is disjoint and sorted). */
  private coveredIn(i: number, other: PrefixList): boolean {
    if (this.family === 4) {
      const k = this.keys[i];
      const len = k % 64;
      const a = (k - len) / 64;
      const ok = other.keys;
      // The only candidate: the last prefix of `other` starting at or before a.
      let lo = 0;
      let hi = ok.length - 1;
      let best = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (ok[mid] < (a + 1) * 64) {
          best = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      if (best < 0) return false;
      const ol = ok[best] % 64;
      const oa = (ok[best] - ol) / 64;
      return ol <= len && a - (a % 2 ** (32 - ol)) === oa;
    }
    const p = this.list[i];
    let lo = 0;
    let hi = other.list.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (other.list[mid].addr <= p.addr) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return best >= 0 && covers(other.list[best], p);
  }

  private pick(other: PrefixList, inside: boolean): PrefixList {
    if (other.family !== this.family) throw new Error('PrefixList: families differ');
    // Everything is inside a default route (the usual include): no search per prefix.
    const all = other.size === 1 && other.prefix(0).len === 0;
    if (this.family === 4) {
      if (all || other.size === 0) return inside === all ? this : new PrefixList(4, new Float64Array(0), []);
      const out = new Float64Array(this.keys.length);
      let n = 0;
      for (let i = 0; i < this.keys.length; i++) if (this.coveredIn(i, other) === inside) out[n++] = this.keys[i];
      return new PrefixList(4, out.slice(0, n), []);
    }
    return new PrefixList(6, new Float64Array(0), this.list.filter((_, i) => (all || (other.size > 0 && this.coveredIn(i, other))) === inside));
  }

  /** The prefixes of this list that lie inside `other`. */
  within(other: PrefixList): PrefixList {
    return this.pick(other, true);
  }

  /** The prefixes of this list that no prefix of `other` covers. */
  outside(other: PrefixList): PrefixList {
    return this.pick(other, false);
  }
}
