/**
 * diff(desired, observed) -> Plan. Pure.
 *
 * Order matters so that matching traffic never leaks to main nor is black-holed while a
 * profile changes:
 *   1. routes added or replaced (a table is complete before any rule points at it; a changed
 *      route is replaced in its slot, atomically, by NLM_F_REPLACE),
 *   2. rules added (a new rule is inserted after existing rules of the same priority, so
 *      the old one keeps answering until step 3),
 *   3. rules deleted,
 *   4. routes deleted (no rule points at a table being emptied any more).
 * Only objects carrying our protocol tag are ever observed, and of those only objects in
 * `scope` tables are deleted: `up wg0` never touches another interface's profiles.
 *
 * Throw routes come in sets (model/throwSet.ts) and are compared as sorted lists, in one
 * pass, into one op per set: what a table lacks, what it has too much. A slot (table,
 * metric, destination) can change between a throw and another type; that is one `replace`
 * of a single route, as for any other change of type, never a delete and an add.
 */
import type { Desired } from '../compile/desired.js';
import type { RouteSpec } from '../model/route.js';
import { parsePrefix, type Prefix } from '../model/prefix.js';
import type { PrefixList } from '../model/prefixList.js';
import { prefixListOf, throwHash, throwSetKey, throwTo, type ThrowSet } from '../model/throwSet.js';
import { ruleKey, type RuleSpec } from '../model/rule.js';
import type { Op, Plan } from './plan.js';
import { diffNft, type ObservedNft } from './nftDiff.js';

export interface Observed {
  rules: RuleSpec[]; // ours only (protocol tag)
  routes: RouteSpec[]; // ours only, throws aside
  /** our throw routes, packed (model/throwSet.ts) */
  throws?: ThrowSet[];
  /** our nftables table as objects: undefined when not looked at (no profile uses nft, none installed) */
  nft?: ObservedNft;
  /** current values of the sysctls desired or changed by us (path -> value) */
  sysctls?: Record<string, number>;
  /** sysctls wgsplit changed, with their original values */
  changedSysctls?: Record<string, number>;
}

