/**
 * Per-application split tunnel (profile keys `apps`, `exclude_apps`): the nftables objects
 * of one unit. Pure. An apps profile is a fwmark profile whose marking is limited by the
 * cgroup v2 of the socket that sent the packet.
 *
 *   output (type route, see nftFwmark.ts): the profile's usual conditions (original
 *     direction, not yet marked, protocol / ports / uid, included and not excluded
 *     destination) -> `jump <profile>_<family>_apps`;
 *   <profile>_<family>_apps (a regular chain of the profile):
 *     `socket cgroupv2 level N "P" return` for each exclude_apps cgroup: back to the output
 *        chain unmarked, so this profile leaves the packet alone and a later one may take it
 *        (as an excluded destination's throw hands it to the next rule);
 *     `socket cgroupv2 level N "P" meta mark set ...` for each apps cgroup and wgsplit's own
 *        cgroup for the profile (`wgsplit exec`), or, without `apps`, one unconditional mark.
 *
 * nft resolves "P" to the cgroup's id when the rule is loaded: a cgroup that does not exist
 * cannot be loaded (nft -f fails), and one removed and created again is a different cgroup
 * the old rule no longer matches. So only existing cgroups get a rule, and a rule's key
 * carries the cgroup's id: after a re-creation the wanted key differs from the kernel's and
 * the diff swaps the rule (the kernel shows a dead one as a bare number instead of the path).
 * `socket cgroupv2 level N` matches when the socket's cgroup has an ancestor at depth N
 * (nft_socket.c, nft_sock_get_eval_cgroupv2) that is P: P's whole subtree. A socket at a
 * depth above N does not match at all, which is why exclusion is `return` in its own rule
 * and never `!= "P"` in the mark rule (that would also skip every shallower process).
 */
import { BASE_CHAINS, type NftRule, type NftState } from '../model/nft.js';
import { cgroupLevel, ownSliceName } from '../model/cgroup.js';
import { hasApps } from '../profile/apps.js';
import type { Profile } from '../profile/types.js';
import type { CgroupFacts, Facts } from './facts.js';
import { familyTag, hex, ident, ipKeyword, prefixSet, type FwmarkInput } from './nftFwmark.js';
import { nftSelectors } from '../model/selector.js';

/** wgsplit's own cgroup for a profile: where `wgsplit exec PROFILE` runs its command. */
export function ownCgroup(profile: string, base: string): string {
  return `${base}/${ownSliceName(ident(profile))}`;
}

/** The cgroups whose traffic a profile takes: its `apps` and its own cgroup (none without `apps`). */
export function appCgroups(p: Profile, base: string): string[] {
  if (p.apps === undefined) return [];
  const own = ownCgroup(p.name, base);
  return p.apps.includes(own) ? p.apps : [...p.apps, own];
}

/** Every cgroup path the profiles mention, to ask the kernel about (and to watch). */
export function cgroupPathsOf(profiles: Profile[], base: string): string[] {
  return [...new Set(profiles.filter(hasApps).flatMap((p) => [...appCgroups(p, base), ...(p.excludeApps ?? [])]))];
}

/** Why this profile's applications cannot be matched on this machine, or undefined. */
export function appsUnavailable(p: Profile, f: Facts): string | undefined {
  if (!hasApps(p)) return undefined;
  if (!f.cgroups) return `profile ${p.name}: apps need cgroup v2 facts this kernel port does not give`;
  if (f.cgroups.unavailable) return `profile ${p.name}: ${p.apps ? 'apps' : 'exclude_apps'} cannot be matched here: ${f.cgroups.unavailable}`;
  return undefined;
}

/** Listed cgroups that do not exist (yet): not an error, the profile waits for them. */
export function waitingCgroups(p: Profile, c: CgroupFacts): string[] {
  return [...(p.apps ?? []), ...(p.excludeApps ?? [])].filter((x) => c.ids[x] === undefined);
}

const match = (c: CgroupFacts, path: string) => `socket cgroupv2 level ${cgroupLevel(path)} "${c.nftPrefix}${path}"`;

export function appsObjects(f: FwmarkInput, p: Profile, c: CgroupFacts): NftState {
  const tag = familyTag(f.family);
  const base = `${ident(f.profile)}_${tag}`;
  const chain = `${base}_apps`;
  const key = `${ident(f.profile)}/${tag}`;
  const ip = ipKeyword(f.family);
  const nfproto = `meta nfproto ${f.family === 4 ? 'ipv4' : 'ipv6'}`;
  const setMark = `meta mark set meta mark & ${hex(~f.mask)} | ${hex(f.mark)}`;
  const cond = [nfproto, `meta mark & ${hex(f.mask)} == 0`, 'ct direction original', ...nftSelectors(f), `${ip} daddr @${base}_include`, `${ip} daddr != @${base}_exclude`];
  const rules: NftRule[] = [{ chain: 'output', key: `${key}/apps`, expr: `${cond.join(' ')} jump ${chain}`, owner: f.profile }];
  const seen = new Set<number>();
  for (const x of p.excludeApps ?? []) {
    const id = c.ids[x];
    if (id === undefined || seen.has(id)) continue;
    seen.add(id);
    rules.push({ chain, key: `${key}/xapp/${id}`, expr: `${match(c, x)} return`, owner: f.profile });
  }
  if (p.apps === undefined) rules.push({ chain, key: `${key}/mark`, expr: setMark, owner: f.profile });
  for (const x of appCgroups(p, c.ownBase)) {
    const id = c.ids[x];
    if (id === undefined || seen.has(id)) continue;
    seen.add(id);
    rules.push({ chain, key: `${key}/app/${id}`, expr: `${match(c, x)} ${setMark}`, owner: f.profile });
  }
  rules.push({ chain: 'postrouting', key: `${key}/masquerade`, expr: `${nfproto} oifname "${f.iface}" meta mark & ${hex(f.mask)} == ${hex(f.mark)} masquerade`, owner: f.profile });
  return {
    chains: [BASE_CHAINS.output, BASE_CHAINS.postrouting, { name: chain, owner: f.profile }],
    sets: [prefixSet(`${base}_include`, f.family, f.include, f.profile), prefixSet(`${base}_exclude`, f.family, f.exclude, f.profile)],
    rules,
  };
}
