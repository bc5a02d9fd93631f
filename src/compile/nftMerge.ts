/**
 * The units' nftables objects merged into the one table, `inet wgsplit`. Pure. Rules keep
 * their chain's first-match order: by profile priority (the same order as the profiles'
 * `ip rule`s), then family, then the order the unit listed them. Only units that are
 * installed (active, or down and still blocking) contribute; a chain or set exists while
 * some unit uses it.
 */
import { mergeNft, isEmptyNft, type NftState } from '../model/nft.js';
import type { Unit } from './desired.js';

export function mergeUnitsNft(units: Unit[]): NftState | undefined {
  const live = units
    .filter((u) => u.nft && (u.status === 'active' || u.status === 'down'))
    .sort((a, b) => a.profile.priority - b.profile.priority || a.family - b.family);
  const merged = mergeNft(live.map((u) => u.nft!));
  return isEmptyNft(merged) ? undefined : merged;
}
