/**
 * `explain --app CGROUP` / `--pid PID`: does a profile's application matching take this
 * application's traffic? Pure; mirrors compile/apps.ts (exclusions first, then apps and
 * wgsplit's own cgroup, each with its subtree; a cgroup that does not exist has no rule).
 */
import { appCgroups, ownCgroup } from '../compile/apps.js';
import type { CgroupFacts } from '../compile/facts.js';
import { inCgroupSubtree } from '../model/cgroup.js';
import type { Profile } from '../profile/types.js';

/** Why the profile leaves this application alone, or undefined when it takes its traffic. */
export function appRefusal(p: Profile, app: string | undefined, c: CgroupFacts | undefined): string | undefined {
  if (p.apps === undefined && p.excludeApps === undefined) return undefined;
  const base = c?.ownBase ?? 'wgsplit.slice';
  const exists = (x: string) => c?.ids[x] !== undefined;
  if (app === undefined) {
    if (p.apps === undefined) return undefined; // only exclusions: any other application matches
    return `the profile takes only applications in apps (${[...p.apps, ownCgroup(p.name, base)].join(', ')}); ask with --app CGROUP or --pid PID`;
  }
  const ex = (p.excludeApps ?? []).find((x) => inCgroupSubtree(app, x) && exists(x));
  if (ex) return `application cgroup ${app} is in exclude_apps (${ex})`;
  if (p.apps === undefined) return undefined;
  const hit = appCgroups(p, base).find((x) => inCgroupSubtree(app, x));
  if (!hit) return `application cgroup ${app} is not in apps (${p.apps.join(', ') || 'none listed'}) nor in ${ownCgroup(p.name, base)} (wgsplit exec ${p.name})`;
  if (!exists(hit)) return `cgroup ${hit} does not exist (yet): the profile waits for it`;
  return undefined;
}
