/**
 * A plan is data: the ordered operations that turn the observed state into the desired
 * one. `diff`, `apply --dry-run`, `export` and apply itself all use the same Plan.
 */
import type { Family } from '../model/prefix.js';
import type { RouteSpec } from '../model/route.js';
import type { RuleSpec } from '../model/rule.js';
import type { NftDesired } from '../compile/nftScript.js';

export type Op =
  | { op: 'add'; kind: 'rule'; rule: RuleSpec; profile?: string }
  /** mustExist: fail on ENOENT instead of taking it as another writer's earlier delete */
  | { op: 'delete'; kind: 'rule'; rule: RuleSpec; profile?: string; mustExist?: boolean }
  | { op: 'add' | 'replace'; kind: 'route'; route: RouteSpec; was?: RouteSpec; profile?: string }
  | { op: 'delete'; kind: 'route'; route: RouteSpec; profile?: string }
  /** fwmark mode: the whole `inet wgsplit` nftables table, replaced or deleted atomically */
  | { op: 'replace'; kind: 'nft'; nft: NftDesired; wasHash?: string; profile?: string }
  | { op: 'delete'; kind: 'nft'; wasHash?: string; profile?: string }
  /** a sysctl under /proc/sys: set (replace) for fwmark mode, or restored (delete) to `value` */
  | { op: 'replace' | 'delete'; kind: 'sysctl'; path: string; value: number; was?: number; profile?: string };

export interface Plan {
  ops: Op[];
}

/** The family of a rule or route operation; undefined for the nft table (both families). */
export function opFamily(o: Op): Family | undefined {
  return o.kind === 'rule' ? o.rule.family : o.kind === 'route' ? o.route.family : o.kind === 'sysctl' ? 4 : undefined;
}

export function opTable(o: Op): number | undefined {
  return o.kind === 'rule' ? o.rule.table : o.kind === 'route' ? o.route.table : undefined;
}