/** `routes: false`: rules, nft and sysctls only (the read-back after writing: routes are not read back). */
export function diff(desired: Desired, observed: Observed, scope: Set<number>, opts: { routes?: boolean } = {}): Plan {
  const active = desired.units.filter((u) => u.status === 'active' || u.status === 'down');
  // Tables of absent interfaces are frozen: neither added to nor removed from.
  const frozen = new Set(desired.units.filter((u) => u.status === 'absent').map((u) => `${u.family}|${u.profile.table}`));
  const isFrozen = (family: number, table: number) => frozen.has(`${family}|${table}`);

  // Routes are compared per (family, table, metric) bucket. A bucket whose routes hash to
  // the same order-independent fingerprint on both sides is equal and skipped; one that is
  // empty in the kernel is all adds; only the rest are compared route by route. At 100k
  // routes on these machines a Map lookup costs ~1-2 us, so the no-op re-apply must not do
  // 100k of them.
  const wantRules = new Map<string, { rule: RuleSpec; profile: string }>();
  // Cached units (see reconcile's plan cache) want exactly what their table holds: their
  // routes are neither hashed nor compared, their table's routes neither added nor deleted.
  // Keyed table * 8 + family (numbers: no string per observed route below).
  const cachedTables = new Set(active.filter((u) => u.cached).map((u) => u.profile.table * 8 + u.family));
  const want = new Buckets();
  const routes = opts.routes !== false;
  for (const u of active) {
    if (!u.cached && routes) for (const r of u.routes) want.add(r);
    for (const r of u.rules) wantRules.set(ruleKey(r), { rule: r, profile: u.profile.name });
  }
  const have = new Buckets();
  if (routes) for (const r of observed.routes) if (!cachedTables.size || !cachedTables.has(r.table * 8 + r.family)) have.add(r);
  const haveRules = new Map(observed.rules.map((r) => [ruleKey(r), r]));
  const inScope = (family: number, table: number) => scope.has(table) && !isFrozen(family, table);
  const sameRoute = (a: RouteSpec, b: RouteSpec) => a.type === b.type && a.dev === b.dev && a.src === b.src && a.protocol === b.protocol;
  const state = new Map<Bucket, 'equal' | 'allAdd' | Map<string, RouteSpec>>();
  for (const [, w] of want.list) {
    const h = have.get(w.routes[0]);
    if (!h) state.set(w, 'allAdd');
    else if (h.routes.length === w.routes.length && fingerprint(h).sum === fingerprint(w).sum && h.xor === w.xor) state.set(w, 'equal');
    else state.set(w, new Map(h.routes.map((r) => [r.dst, r])));
  }

  const routeAdds: Op[] = [];
  const routeDels: Op[] = [];
  const ruleAdds: Op[] = [];
  const ruleDels: Op[] = [];
  // Throw sets by key, both sides; slots of one side's sets that the other side holds as a
  // single route of another type (replaced as single routes, left out of the sets' ops).
  const wantThrows = new Map<string, ThrowSet>();
  const haveThrows = new Map<string, ThrowSet>();
  if (routes) {
    for (const u of active) if (!u.cached) for (const s of u.throws ?? []) wantThrows.set(throwSetKey(s), s);
    for (const s of observed.throws ?? []) if (!cachedTables.size || !cachedTables.has(s.table * 8 + s.family)) haveThrows.set(throwSetKey(s), s);
  }
  const takenFromHave = new Map<string, Prefix[]>(); // observed throws a wanted single route replaces
  const heldByHave = new Map<string, { prefix: Prefix; route: RouteSpec }[]>(); // wanted throws whose slot an observed single route holds
  const throwHolding = (sets: Iterable<ThrowSet>, r: RouteSpec): { key: string; prefix: Prefix; set: ThrowSet } | undefined => {
    let prefix: Prefix | undefined;
    for (const s of sets) {
      if (s.family !== r.family || s.table !== r.table || s.metric !== r.metric) continue;
      if (!prefix) {
        const p = parsePrefix(r.dst);
        if (!p.ok) return undefined;
        prefix = p.prefix;
      }
      if (s.dsts.has(prefix)) return { key: throwSetKey(s), prefix, set: s };
    }
    return undefined;
  };
  const note = <T>(m: Map<string, T[]>, k: string, v: T) => (m.get(k) ?? m.set(k, []).get(k)!).push(v);
  // Observed single routes no wanted single route keeps: deleted, unless a wanted throw
  // takes their slot (then the throw replaces them, below).
  const unwanted: RouteSpec[] = [];
  for (const [, h] of have.list) {
    const w = want.get(h.routes[0]);
    const st = w && state.get(w);
    if (st === 'equal') continue;
    const wanted = w ? new Set(w.routes.map((r) => r.dst)) : undefined;
    for (const r of h.routes) {
      if (wanted?.has(r.dst) || !inScope(r.family, r.table)) continue;
      const t = wantThrows.size ? throwHolding(wantThrows.values(), r) : undefined;
      if (t) note(heldByHave, t.key, { prefix: t.prefix, route: r });
      else unwanted.push(r);
    }
  }
  const equalSets = new Set<string>();
  // In the order compile produced them, so plans read the way profiles are written.
  for (const u of active) {
    if (u.cached || !routes) continue;
    // A unit's routes come in runs of one bucket (compile emits them per family and table,
    // at two metrics): look the bucket up once per run, not three Map lookups per route.
    let last: RouteSpec | undefined;
    let st: 'equal' | 'allAdd' | Map<string, RouteSpec> = 'allAdd';
    for (const r of u.routes) {
      if (!last || last.family !== r.family || last.table !== r.table || last.metric !== r.metric) st = state.get(want.get(r)!)!;
      last = r;
      if (st === 'equal') continue;
      const h = st === 'allAdd' ? undefined : st.get(r.dst);
      if (h) {
        if (!sameRoute(h, r)) routeAdds.push({ op: 'replace', kind: 'route', route: r, was: h, profile: u.profile.name });
        continue;
      }
      const t = haveThrows.size ? throwHolding(haveThrows.values(), r) : undefined;
      if (t) {
        routeAdds.push({ op: 'replace', kind: 'route', route: r, was: throwTo(t.set, t.prefix), profile: u.profile.name });
        note(takenFromHave, t.key, t.prefix);
      } else routeAdds.push({ op: 'add', kind: 'route', route: r, profile: u.profile.name });
    }
    for (const w of u.throws ?? []) {
      const k = throwSetKey(w);
      const h = haveThrows.get(k);
      if (h && h.dsts.equals(w.dsts)) {
        equalSets.add(k);
        continue;
      }
      let add: PrefixList = h ? w.dsts.minus(h.dsts) : w.dsts;
      const held = heldByHave.get(k);
      if (held) {
        for (const x of held) routeAdds.push({ op: 'replace', kind: 'route', route: throwTo(w, x.prefix), was: x.route, profile: u.profile.name });
        add = add.minus(prefixListOf(w.family, held.map((x) => x.prefix)));
      }
      if (add.size) routeAdds.push({ op: 'add', kind: 'throws', set: { ...w, dsts: add }, profile: u.profile.name });
    }
  }
  for (const r of unwanted) routeDels.push({ op: 'delete', kind: 'route', route: r, profile: profileOf(desired, r.table) });
  for (const [k, h] of haveThrows) {
    if (equalSets.has(k) || !inScope(h.family, h.table)) continue;
    const w = wantThrows.get(k);
    let del: PrefixList = w ? h.dsts.minus(w.dsts) : h.dsts;
    const taken = takenFromHave.get(k);
    if (taken) del = del.minus(prefixListOf(h.family, taken));
    if (del.size) routeDels.push({ op: 'delete', kind: 'throws', set: { ...h, dsts: del }, profile: profileOf(desired, h.table) });
  }
  for (const [key, w] of wantRules) if (!haveRules.has(key)) ruleAdds.push({ op: 'add', kind: 'rule', rule: w.rule, profile: w.profile });
  for (const [key, r] of haveRules) {
    if (!wantRules.has(key) && inScope(r.family, r.table)) ruleDels.push({ op: 'delete', kind: 'rule', rule: r, profile: profileOf(desired, r.table) });
  }
  // The kernel refuses (EEXIST) a new rule that equals an existing one in every field the
  // new rule sets (fib_rules.c rule_exists; the src/dst compare in fib4/fib6_rule_compare
  // only runs when the new rule has them, and rule flags are not compared at all). Such an
  // existing rule must go first; everything else keeps add-before-delete.
  const early = ruleDels.filter((d) => d.kind === 'rule' && ruleAdds.some((a) => a.kind === 'rule' && kernelSameRule(a.rule, d.rule)));
  const late = ruleDels.filter((d) => !early.includes(d));
  // nftables, per object: marking starts before the rules that route marks exist (marked
  // packets then still route via main) and stops after they are gone.
  const { put: nftPut, late: nftDel } = diffNft(desired.nft, observed.nft);
  const sysSet: Op[] = [];
  const sysRestore: Op[] = [];
  const wantSys = new Map((desired.sysctls ?? []).map((x) => [x.path, x.value]));
  for (const [path, value] of wantSys) {
    const now = observed.sysctls?.[path];
    if (now !== undefined && now !== value) sysSet.push({ op: 'replace', kind: 'sysctl', path, value, was: now });
  }
  for (const [path, original] of Object.entries(observed.changedSysctls ?? {})) {
    const now = observed.sysctls?.[path];
    if (!wantSys.has(path) && now !== undefined && now !== original) sysRestore.push({ op: 'delete', kind: 'sysctl', path, value: original, was: now });
  }
  // concat, not spread: at 100k routes the spread copied element by element.
  return { ops: routeAdds.concat(sysSet, nftPut, early, ruleAdds, late, nftDel, sysRestore, routeDels) };
}

