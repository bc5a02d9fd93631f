/** `wgsplit up IFACE`, `down IFACE`, `apply`: reconcile, or print the plan with --dry-run. */
import { loadProfileDir } from '../../profile/load.js';
import { applyCommand, computePlan, preflight, type Command } from '../../reconcile/reconcile.js';
import { renderPlan, summary } from '../../plan/render.js';
import type { Context } from '../context.js';
import type { Profile } from '../../profile/types.js';
import { formatProblem, WgsplitError } from '../../errors.js';
import { acquireLock } from '../../state/lock.js';
import { lockFilePath } from '../../state/owned.js';
import { LinuxDnsmasq } from '../../dnsmasq/dnsmasq.js';
import { isOurs, renderDropin } from '../../dnsmasq/dropin.js';

export async function applyLike(ctx: Context, cmd: Command): Promise<number> {
  let profiles: Profile[];
  try {
    // `down` must see a bad list when loading (it then proceeds without the profiles).
    profiles = loadProfileDir(ctx.args.config, { lazyLists: cmd.kind !== 'down' }).profiles;
  } catch (e) {
    // PostDown must not leave the tunnel's rules (and its blocking fallback) behind because
    // a profile was broken since `up`: the state store lists every table `up` made for
    // IFACE, so `down` proceeds without the profiles and says so.
    if (cmd.kind !== 'down' || !(e instanceof WgsplitError) || (e.code !== 'PROFILE' && e.code !== 'CONFIG_PERMS')) throw e;
    for (const p of e.problems) ctx.err(`${formatProblem(p)}\n`);
    if (!e.problems.length) ctx.err(`wgsplit: ${e.message}\n`);
    ctx.err(`wgsplit: warning: profiles do not load; removing what wgsplit recorded for ${cmd.iface} anyway\n`);
    profiles = [];
  }
  const label = cmd.kind === 'apply' ? 'apply' : `${cmd.kind} ${cmd.iface}`;
  if (cmd.kind === 'up' && !profiles.some((p) => p.interface === cmd.iface)) {
    ctx.err(`wgsplit: warning: no profile in ${ctx.args.config} uses interface ${cmd.iface}; nothing to do\n`);
  }
  const kernel = await ctx.kernel();
  const dnsmasq = (ctx.dnsmasq ?? ((c) => new LinuxDnsmasq(c)))(ctx.args.dnsmasq);
  try {
    const state = await ctx.state(kernel, (m) => ctx.err(`wgsplit: note: ${m}\n`));
    if (ctx.args.dryRun) {
      const c = await computePlan(kernel, state, profiles, cmd);
      preflight(c);
      if (cmd.kind !== 'down') for (const w of c.desired.warnings) ctx.err(`wgsplit: warning: ${w}\n`);
      const text = renderPlan(c.plan, { colour: ctx.args.colour, full: ctx.args.full });
      ctx.out(text || `wgsplit: ${label}: nothing to do, the kernel already matches\n`);
      const dropin = renderDropin(c.desired.domainFeeds ?? []);
      const have = dnsmasq.read();
      if (dropin !== have && (dropin || isOurs(have))) ctx.out(`dnsmasq: would ${dropin ? `write ${dnsmasq.config.conf} (${dropin.split('\n').filter((l) => l.startsWith('nftset=')).length} nftset lines)` : `remove ${dnsmasq.config.conf}`}, then run: ${dnsmasq.config.reload}\n`);
      return 0;
    }
    const started = performance.now();
    let progressShown = false;
    const progress =
      ctx.isTTY && !ctx.args.quiet
        ? (done: number, total: number) => {
            if (total < 2000) return;
            progressShown = true;
            ctx.err(`\r${label}: ${done}/${total} operations`);
          }
        : undefined;
    const lock = await acquireLock(ctx.lockPath ?? lockFilePath());
    let r;
    try {
      r = await applyCommand(kernel, state, profiles, cmd, progress, { dnsmasq });
    } finally {
      lock.release();
    }
    if (progressShown) ctx.err('\n');
    if (cmd.kind !== 'down') for (const w of r.desired.warnings) ctx.err(`wgsplit: warning: ${w}\n`);
    if (!ctx.args.quiet) {
      const s = summary(r.plan);
      const ms = (performance.now() - started).toFixed(0);
      const counts = [s.add && `${s.add} added`, s.replace && `${s.replace} replaced`, s.delete && `${s.delete} removed`].filter(Boolean).join(', ');
      // A Set of the op kinds first: at 100k routes, a string per op was measurable.
      const kinds = [...new Set([...new Set(r.plan.ops.map((o) => o.kind))].map((k) => (k === 'route' || k === 'throws' ? 'routes' : k === 'rule' ? 'rules' : k === 'sysctl' ? 'sysctls' : 'nft objects')))];
      const what = r.written === 0 ? 'already in sync, nothing written' : `${counts} (${kinds.join(', ')})`;
      const profilesText = cmd.kind === 'down' ? '' : ` (${[...new Set(r.desired.units.map((u) => u.profile.name))].join(', ') || 'no profiles'})`;
      ctx.out(`wgsplit: ${label}${profilesText}: ${what} in ${ms} ms\n`);
      const d = r.dnsmasq;
      if (d?.written) ctx.out(`wgsplit: dnsmasq drop-in ${d.conf} ${renderDropin(r.desired.domainFeeds ?? []) ? 'updated' : 'removed'}; ran: ${dnsmasq.config.reload}\n`);
      else if (d?.reloaded === 'cache') ctx.out(`wgsplit: domain sets were created empty; ran: ${dnsmasq.config.reload} (dnsmasq must drop its cache)\n`);
    }
    return 0;
  } finally {
    kernel.close();
  }
}
