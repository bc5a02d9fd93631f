/**
 * The profile keys `apps` and `exclude_apps`: cgroup v2 paths, validated with positions.
 * Pure. See model/cgroup.ts for what a path is and compile/apps.ts for how it is matched.
 */
import { parseCgroupPath } from '../model/cgroup.js';
import type { Profile } from './types.js';

type At = (message: string, key?: string, index?: number) => void;

/** Does the profile pick traffic by application (either key, even `apps = []`)? */
export function hasApps(p: Pick<Profile, 'apps' | 'excludeApps'>): boolean {
  return p.apps !== undefined || p.excludeApps !== undefined;
}

function parseList(key: string, list: string[] | undefined, at: At): string[] | undefined {
  if (list === undefined) return undefined;
  const out: string[] = [];
  list.forEach((text, i) => {
    const r = parseCgroupPath(text);
    if (!r.ok) return at(`${key}[${i}]: ${r.reason}`, key, i);
    if (out.includes(r.path)) return at(`${key}[${i}]: "${text}" is listed twice`, key, i);
    out.push(r.path);
  });
  return out;
}

export function parseApps(raw: { apps?: string[]; exclude_apps?: string[]; mode?: string }, at: At, atValue: (m: string, k: string) => void): Pick<Profile, 'apps' | 'excludeApps'> {
  const apps = parseList('apps', raw.apps, at);
  const excludeApps = parseList('exclude_apps', raw.exclude_apps, at);
  // Positions are those of the raw list (a refused entry is not in excludeApps).
  (raw.exclude_apps ?? []).forEach((text, i) => {
    const r = parseCgroupPath(text);
    if (r.ok && apps?.includes(r.path)) at(`exclude_apps[${i}]: "${text}" is also in apps; a cgroup is either through the tunnel or not`, 'exclude_apps', i);
  });
  if ((apps || excludeApps) && raw.mode === 'rule') {
    atValue(`mode "rule" cannot match applications: ${apps ? 'apps' : 'exclude_apps'} is matched in nftables (socket cgroupv2); use mode "fwmark" or "auto"`, 'mode');
  }
  return { apps, excludeApps };
}