interface Bucket {
  routes: RouteSpec[];
  sum: number;
  xor: number;
}

function bucketKey(r: RouteSpec): string {
  return `${r.family}|${r.table}|${r.metric}`;
}

/** FNV-1a over everything that makes two routes in one bucket equal (no string building). */
function fnv(h: number, text: string | undefined): number {
  if (text !== undefined) for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return Math.imul(h ^ 0x7c, 0x01000193); // a separator, so fields cannot run together
}

const TYPE_CODE: Record<string, number> = { unicast: 1, throw: 2, unreachable: 3 };

function routeHash(r: RouteSpec): number {
  let h = fnv(0x811c9dc5, r.dst);
  h = Math.imul(h ^ (TYPE_CODE[r.type] ?? 0), 0x01000193);
  h = Math.imul(h ^ r.protocol, 0x01000193);
  h = fnv(h, r.dev);
  h = fnv(h, r.src);
  return h >>> 0;
}

/** Buckets by family, table and metric, keyed by numbers: no string per route. */
class Buckets {
  private readonly byKey = new Map<number, Map<number, Map<number, Bucket>>>();
  readonly list: [string, Bucket][] = [];

  get(r: RouteSpec, create = false): Bucket | undefined {
    let t = this.byKey.get(r.family);
    if (!t) {
      if (!create) return undefined;
      this.byKey.set(r.family, (t = new Map()));
    }
    let m = t.get(r.table);
    if (!m) {
      if (!create) return undefined;
      t.set(r.table, (m = new Map()));
    }
    let b = m.get(r.metric);
    if (!b && create) {
      m.set(r.metric, (b = { routes: [], sum: -1, xor: 0 }));
      this.list.push([bucketKey(r), b]);
    }
    return b;
  }

