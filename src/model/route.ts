/**
 * A route in one of our tables as plain data. `routeSlot` is the kernel's identity for a
 * route (table, destination, metric; tos is always 0 for us): two routes in one slot cannot
 * coexist, so a changed route is *replaced* in place (NLM_F_REPLACE), never deleted and
 * re-added, and matching traffic never sees a gap.
 */
import type { Family } from './prefix.js';

/** `local`: proxy profiles' `local default dev lo` (deliver to this host, where TPROXY's socket waits). */
export type RouteType = 'unicast' | 'throw' | 'unreachable' | 'local';

export interface RouteSpec {
  family: Family;
  table: number;
  type: RouteType;
  dst: string; // canonical prefix text
  metric: number;
  protocol: number;
  dev?: string; // unicast and local only
  src?: string; // preferred source (RTA_PREFSRC), unicast only
}

export function routeSlot(r: RouteSpec): string {
  return `${r.family}|${r.table}|${r.dst}|${r.metric}`;
}

export function routeKey(r: RouteSpec): string {
  return `${routeSlot(r)}|${r.type}|${r.dev ?? ''}|${r.src ?? ''}|${r.protocol}`;
}
