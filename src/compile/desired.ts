/** The desired kernel state: per profile and family, the rules and routes it wants. */
import type { Family } from '../model/prefix.js';
import type { RouteSpec } from '../model/route.js';
import type { RuleSpec } from '../model/rule.js';
import type { Profile } from '../profile/types.js';

export type UnitStatus =
  | 'active' // rules and routes are wanted as listed
  | 'absent'; // the interface does not exist: leave whatever is installed alone

export interface Unit {
  profile: Profile;
  family: Family;
  status: UnitStatus;
  rules: RuleSpec[];
  routes: RouteSpec[];
  /** why this family is what it is, for status/explain */
  notes: string[];
}

export interface Desired {
  units: Unit[];
  /** problems that make applying impossible (e.g. families = ["ipv6"] but no IPv6 address) */
  errors: string[];
  warnings: string[];
}
