/**
 * `wgsplit metrics`: the Prometheus text exposition of every profile and family (active,
 * drift, traffic counters), from the same computed plan `status` uses. Reads only.
 */
import { loadProfileDir } from '../../profile/load.js';
import { computePlan } from '../../reconcile/reconcile.js';
import { unitStats } from '../../metrics/stats.js';
import { renderMetrics } from '../../metrics/prometheus.js';
import type { Context } from '../context.js';

export async function metricsCommand(ctx: Context): Promise<number> {
  const { profiles } = loadProfileDir(ctx.args.config);
  const kernel = await ctx.kernel();
  try {
    ctx.out(renderMetrics(await collectStats(kernel, await ctx.state(kernel, (m) => ctx.err(`wgsplit: note: ${m}\n`)), profiles)));
    return 0;
  } finally {
    kernel.close();
  }
}

export async function collectStats(kernel: Awaited<ReturnType<Context['kernel']>>, state: Awaited<ReturnType<Context['state']>>, profiles: Parameters<typeof computePlan>[2]) {
  const c = await computePlan(kernel, state, profiles, { kind: 'apply' });
  const wantsCounters = c.desired.units.some((u) => u.profile.counters && u.nft);
  return unitStats(c.desired.units, c.plan.ops, wantsCounters ? await kernel.readCounters?.() : undefined);
}
