/**
 * Which destinations of one family a profile takes: its includes that no exclusion covers,
 * and its exclusions, each aggregated (model/prefixList.ts). An include covered by an
 * exclusion would win the longest-prefix match against its throw; exclusions win, so such
 * includes are dropped. Rule mode, fwmark mode and the proxy target all start from this.
 */
import type { Family, Prefix } from '../model/prefix.js';
import { PrefixList } from '../model/prefixList.js';
import type { PrefixSource, Profile } from '../profile/types.js';

export interface Destinations {
  includes: PrefixList;
  excludes: PrefixList;
}

/** List files come packed; other sources (literals, @sets) as objects. */
const input = (s: PrefixSource) => s.packed ?? s.prefixes;

export function destinations(p: Pick<Profile, 'include' | 'exclude'>, family: Family, extraExcludes: readonly Prefix[] = []): Destinations {
  const excludes = PrefixList.of(family, [...p.exclude.map(input), extraExcludes]);
  const includes = PrefixList.of(family, p.include.map(input)).outside(excludes);
  return { includes, excludes };
}
