/**
 * `wgsplit explain DEST ...`: which way a packet goes and why, asked of the kernel. DEST is
 * an address, or a name: then it is resolved with the system resolver (getaddrinfo, so the
 * answer comes the way applications get it, through dnsmasq when it is the resolver, which
 * also fills the domain sets) and every address is explained, with the domain sets that
 * hold it.
 */
import { lookup } from 'node:dns/promises';
import { WgsplitError } from '../../errors.js';
import { explain, ipprotoOf, markFor, tableName, type ExplainQuery, type Learned } from '../../explain/explain.js';
import { parseAddress } from '../../model/prefix.js';
import { checkDomain } from '../../profile/domains.js';
import { loadProfileDir } from '../../profile/load.js';
import { computePlan } from '../../reconcile/reconcile.js';
import { planSize } from '../../plan/plan.js';
import { getentUser } from '../../profile/users.js';
import type { Context } from '../context.js';
import { parseCgroupPath } from '../../model/cgroup.js';
import { procCgroup, procEuid } from '../../kernel/cgroup.js';

async function destinations(dst: string): Promise<{ name?: string; addresses: string[] }> {
  const a = parseAddress(dst);
  if (a && !dst.includes('/')) return { addresses: [dst] };
  const name = checkDomain(dst);
  if (!name.ok || dst.includes('/')) throw new WgsplitError('USAGE', `"${dst}" is not an IPv4 or IPv6 address or a host name (explain asks about one destination)`);
  try {
    const all = await lookup(name.name, { all: true, verbatim: true });
    return { name: name.name, addresses: [...new Set(all.map((x) => x.address))] };
  } catch (e) {
    throw new WgsplitError('ENVIRONMENT', `cannot resolve ${name.name}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
}
import { proxyListeners } from '../../kernel/listeners.js';

export async function explainCommand(ctx: Context): Promise<number> {
  const o = ctx.args.explain;
  const { name, addresses } = await destinations(ctx.args.positionals[0]);
  let app: string | undefined;
  let uid = o.uid;
  if (o.user !== undefined) {
    const u = getentUser(o.user);
    if (u === undefined) throw new WgsplitError('USAGE', `--uid ${o.user}: unknown user (getent passwd ${o.user} finds no such user)`);
    if ('error' in u) throw new WgsplitError('ENVIRONMENT', `--uid ${o.user}: cannot look up the user: ${u.error}`);
    uid = u.uid;
  }
  if (o.pid !== undefined) {
    app = procCgroup(o.pid);
    if (app === undefined) throw new WgsplitError('USAGE', `--pid ${o.pid}: no such process, or it has no cgroup v2 (no "0::" line in /proc/${o.pid}/cgroup)`);
    // Its sockets carry its effective uid (meta skuid, uidrange) unless --uid says otherwise.
    uid ??= procEuid(o.pid);
  } else if (o.app !== undefined) {
    const r = parseCgroupPath(o.app);
    if (!r.ok) throw new WgsplitError('USAGE', `--app: ${r.reason}`);
    app = r.path;
  }
  const { profiles } = loadProfileDir(ctx.args.config);
  const kernel = await ctx.kernel();
  try {
    if (!kernel.lookup) throw new WgsplitError('ENVIRONMENT', 'this kernel port cannot look up routes');
    const c = await computePlan(kernel, await ctx.state(kernel, (m) => ctx.err(`wgsplit: note: ${m}\n`)), profiles, { kind: 'apply' });
    // What dnsmasq has put into the domain sets, as the kernel holds it now.
    const held = new Map((c.observed.nft?.sets ?? []).map((s) => [s.name, new Set(s.elements.map((e) => parseAddress(e)?.addr))]));
    const learned: Learned = (u, family, dst) => {
      const addr = parseAddress(dst)?.addr;
      const f = u.feeds?.find((x) => x.family === family && held.get(x.set)?.has(addr));
      return f ? { which: f.set.endsWith('_exclude_domains') ? 'exclude' : 'include', set: f.set } : undefined;
    };
    const json: unknown[] = [];
    if (name && !ctx.args.json) ctx.out(`${name}: ${addresses.join(', ')} (system resolver)\n`);
    for (const dst of addresses) {
      const family = parseAddress(dst)!.family;
      if (o.from !== undefined && parseAddress(o.from)?.family !== family) {
        if (!name) throw new WgsplitError('USAGE', `--from ${o.from} is not an IPv${family} address`);
        continue;
      }
      const q: ExplainQuery = { family, dst, proto: o.proto, dport: o.dport, sport: o.sport, uid, from: o.from, iif: o.iif, app };
      const marked = markFor(c.desired.units, q, c.allFacts, learned);
      const result = await kernel.lookup({ family: q.family, dst, ipproto: ipprotoOf(q), dport: q.dport, sport: q.sport, uid: q.uid, from: q.from, iif: q.iif, mark: marked?.profile.fwmark });
      const e = explain(q, c.desired.units, c.allFacts, result, marked, learned);
      const sets = c.desired.units.filter((u) => u.family === family).map((u) => learned(u, family, dst)?.set).filter((x): x is string => !!x);
      if (ctx.args.json) {
        json.push({ ...e, name, sets, lookup: result, inSync: c.plan.ops.length === 0 });
        continue;
      }
      ctx.out(e.headline + '\n');
      if (result.ok) ctx.out(`  kernel: table ${tableName(result.table)}, dev ${result.dev ?? '-'}${result.gateway ? `, via ${result.gateway}` : ''}${result.src ? `, src ${result.src}` : ''}${marked ? `, looked up with mark 0x${marked.profile.fwmark.toString(16)}` : ''}\n`);
      if (c.desired.domainFeeds?.some((f) => f.family === family)) ctx.out(`  domain sets: ${sets.length ? `in ${sets.join(', ')} (learned by dnsmasq)` : 'in none'}\n`);
      const kind = (n: string, mode: string) => (profiles.find((p) => p.name === n)?.proxy ? 'proxy' : `${mode} mode`);
      for (const v of e.profiles) ctx.out(`  profile ${v.profile} (${kind(v.profile, v.mode)}): ${v.reason}\n`);
      const proxy = e.verdict === 'proxy' ? profiles.find((p) => p.name === e.profile)?.proxy : undefined;
      if (proxy && q.proto && q.proto !== 'icmp' && !proxyListeners(proxy.port)[q.family][q.proto]) ctx.out(`  note: nothing listens on port ${proxy.port} for ${q.proto} (IPv${q.family}): this packet would be refused (not leaked) until the proxy runs\n`);
    }
    if (ctx.args.json) ctx.out(JSON.stringify(name ? json : json[0], null, 1) + '\n');
    else if (c.plan.ops.length) ctx.out(`  note: the kernel differs from the profiles (${planSize(c.plan.ops)} change${planSize(c.plan.ops) > 1 ? 's' : ''} pending; see wgsplit diff)\n`);
    return 0;
  } finally {
    kernel.close();
  }
}
