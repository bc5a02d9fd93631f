/**
 * Per profile and family: whether it is active, how far the kernel is from it (drift, in
 * objects), and its traffic counters. Pure: built from a computed plan (reconcile's
 * computePlan) and the counters read from the kernel (kernel/nftCounters.ts); `status`,
 * `metrics` and the watcher's textfile all use it, so they never disagree.
 */
import { counterKey, DIRECTIONS, type Direction } from '../compile/counters.js';
import type { Unit } from '../compile/desired.js';
import type { Family } from '../model/prefix.js';
import { isNftOp, opFamily, opSize, opTable, type Op } from '../plan/plan.js';
import type { Counter } from '../kernel/nftCounters.js';

export interface UnitStats {
  profile: string;
  family: Family;
  interface: string;
  mode: 'rule' | 'fwmark';
  status: Unit['status'];
  /** active: the interface is up with an address in this family and the profile applies */
  active: boolean;
  /** objects (rules, routes, nft objects) that differ from the profile; 0 when in sync */
  drift: number;
  /** undefined: the profile has no counters (counters = false, or nothing installed) */
  counters?: Record<Direction, Counter | undefined>;
}

/** The family an nft operation belongs to, from its rule key or set name (`<ident>/v4/...`, `<ident>_v4_...`). */
function nftOpFamily(o: Op): Family | undefined {
  const text = o.kind === 'nft-rule' ? (o.op === 'add' ? o.rule.key : o.comment ?? '') : o.kind === 'nft-set' ? o.set.name : o.kind === 'nft-element' ? o.set : '';
  const m = /[/_]v([46])[/_]/.exec(text);
  return m ? (Number(m[1]) as Family) : undefined;
}

/** Drift of one unit: its table's rule and route operations in its family, and its nft objects' operations. */
export function unitDrift(u: Pick<Unit, 'profile' | 'family'>, ops: Op[]): number {
  let n = 0;
  for (const o of ops) {
    if (isNftOp(o)) {
      if (o.profile === u.profile.name && nftOpFamily(o) === u.family) n++;
    } else if (o.kind !== 'sysctl' && opFamily(o) === u.family && opTable(o) === u.profile.table) n += opSize(o);
  }
  return n;
}

export function unitStats(units: Unit[], ops: Op[], counters: Map<string, Counter> | undefined): UnitStats[] {
  return units.map((u) => {
    const s: UnitStats = {
      profile: u.profile.name,
      family: u.family,
      interface: u.profile.interface,
      mode: u.mode,
      status: u.status,
      active: u.status === 'active',
      drift: u.status === 'absent' ? 0 : unitDrift(u, ops),
    };
    const hasCounters = u.nft?.rules.some((r) => r.key === counterKey(u.profile.name, u.family, 'out'));
    if (hasCounters) s.counters = Object.fromEntries(DIRECTIONS.map((d) => [d, counters?.get(counterKey(u.profile.name, u.family, d))])) as UnitStats['counters'];
    return s;
  });
}
