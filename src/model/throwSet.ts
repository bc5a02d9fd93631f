/**
 * A table's throw routes as one object. Throws differ only in their destination, and they
 * are the one kind of route that comes by the 100k (an exclusion list such as a country's
 * prefixes); every other route of a table is one of a handful. As a RouteSpec each, with
 * its text, a plan operation each and a formatted dump each, they were most of a
 * `wgsplit up` from nothing and of a no-op re-apply (issue 14). A ThrowSet keeps the
 * destinations packed (PrefixList) from the list file through compile, diff, the kernel's
 * messages, and back from the route dump.
 *
 * The rule that keeps this simple: every throw route of ours is in a ThrowSet, on both
 * sides (compile's units and observe's result), never among `routes`. So a route has one
 * representation whichever side it comes from, and fingerprints of the two sides agree.
 */
import { formatPrefix, parsePrefix, type Family, type Prefix } from './prefix.js';
import { PrefixList } from './prefixList.js';
import type { RouteSpec } from './route.js';

export interface ThrowSet {
  family: Family;
  table: number;
  metric: number;
  protocol: number;
  /** sorted and distinct; aggregated when compiled, as found when observed */
  dsts: PrefixList;
}

/** Throw route i of a set, as a single route (for messages, text and the fake kernel). */
export function throwRoute(s: ThrowSet, i: number): RouteSpec {
  return { family: s.family, table: s.table, type: 'throw', dst: s.dsts.text(i), metric: s.metric, protocol: s.protocol };
}

/** The throw to `p` in a set's table, metric and protocol, as a single route. */
export function throwTo(s: Omit<ThrowSet, 'dsts'>, p: Prefix): RouteSpec {
  return { family: s.family, table: s.table, type: 'throw', dst: formatPrefix(p), metric: s.metric, protocol: s.protocol };
}

export function throwRoutes(s: ThrowSet): RouteSpec[] {
  const out = new Array<RouteSpec>(s.dsts.size);
  for (let i = 0; i < out.length; i++) out[i] = throwRoute(s, i);
  return out;
}

/** Every route, the throws written out: a unit or an observation as single routes (small ones, for tests). */
export function allRoutes(x: { routes: readonly RouteSpec[]; throws?: readonly ThrowSet[] }): RouteSpec[] {
  return [...x.routes, ...(x.throws ?? []).flatMap(throwRoutes)];
}

/** How many routes the sets hold. */
export function throwCount(sets: readonly ThrowSet[] = []): number {
  let n = 0;
  for (const s of sets) n += s.dsts.size;
  return n;
}

/** Sets with equal keys hold routes that differ only in destination. */
export function throwSetKey(s: Pick<ThrowSet, 'family' | 'table' | 'metric' | 'protocol'>): string {
  return `${s.family}|${s.table}|${s.metric}|${s.protocol}`;
}

/**
 * Routes as the rule above wants them: the throws out, grouped into sets by table, metric
 * and protocol; the rest as they are. For small inputs (the fake kernel's observe, tests).
 */
export function splitThrows(routes: readonly RouteSpec[]): { routes: RouteSpec[]; throws: ThrowSet[] } {
  const rest: RouteSpec[] = [];
  const groups = new Map<string, { r: RouteSpec; dsts: Prefix[] }>();
  for (const r of routes) {
    if (r.type !== 'throw') {
      rest.push(r);
      continue;
    }
    const k = throwSetKey(r);
    const g = groups.get(k) ?? groups.set(k, { r, dsts: [] }).get(k)!;
    const p = parsePrefix(r.dst);
    if (p.ok) g.dsts.push(p.prefix);
  }
  const throws = [...groups.values()].map(({ r, dsts }) => ({ family: r.family, table: r.table, metric: r.metric, protocol: r.protocol, dsts: prefixListOf(r.family, dsts) }));
  return { routes: rest, throws };
}

/** A few prefixes as a sorted, distinct list (PrefixList.distinct). */
export function prefixListOf(family: Family, dsts: readonly Prefix[]): PrefixList {
  if (family === 6) return PrefixList.distinct(6, new Float64Array(0), dsts);
  return PrefixList.distinct(4, Float64Array.from(dsts, (p) => Number(p.addr) * 64 + p.len));
}

/**
 * The throws among `routes` moved into `throws`, each joining the set of its key (sets of
 * one key merge, aggregated as compile's are): one set per key, as diff expects.
 */
export function packThrows(routes: readonly RouteSpec[], throws: readonly ThrowSet[] = []): { routes: RouteSpec[]; throws: ThrowSet[] } {
  const split = splitThrows(routes);
  const out = [...throws];
  for (const s of split.throws) {
    const i = out.findIndex((t) => throwSetKey(t) === throwSetKey(s));
    if (i < 0) out.push(s);
    else out[i] = { ...s, dsts: PrefixList.of(s.family, [s.dsts.packed(), out[i].dsts.packed()]) };
  }
  return { routes: split.routes, throws: out };
}

/**
 * A hash of throw route i of a set, from numbers only (no text per route): one term of the
 * plan cache's order-independent fingerprint (plan/diff.ts routesFingerprint).
 */
export function throwHash(s: ThrowSet, i: number): number {
  let h = Math.imul(0x811c9dc5 ^ s.metric, 0x01000193);
  h = Math.imul(h ^ s.protocol, 0x01000193);
  if (s.family === 4) {
    const k = s.dsts.key(i);
    h = Math.imul(h ^ (k >>> 0), 0x01000193);
    h = Math.imul(h ^ Math.floor(k / 4294967296), 0x01000193);
  } else {
    const text = formatPrefix(s.dsts.prefix(i));
    for (let c = 0; c < text.length; c++) h = Math.imul(h ^ text.charCodeAt(c), 0x01000193);
  }
  // A final mix (murmur3's), so nearby keys spread over all 32 bits before they are summed.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
