/**
 * A plan is data: the ordered operations that turn the observed state into the desired
 * one. `diff`, `apply --dry-run`, `export` and apply itself all use the same Plan.
 */
import type { Family } from '../model/prefix.js';
import type { RouteSpec } from '../model/route.js';
import { throwRoute, type ThrowSet } from '../model/throwSet.js';
import type { RuleSpec } from '../model/rule.js';
import type { NftChain, NftRule, NftSet } from '../model/nft.js';

export type Op =
  | { op: 'add'; kind: 'rule'; rule: RuleSpec; profile?: string }
  /** mustExist: fail on ENOENT instead of taking it as another writer's earlier delete */
  | { op: 'delete'; kind: 'rule'; rule: RuleSpec; profile?: string; mustExist?: boolean }
  | { op: 'add' | 'replace'; kind: 'route'; route: RouteSpec; was?: RouteSpec; profile?: string }
  | { op: 'delete'; kind: 'route'; route: RouteSpec; profile?: string }
  /** many throw routes of one table at once (model/throwSet.ts): one op, not one per route */
  | { op: 'add' | 'delete'; kind: 'throws'; set: ThrowSet; profile?: string }
  /** wgsplit's nftables table, per object (model/nft.ts, plan/nftDiff.ts) */
  | { op: 'add' | 'delete'; kind: 'nft-table'; profile?: string }
  | { op: 'add' | 'replace' | 'delete'; kind: 'nft-chain'; chain: NftChain; was?: NftChain; profile?: string }
  | { op: 'add' | 'replace' | 'delete'; kind: 'nft-set'; set: NftSet; was?: NftSet; profile?: string }
  /** interval: the set holds prefixes (each element is an interval to the kernel) */
  | { op: 'add' | 'delete'; kind: 'nft-element'; set: string; element: string; interval?: boolean; profile?: string }
  /** before: the handle of the rule to insert in front of (none: append to the chain) */
  | { op: 'add'; kind: 'nft-rule'; rule: NftRule; before?: number; profile?: string }
  | { op: 'delete'; kind: 'nft-rule'; chain: string; handle: number; comment?: string; profile?: string }
  /** a sysctl under /proc/sys: set (replace) for fwmark mode, or restored (delete) to `value` */
  | { op: 'replace' | 'delete'; kind: 'sysctl'; path: string; value: number; was?: number; profile?: string };

export interface Plan {
  ops: Op[];
}

/** The family of a rule or route operation; undefined for nft objects (the table is inet). */
export function opFamily(o: Op): Family | undefined {
  return o.kind === 'rule' ? o.rule.family : o.kind === 'route' ? o.route.family : o.kind === 'throws' ? o.set.family : o.kind === 'sysctl' ? 4 : undefined;
}

export function isNftOp(o: Op): o is Extract<Op, { kind: `nft-${string}` }> {
  return o.kind.startsWith('nft-');
}

export function opTable(o: Op): number | undefined {
  return o.kind === 'rule' ? o.rule.table : o.kind === 'route' ? o.route.table : o.kind === 'throws' ? o.set.table : undefined;
}

/** Does the op write routes (a single one or a set of throws)? */
export function isRouteOp(o: Op): o is Extract<Op, { kind: 'route' | 'throws' }> {
  return o.kind === 'route' || o.kind === 'throws';
}

/** How many kernel objects an op writes: a set of throws counts its routes. */
export function opSize(o: Op): number {
  return o.kind === 'throws' ? o.set.dsts.size : 1;
}

/** Changes in a plan, counted per kernel object (what a person is told). */
export function planSize(ops: readonly Op[]): number {
  let n = 0;
  for (const o of ops) n += opSize(o);
  return n;
}

/**
 * The plan with each set of throws as one route op per throw: the view of `diff --json`,
 * `export` and the fake kernel, where a route is a route. Not for large plans on a hot path.
 */
export function expandOps(ops: readonly Op[]): Op[] {
  const out: Op[] = [];
  for (const o of ops) {
    if (o.kind !== 'throws') out.push(o);
    else for (let i = 0; i < o.set.dsts.size; i++) out.push({ op: o.op, kind: 'route', route: throwRoute(o.set, i), ...(o.profile !== undefined ? { profile: o.profile } : {}) });
  }
  return out;
}
