/**
 * The plan cache: a profile whose inputs (its text and list files, the facts
 * compile reads about its interface and the host) are unchanged since the last successful
 * apply, and whose table still holds exactly what that apply wanted (route fingerprint and
 * rule keys), is in sync without being compiled. At 100k prefixes that spares parsing and
 * aggregating the list and the route-by-route diff: the no-op re-apply the watcher and
 * `wgsplit apply` do most of the time. Any mismatch means a full compile; the cache can
 * only skip work, never change what is wanted.
 */
import { createHash } from 'node:crypto';
import type { Desired, Unit } from '../compile/desired.js';
import type { Facts } from '../compile/facts.js';
import { ruleKey } from '../model/rule.js';
import { routesFingerprint, type Observed } from '../plan/diff.js';
import type { RouteSpec } from '../model/route.js';
import type { ThrowSet } from '../model/throwSet.js';
import type { Profile } from '../profile/types.js';
import type { CachedPlan, OwnedTables } from '../state/owned.js';
import { COUNTER_CHAINS, withCounters } from '../compile/counters.js';
import type { NftState } from '../model/nft.js';

const COUNTER_CHAIN_NAMES = new Set(Object.values(COUNTER_CHAINS).map((c) => c.name));
const onlyCounters = (s: NftState) => s.sets.length === 0 && s.rules.every((r) => COUNTER_CHAIN_NAMES.has(r.chain));

/** Bump when compile's output for the same inputs changes. */
const CACHE_FORMAT = 2; // 2: throws fingerprinted from their packed keys (model/throwSet.ts)

export function planKey(p: Profile, f: Facts): string | undefined {
  if (!p.digest) return undefined;
  const json = JSON.stringify({
    v: CACHE_FORMAT,
    name: p.name,
    file: p.file,
    digest: p.digest,
    iface: f.interfaces.get(p.interface),
    // What was remembered about the interface only matters while it is down or gone.
    remembered: f.interfaces.get(p.interface)?.up ? undefined : f.remembered.get(p.interface),
    stopped: f.stopped.has(p.interface),
    connected: f.connected,
    selectors: f.ruleSelectors,
  });
  return createHash('sha1').update(json).digest('hex');
}

export function reuser(cache: Record<string, CachedPlan>, f: Facts, observed: Observed): (p: Profile) => Unit[] | undefined {
  return (p) => {
    const entry = cache[p.name];
    const key = planKey(p, f);
    if (!entry || !key || entry.key !== key || entry.units.length === 0) return undefined;
    const units: Unit[] = [];
    for (const e of entry.units) {
      const { routes, throws, fp } = observedTable(observed, e.family, p.table);
      if (fp.n !== e.routes.n || fp.sum !== e.routes.sum || fp.xor !== e.routes.xor) return undefined;
      const rules = observed.rules.filter((r) => r.family === e.family && r.table === p.table);
      if (rules.map(ruleKey).sort().join('\n') !== e.rules.join('\n')) return undefined;
      // Traffic counters are the only nft objects a cached unit can have: cheap, rebuilt here.
      const unit = withCounters({ profile: p, family: e.family, status: e.status, mode: e.mode ?? 'rule', rules, routes, throws, notes: e.notes, cached: true });
      // Its routes are the observed ones, just hashed: the watcher's desiredKey asks again each run.
      fingerprints.set(unit, fp);
      units.push(unit);
    }
    return units;
  };
}

type Fingerprint = { n: number; sum: number; xor: number };
const fingerprints = new WeakMap<Unit, Fingerprint>();
type Table = { routes: RouteSpec[]; throws: ThrowSet[]; fp: Fingerprint };
const observedTables = new WeakMap<readonly RouteSpec[], Map<number, Table>>();

/**
 * One table's routes out of an observation, with their fingerprint, once per observed
 * array: the watcher hands the same arrays to every run while its route cache holds
 * (routeCache.ts), and filtering and hashing 10k routes was a repair's largest cost.
 */
function observedTable(observed: Observed, family: number, table: number): Table {
  let byTable = observedTables.get(observed.routes);
  if (!byTable) observedTables.set(observed.routes, (byTable = new Map()));
  let e = byTable.get(table * 8 + family);
  if (!e) {
    const routes = observed.routes.filter((r) => r.family === family && r.table === table);
    const throws = (observed.throws ?? []).filter((s) => s.family === family && s.table === table);
    byTable.set(table * 8 + family, (e = { routes, throws, fp: routesFingerprint(routes, throws) }));
  }
  return e;
}

/** routesFingerprint of a unit's routes and throws, once per unit (the compile memo hands the watcher the same units). */
export function unitFingerprint(u: Unit): Fingerprint {
  let fp = fingerprints.get(u);
  if (!fp) fingerprints.set(u, (fp = routesFingerprint(u.routes, u.throws)));
  return fp;
}

/** After a successful apply: remember what each cleanly compiled profile wanted. */
export function rememberPlans(owned: OwnedTables, desired: Desired, f: Facts): void {
  const plans = (owned.plans ??= {});
  const byProfile = new Map<Profile, Unit[]>();
  for (const u of desired.units) (byProfile.get(u.profile) ?? byProfile.set(u.profile, []).get(u.profile)!).push(u);
  for (const [p, units] of byProfile) {
    if (units.some((u) => u.cached)) continue; // still valid as stored
    // Units with nftables objects are always compiled: the nft diff needs their objects, and
    // their elements are compared with the kernel's every time (cheap next to nft itself).
    // The traffic counters alone do not count: reuser() rebuilds them from the profile.
    if (units.some((u) => u.nft && !onlyCounters(u.nft))) {
      delete plans[p.name];
      continue;
    }
    const key = planKey(p, f);
    const clean = units.every((u) => u.status === 'active' || u.status === 'down');
    const mentioned = [...desired.errors, ...desired.warnings].some((m) => m.includes(`profile ${p.name}`));
    if (!key || !clean || mentioned) {
      delete plans[p.name];
      continue;
    }
    plans[p.name] = {
      key,
      units: units.map((u) => ({
        family: u.family,
        status: u.status as 'active' | 'down',
        mode: u.mode,
        notes: u.notes,
        routes: unitFingerprint(u),
        rules: u.rules.map(ruleKey).sort(),
      })),
    };
  }
}

/**
 * In memory, for a long-running process (the watcher): what the last compile of each
 * loaded profile produced, keyed like the plan cache. A repair after someone deleted one
 * of our rules misses the plan cache (the table no longer holds what was wanted) but not
 * this memo (nothing it depends on changed), so the 10k-prefix profile is not parsed and
 * aggregated again; diff still compares everything with the kernel. Only clean rule-mode
 * results are kept: compile adds errors, warnings and fwmark fragments across profiles.
 */
export class CompileMemo {
  private readonly byProfile = new WeakMap<Profile, { key: string; units: Unit[] }>();

  reuse(p: Profile, f: Facts): Unit[] | undefined {
    const e = this.byProfile.get(p);
    return e && e.key === planKey(p, f) ? e.units : undefined;
  }

  remember(desired: Desired, f: Facts): void {
    const byProfile = new Map<Profile, Unit[]>();
    for (const u of desired.units) (byProfile.get(u.profile) ?? byProfile.set(u.profile, []).get(u.profile)!).push(u);
    for (const [p, units] of byProfile) {
      const key = planKey(p, f);
      const mentioned = [...desired.errors, ...desired.warnings].some((m) => m.includes(`profile ${p.name}`));
      if (!key || mentioned || units.some((u) => u.cached || u.mode !== 'rule')) continue;
      this.byProfile.set(p, { key, units });
    }
  }
}