  private last?: { r: RouteSpec; b: Bucket };

  add(r: RouteSpec): void {
    // Routes come in runs of one bucket (compile emits them per family and table): three
    // Map lookups per route only when the run changes.
    const l = this.last;
    if (l && l.r.family === r.family && l.r.table === r.table && l.r.metric === r.metric) {
      l.b.routes.push(r);
      return;
    }
    const b = this.get(r, true)!;
    b.routes.push(r);
    this.last = { r, b };
  }
}

/** A bucket's fingerprint, computed only when both sides have the bucket. */
function fingerprint(b: Bucket): Bucket {
  if (b.sum === -1) {
    const fp = routesFingerprint(b.routes);
    b.sum = fp.sum;
    b.xor = fp.xor;
  }
  return b;
}

/**
 * Order-independent fingerprint of a table's routes, single and packed throws: what the
 * plan cache compares. Throws are hashed from their packed keys (model/throwSet.ts), ~1 ms
 * for 100k.
 */
export function routesFingerprint(routes: readonly RouteSpec[], throws: readonly ThrowSet[] = []): { n: number; sum: number; xor: number } {
  const fp = fingerprintRange(routes, 0, routes.length, { n: routes.length, sum: 0, xor: 0 });
  let { sum, xor } = fp;
  for (const s of throws) {
    fp.n += s.dsts.size;
    for (let i = 0; i < s.dsts.size; i++) {
      const h = throwHash(s, i);
      sum = (sum + h) >>> 0;
      xor = (xor ^ Math.imul(h, 0x9e3779b1)) >>> 0;
    }
  }
  fp.sum = sum;
  fp.xor = xor;
  return fp;
}

/** Add routes[start, end) to a fingerprint under way (sum and xor do not care about order). */
function fingerprintRange(routes: readonly RouteSpec[], start: number, end: number, fp: { n: number; sum: number; xor: number }): { n: number; sum: number; xor: number } {
  let { sum, xor } = fp;
  for (let i = start; i < end; i++) {
    const h = routeHash(routes[i]);
    sum = (sum + h) >>> 0;
    xor = (xor ^ Math.imul(h, 0x9e3779b1)) >>> 0;
  }
  fp.sum = sum;
  fp.xor = xor;
  return fp;
}

/** Would the kernel call `existing` a duplicate of `added`? (fib_rules.c rule_exists) */
export function kernelSameRule(added: RuleSpec, existing: RuleSpec): boolean {
  const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
  if (added.family !== existing.family || added.priority !== existing.priority || added.table !== existing.table) return false;
  if (added.iif !== existing.iif || added.oif !== existing.oif || added.protocol !== existing.protocol) return false;
  if ((added.fwmark ?? 0) !== (existing.fwmark ?? 0) || (added.fwmask ?? 0) !== (existing.fwmask ?? 0)) return false;
  if (added.ipproto !== existing.ipproto || !same(added.sport, existing.sport) || !same(added.dport, existing.dport) || !same(added.uid, existing.uid)) return false;
  if (added.src && added.src !== existing.src) return false;
  if (added.dst && added.dst !== existing.dst) return false;
  return true;
}

function profileOf(desired: Desired, table: number): string | undefined {
  return desired.units.find((u) => u.profile.table === table)?.profile.name;
}
