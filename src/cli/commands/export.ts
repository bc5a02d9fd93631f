/**
 * `wgsplit export [--format ip|nft|json] [--family 4|6]`: the state wgsplit would create,
 * from scratch, for review or for machines without Node. The same plan `apply` runs against
 * an empty kernel, rendered as an `ip -batch` script (one family per script: `ip -batch`
 * lines take no -4/-6, and `ip rule` defaults to IPv4), the nftables script, or JSON.
 */
import type { Family } from '../../model/prefix.js';
import { diff } from '../../plan/diff.js';
import { expandOps, isNftOp, opFamily } from '../../plan/plan.js';
import { renderNftScript } from '../../model/nft.js';
import { ipBatchLine } from '../../plan/render.js';
import { loadProfileDir } from '../../profile/load.js';
import { computePlan } from '../../reconcile/reconcile.js';
import type { Context } from '../context.js';

export async function exportCommand(ctx: Context): Promise<number> {
  const { profiles, dir } = loadProfileDir(ctx.args.config);
  const kernel = await ctx.kernel();
  try {
    // No plan cache: export renders every route from the profiles, not from the kernel.
    const c = await computePlan(kernel, await ctx.state(kernel, (m) => ctx.err(`wgsplit: note: ${m}\n`)), profiles, { kind: 'apply' }, { noCache: true });
    for (const e of c.desired.errors) ctx.err(`wgsplit: warning: ${e}\n`);
    for (const w of c.desired.warnings) ctx.err(`wgsplit: warning: ${w}\n`);
    // One line (one JSON op) per route: a set of throws is written out.
    const ops = expandOps(diff(c.desired, { rules: [], routes: [], nft: { present: false, chains: [], sets: [], rules: [] }, sysctls: {} }, new Set()).ops);
    if (ctx.args.format === 'json') {
      ctx.out(JSON.stringify({ configDir: dir, ops, nft: c.desired.nft ?? null }, null, 1) + '\n');
      return 0;
    }
    if (ctx.args.format === 'nft') {
      if (!c.desired.nft) ctx.out('# no profile has nftables parts: wgsplit creates no nftables state\n');
      else ctx.out(`# wgsplit's nftables table; load with: nft -f FILE\n${renderNftScript(c.desired.nft)}`);
      return 0;
    }
    const family: Family = ctx.args.family ?? 4;
    const other: Family = family === 4 ? 6 : 4;
    const lines = [
      `# wgsplit IPv${family} state for the profiles in ${dir}; load with: ip${family === 6 ? ' -6' : ''} -batch FILE`,
      '# routes first, then the rules that use them (the order apply uses)',
    ];
    if (ops.some((o) => opFamily(o) === other && o.kind !== 'sysctl')) lines.push(`# IPv${other} has state too: wgsplit export --family ${other} | ip${other === 6 ? ' -6' : ''} -batch -`);
    for (const o of ops) {
      if (isNftOp(o)) {
        if (o.kind === 'nft-table') lines.push('# the profiles also need nftables objects: wgsplit export --format nft | nft -f -');
        continue;
      }
      if (o.kind === 'sysctl') {
        lines.push(`# and ${ipBatchLine(o).slice(2)}`);
        continue;
      }
      if (opFamily(o) !== family) continue;
      if (o.kind === 'rule' && o.rule.findSaddr) {
        // iproute2 can neither set nor show FIB_RULE_FIND_SADDR (a rule flag, not an attribute).
        lines.push('# this rule needs the FIB_RULE_FIND_SADDR flag, which iproute2 cannot set; `wgsplit apply` creates it:');
        lines.push(`# ${ipBatchLine(o)}`);
        continue;
      }
      lines.push(ipBatchLine(o));
    }
    ctx.out(lines.join('\n') + '\n');
    return 0;
  } finally {
    kernel.close();
  }
}
