/** `wgsplit diff [--json]`: exit 0 when the kernel matches the profiles, 1 on drift. */
import { loadProfileDir } from '../../profile/load.js';
import { computePlan } from '../../reconcile/reconcile.js';
import { renderPlan } from '../../plan/render.js';
import { expandOps } from '../../plan/plan.js';
import type { Context } from '../context.js';
import { EXIT_DRIFT } from '../exitCodes.js';
import { LinuxDnsmasq } from '../../dnsmasq/dnsmasq.js';
import { isOurs, renderDropin } from '../../dnsmasq/dropin.js';

export async function diffCommand(ctx: Context): Promise<number> {
  const { profiles } = loadProfileDir(ctx.args.config);
  const kernel = await ctx.kernel();
  try {
    const c = await computePlan(kernel, await ctx.state(kernel, (m) => ctx.err(`wgsplit: note: ${m}\n`)), profiles, { kind: 'apply' });
    // The dnsmasq drop-in is part of what apply makes (never the elements dnsmasq learned).
    const dnsmasq = (ctx.dnsmasq ?? ((x) => new LinuxDnsmasq(x)))(ctx.args.dnsmasq);
    const want = renderDropin(c.desired.domainFeeds ?? []);
    const have = dnsmasq.read();
    const dropinInSync = want === have || (!want && !isOurs(have));
    const inSync = c.plan.ops.length === 0 && c.desired.errors.length === 0 && dropinInSync;
    if (ctx.args.json) {
      ctx.out(JSON.stringify({ inSync, errors: c.desired.errors, warnings: c.desired.warnings, ops: expandOps(c.plan.ops), dnsmasq: { conf: dnsmasq.config.conf, inSync: dropinInSync } }, null, 1) + '\n');
    } else {
      if (!dropinInSync) ctx.out(`~ dnsmasq drop-in ${dnsmasq.config.conf}: not what the profiles' include_domains / exclude_domains make (\`wgsplit apply\` rewrites it and reloads dnsmasq)\n`);
      for (const e of c.desired.errors) ctx.err(`wgsplit: ${e}\n`);
      for (const w of c.desired.warnings) ctx.err(`wgsplit: warning: ${w}\n`);
      if (c.plan.ops.length) {
        ctx.out(renderPlan(c.plan, { colour: ctx.args.colour, full: ctx.args.full }));
        ctx.out(`(+ missing from the kernel, - in the kernel but not wanted, ~ different; \`wgsplit apply\` fixes it)\n`);
      } else if (!ctx.args.quiet && dropinInSync) ctx.out('in sync\n');
    }
    return inSync ? 0 : EXIT_DRIFT;
  } finally {
    kernel.close();
  }
}
