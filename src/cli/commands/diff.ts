/** `wgsplit diff [--json]`: exit 0 when the kernel matches the profiles, 1 on drift. */
import { loadProfileDir } from '../../profile/load.js';
import { computePlan } from '../../reconcile/reconcile.js';
import { renderPlan } from '../../plan/render.js';
import type { Context } from '../context.js';
import { EXIT_DRIFT } from '../exitCodes.js';

export async function diffCommand(ctx: Context): Promise<number> {
  const { profiles } = loadProfileDir(ctx.args.config);
  const kernel = await ctx.kernel();
  try {
    const c = await computePlan(kernel, await ctx.state(kernel, (m) => ctx.err(`wgsplit: note: ${m}\n`)), profiles, { kind: 'apply' });
    const inSync = c.plan.ops.length === 0 && c.desired.errors.length === 0;
    if (ctx.args.json) {
      ctx.out(JSON.stringify({ inSync, errors: c.desired.errors, warnings: c.desired.warnings, ops: c.plan.ops }, null, 1) + '\n');
    } else {
      for (const e of c.desired.errors) ctx.err(`wgsplit: ${e}\n`);
      for (const w of c.desired.warnings) ctx.err(`wgsplit: warning: ${w}\n`);
      if (c.plan.ops.length) {
        ctx.out(renderPlan(c.plan, { colour: ctx.args.colour, full: ctx.args.full }));
        ctx.out(`(+ missing from the kernel, - in the kernel but not wanted, ~ different; \`wgsplit apply\` fixes it)\n`);
      } else if (!ctx.args.quiet) ctx.out('in sync\n');
    }
    return inSync ? 0 : EXIT_DRIFT;
  } finally {
    kernel.close();
  }
}
