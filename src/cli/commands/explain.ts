/** `wgsplit explain DEST ...`: which way a packet goes and why, asked of the kernel. */
import { WgsplitError } from '../../errors.js';
import { explain, ipprotoOf, markFor, tableName, type ExplainQuery } from '../../explain/explain.js';
import { parseAddress } from '../../model/prefix.js';
import { loadProfileDir } from '../../profile/load.js';
import { computePlan } from '../../reconcile/reconcile.js';
import type { Context } from '../context.js';
import { proxyListeners } from '../../kernel/listeners.js';

export async function explainCommand(ctx: Context): Promise<number> {
  const dst = ctx.args.positionals[0];
  const a = parseAddress(dst);
  if (!a || dst.includes('/')) throw new WgsplitError('USAGE', `"${dst}" is not an IPv4 or IPv6 address (explain asks about one destination; no DNS lookups)`);
  const o = ctx.args.explain;
  if (o.from !== undefined && parseAddress(o.from)?.family !== a.family) throw new WgsplitError('USAGE', `--from ${o.from} is not an IPv${a.family} address`);
  const q: ExplainQuery = { family: a.family, dst, proto: o.proto, dport: o.dport, sport: o.sport, uid: o.uid, from: o.from, iif: o.iif };
  const { profiles } = loadProfileDir(ctx.args.config);
  const kernel = await ctx.kernel();
  try {
    if (!kernel.lookup) throw new WgsplitError('ENVIRONMENT', 'this kernel port cannot look up routes');
    const c = await computePlan(kernel, ctx.state(), profiles, { kind: 'apply' });
    const marked = markFor(c.desired.units, q, c.allFacts);
    const result = await kernel.lookup({ family: q.family, dst, ipproto: ipprotoOf(q), dport: q.dport, sport: q.sport, uid: q.uid, from: q.from, iif: q.iif, mark: marked?.profile.fwmark });
    const e = explain(q, c.desired.units, c.allFacts, result, marked);
    if (ctx.args.json) {
      ctx.out(JSON.stringify({ ...e, lookup: result, inSync: c.plan.ops.length === 0 }, null, 1) + '\n');
      return 0;
    }
    ctx.out(e.headline + '\n');
    if (result.ok) ctx.out(`  kernel: table ${tableName(result.table)}, dev ${result.dev ?? '-'}${result.gateway ? `, via ${result.gateway}` : ''}${result.src ? `, src ${result.src}` : ''}${marked ? `, looked up with mark 0x${marked.profile.fwmark.toString(16)}` : ''}\n`);
    const kind = (name: string, mode: string) => (profiles.find((p) => p.name === name)?.proxy ? 'proxy' : `${mode} mode`);
    for (const v of e.profiles) ctx.out(`  profile ${v.profile} (${kind(v.profile, v.mode)}): ${v.reason}\n`);
    const proxy = e.verdict === 'proxy' ? profiles.find((p) => p.name === e.profile)?.proxy : undefined;
    if (proxy && q.proto && q.proto !== 'icmp' && !proxyListeners(proxy.port)[q.family][q.proto]) ctx.out(`  note: nothing listens on port ${proxy.port} for ${q.proto} (IPv${q.family}): this packet would be refused (not leaked) until the proxy runs\n`);
    if (c.plan.ops.length) ctx.out(`  note: the kernel differs from the profiles (${c.plan.ops.length} change${c.plan.ops.length > 1 ? 's' : ''} pending; see wgsplit diff)\n`);
    return 0;
  } finally {
    kernel.close();
  }
}
