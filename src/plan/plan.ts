/**
 * A plan is data: the ordered operations that turn the observed state into the desired
 * one. `diff`, `apply --dry-run`, `export` and apply itself all use the same Plan.
 */
import type { Family } from '../model/prefix.js';
import type { RouteSpec } from '../model/route.js';
import type { RuleSpec } from '../model/rule.js';

export type Op =
  | { op: 'add'; kind: 'rule'; rule: RuleSpec; profile?: string }
  | { op: 'delete'; kind: 'rule'; rule: RuleSpec; profile?: string }
  | { op: 'add' | 'replace'; kind: 'route'; route: RouteSpec; was?: RouteSpec; profile?: string }
  | { op: 'delete'; kind: 'route'; route: RouteSpec; profile?: string };

export interface Plan {
  ops: Op[];
}

export function opFamily(o: Op): Family {
  return o.kind === 'rule' ? o.rule.family : o.route.family;
}

export function opTable(o: Op): number {
  return o.kind === 'rule' ? o.rule.table : o.route.table;
}
