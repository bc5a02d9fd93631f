/** `wgsplit status [--json]`: per profile and family, what is installed and whether it matches. */
import { loadProfileDir } from '../../profile/load.js';
import { computePlan } from '../../reconcile/reconcile.js';
import { routeSlot } from '../../model/route.js';
import { isNftOp, opFamily, opTable, planSize, type Op } from '../../plan/plan.js';
import { throwCount } from '../../model/throwSet.js';
import type { Unit } from '../../compile/desired.js';
import type { Context } from '../context.js';
import { networkdNeedsDropIn } from '../../daemon/culprit.js';
import { unitStats, type UnitStats } from '../../metrics/stats.js';
import { trafficText } from '../units.js';
import { proxyStatus, proxyStatusLine } from './proxyStatus.js';

export async function status(ctx: Context): Promise<number> {
  const { profiles, dir } = loadProfileDir(ctx.args.config);
  const kernel = await ctx.kernel();
  try {
    const c = await computePlan(kernel, await ctx.state(kernel, (m) => ctx.err(`wgsplit: note: ${m}\n`)), profiles, { kind: 'apply' });
    const stats = unitStats(c.desired.units, c.plan.ops, c.desired.units.some((u) => u.profile.counters && u.nft) ? await kernel.readCounters?.() : undefined);
    const report = profiles.map((p) => {
      const iface = c.facts.get(p.interface);
      const units = c.desired.units.filter((u) => u.profile === p);
      return {
        profile: p.name,
        file: p.file,
        interface: { name: p.interface, exists: !!iface?.exists, up: !!iface?.up, addresses: iface ? [...iface.addresses[4], ...iface.addresses[6]] : [] },
        table: p.table,
        priority: p.priority,
        families: units.map((u) => {
          const installedRules = c.observed.rules.filter((r) => r.family === u.family && r.table === p.table).length;
          const inTable = (x: { family: number; table: number }) => x.family === u.family && x.table === p.table;
          const installedRoutes = c.observed.routes.filter(inTable).length + throwCount((c.observed.throws ?? []).filter(inTable));
          const drift = c.plan.ops.filter((o) => !isNftOp(o) && opFamily(o) === u.family && opTable(o) === p.table);
          return {
            family: `ipv${u.family}`,
            mode: u.mode,
            status: u.status,
            inSync: u.status === 'absent' ? undefined : drift.length === 0,
            rules: { wanted: u.rules.length, installed: installedRules },
            routes: { wanted: new Set(u.routes.map(routeSlot)).size + throwCount(u.throws), installed: installedRoutes },
            drift: planSize(drift),
            counters: jsonCounters(stats.find((s) => s.profile === p.name && s.family === u.family)?.counters),
            notes: u.notes,
          };
        }),
        nft: nftPart(p.name, units, c.plan.ops),
        // include_domains / exclude_domains: what dnsmasq has learned so far, per set.
        domains: units
          .filter((u) => u.status === 'active' || u.status === 'down')
          .flatMap((u) => u.feeds ?? [])
          .map((f) => ({ set: f.set, names: f.domains, learned: c.observed.nft?.sets.find((s) => s.name === f.set)?.elements.length ?? 0 })),
        ...(p.proxy ? { proxy: proxyStatus(p, units) } : {}),
      };
    });
    const orphans = c.plan.ops.filter((o) => o.op === 'delete' && !o.profile).length;
    const hints: string[] = [];
    if (networkdNeedsDropIn())
      hints.push(
        'systemd-networkd is running and deletes routing rules it did not make (ManageForeignRoutingPolicyRules=yes): install hooks/networkd/wgsplit.conf as /etc/systemd/networkd.conf.d/wgsplit.conf and restart it',
      );
    if (ctx.args.json) {
      ctx.out(JSON.stringify({ configDir: dir, profiles: report, errors: c.desired.errors, orphans, hints }, null, 1) + '\n');
      return 0;
    }
    if (!report.length) ctx.out(`no profiles in ${dir}\n`);
    for (const p of report) {
      const i = p.interface;
      ctx.out(`profile ${p.profile} (${p.file})\n`);
      if (p.proxy) ctx.out(`  ${proxyStatusLine(p.proxy)}\n`);
      else ctx.out(`  interface ${i.name}: ${i.exists ? (i.up ? 'up' : 'down') : 'absent'}${i.addresses.length ? ', ' + i.addresses.join(', ') : ''}\n`);
      ctx.out(`  table ${p.table}, priority ${p.priority}\n`);
      for (const f of p.families) {
        const where =
          f.status === 'absent'
            ? 'interface absent, installed state left as is'
            : f.status === 'stopped'
              ? 'stopped by `wgsplit down`'
              : f.status === 'down'
                ? `interface down: ${f.notes[0] ?? ''}`
                : 'up';
        const sync = f.status === 'absent' ? '' : f.drift === 0 ? ', in sync' : `, DRIFT (${f.drift} difference${f.drift > 1 ? 's' : ''}; see wgsplit diff)`;
        const state = where + sync;
        ctx.out(`  ${f.family} (${p.proxy ? 'proxy, nftables marks' : `${f.mode} mode`}): ${state}: ${f.rules.installed}/${f.rules.wanted} rules, ${f.routes.installed}/${f.routes.wanted} routes\n`);
        if (f.counters) ctx.out(`    traffic: ${trafficText({ out: f.counters.out ?? undefined, in: f.counters.in ?? undefined }, ctx.isTTY)}\n`);
        for (const n of f.notes) if (/^mode |endpoint|IPv6 is blocked|^waiting for cgroup|^gateway: |^the host.s own traffic is not/.test(n)) ctx.out(`    ${n}\n`);
      }
      if (p.nft) {
        const n = p.nft;
        const sync = n.drift === 0 ? 'in sync' : `DRIFT (${n.drift} difference${n.drift > 1 ? 's' : ''}; see wgsplit diff)`;
        ctx.out(`  nftables (table inet wgsplit): ${n.rules.length} rule${n.rules.length === 1 ? '' : 's'} (${n.parts.join(', ')}), ${n.sets} set${n.sets === 1 ? '' : 's'} with ${n.elements} element${n.elements === 1 ? '' : 's'}, ${sync}\n`);
      }
      for (const d of p.domains) ctx.out(`  set ${d.set}: ${d.learned} address${d.learned === 1 ? '' : 'es'} learned by dnsmasq for ${d.names.join(', ')}\n`);
    }
    const tableDrift = c.plan.ops.filter((o) => isNftOp(o) && (!o.profile || o.profile === 'wgsplit')).length;
    if (tableDrift) ctx.out(`nftables: table inet wgsplit: DRIFT (${tableDrift} difference${tableDrift > 1 ? 's' : ''} in objects of no profile; see wgsplit diff)\n`);
    for (const e of c.desired.errors) ctx.out(`error: ${e}\n`);
    for (const h of hints) ctx.out(`hint: ${h}\n`);
    if (orphans) ctx.out(`${orphans} rule(s)/route(s) of wgsplit belong to no profile; \`wgsplit apply\` removes them\n`);
    return 0;
  } finally {
    kernel.close();
  }
}

/** A profile's parts in the nftables table: which rules (by what they do), sets, drift. */
function nftPart(profile: string, units: Unit[], ops: Op[]) {
  const objs = units.filter((u) => u.nft && (u.status === 'active' || u.status === 'down')).map((u) => u.nft!);
  if (!objs.length) return undefined;
  const rules = objs.flatMap((o) => o.rules.map((r) => r.key));
  return {
    rules,
    parts: [...new Set(rules.map((k) => k.split('/').slice(2).join('/')))],
    sets: objs.reduce((n, o) => n + o.sets.length, 0),
    elements: objs.reduce((n, o) => n + o.sets.reduce((m, s) => m + s.elements.length, 0), 0),
    drift: ops.filter((o) => isNftOp(o) && o.profile === profile).length,
  };
}

/** Counters as JSON: null without counters, and null for a direction whose rule is missing (drift). */
function jsonCounters(c: UnitStats['counters']) {
  return c ? { out: c.out ?? null, in: c.in ?? null } : null;
}
