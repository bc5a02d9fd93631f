/** The desired kernel state: per profile and family, the rules and routes it wants. */
import type { Family } from '../model/prefix.js';
import type { RouteSpec } from '../model/route.js';
import type { ThrowSet } from '../model/throwSet.js';
import type { RuleSpec } from '../model/rule.js';
import type { Profile } from '../profile/types.js';
import type { NftState } from '../model/nft.js';
import type { DomainFeed } from './nftDomains.js';

export type UnitStatus =
  | 'active' // the interface is up with an address in this family: everything as listed
  | 'down' // the interface is down, gone or lost its address: rules, throws and (on_down =
  //          "block") unreachable routes, computed from its remembered addresses
  | 'absent' // the interface does not exist and nothing is remembered: leave installed state alone
  | 'stopped'; // `wgsplit down IFACE` was run: nothing is wanted

export interface Unit {
  profile: Profile;
  family: Family;
  status: UnitStatus;
  /** the backend this unit uses: policy rules with selectors, or nftables marks */
  mode: 'rule' | 'fwmark';
  /** this unit's objects in wgsplit's nftables table (fwmark marks, masquerade, ...) */
  nft?: NftState;
  /** include_domains / exclude_domains: which of this unit's sets dnsmasq fills with which names */
  feeds?: DomainFeed[];
  rules: RuleSpec[];
  /** every route but the throws */
  routes: RouteSpec[];
  /** the throw routes, packed (model/throwSet.ts: never among `routes`) */
  throws?: ThrowSet[];
  /** why this family is what it is, for status/explain */
  notes: string[];
  /**
   * Reused from the plan cache: the kernel already holds exactly what this unit wants, so
   * `routes`, `throws` and `rules` are the observed ones and diff skips the unit's table.
   */
  cached?: boolean;
}

export interface Desired {
  units: Unit[];
  /** every object of the `inet wgsplit` table, merged from the units; undefined when none */
  nft?: NftState;
  /** the domain sets of the installed units and their names: the dnsmasq drop-in (src/dnsmasq/) */
  domainFeeds?: DomainFeed[];
  /** sysctls (path under /proc/sys) and the value they must have */
  sysctls?: { path: string; value: number; why: string }[];
  /** problems that make applying impossible (e.g. families = ["ipv6"] but no IPv6 address) */
  errors: string[];
  warnings: string[];
}
