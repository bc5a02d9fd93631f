/**
 * observe -> compile -> plan -> apply -> read back. Written against KernelPort and
 * StateStore so it runs unchanged on the real kernel and on the fake.
 */
import { compile, mayNeedNft } from '../compile/compile.js';
import { cgroupPathsOf } from '../compile/apps.js';
import { ownCgroupBase } from '../kernel/cgroup.js';
import { hasApps } from '../profile/apps.js';
import type { Desired } from '../compile/desired.js';
import { facts as makeFacts, type Facts, type InterfaceFacts } from '../compile/facts.js';
import { WgsplitError } from '../errors.js';
import type { KernelPort, ObservedKernel } from '../kernel/port.js';
import { diff, kernelSameRule } from '../plan/diff.js';
import { isNftOp, isRouteOp, planSize, type Plan } from '../plan/plan.js';
import type { ThrowSet } from '../model/throwSet.js';
import type { Family } from '../model/prefix.js';
import type { RouteSpec } from '../model/route.js';
import { ruleKey, type RuleSpec } from '../model/rule.js';
import { opText } from '../plan/render.js';
import type { Profile } from '../profile/types.js';
import { kernelKey, type OwnedTables, type StateStore } from '../state/owned.js';
import { rememberPlans, reuser, type CompileMemo } from './planCache.js';
import type { RouteCache } from './routeCache.js';
import { WG_MISSING } from '../kernel/wg.js';
import type { DnsmasqPort, DnsmasqSync } from '../dnsmasq/dnsmasq.js';
import { cacheStale, renderDropin } from '../dnsmasq/dropin.js';
import { FORWARDING_SYSCTL } from '../compile/gatewayUnit.js';
import { isGateway } from '../profile/from.js';
import { PROXY_INTERFACE } from '../profile/proxy.js';

export type Command = { kind: 'apply' } | { kind: 'up'; iface: string } | { kind: 'down'; iface: string };

export interface Computed {
  desired: Desired;
  observed: ObservedKernel;
  facts: Map<string, InterfaceFacts>;
  allFacts: Facts;
  scope: Set<number>;
  plan: Plan;
  /** the state file as read once at the start of this run (the caller holds the lock) */
  owned: OwnedTables;
}

/** Everything short of writing: the plan `diff`, `--dry-run` and apply share. */
export async function computePlan(kernel: KernelPort, state: StateStore, profiles: Profile[], cmd: Command, opts: { noCache?: boolean; memo?: CompileMemo; routes?: RouteCache } = {}): Promise<Computed> {
  const selected = cmd.kind === 'apply' ? profiles : profiles.filter((p) => p.interface === cmd.iface);
  // WireGuard endpoints are excluded only by profiles that can match UDP (compile.ts).
  const endpointsOf = profiles.filter((p) => p.protocols === undefined || p.protocols.includes('udp')).map((p) => p.interface);
  const ifaceFacts = await kernel.interfaceFacts(selected.map((p) => p.interface), { endpointsOf });
  if (cmd.kind === 'up' && !(ifaceFacts.get(cmd.iface) ?? (await kernel.interfaceFacts([cmd.iface], { endpointsOf })).get(cmd.iface))?.exists) {
    throw new WgsplitError('NO_INTERFACE', `interface ${cmd.iface} does not exist (wg-quick runs PostUp after creating it; check the name)`);
  }
  // Without `wg` the endpoints are unknown, so a profile that can match UDP would send the
  // tunnel's own encrypted packets into the tunnel (a loop): refuse before writing anything.
  if (cmd.kind !== 'down' && kernel.notes?.includes(WG_MISSING)) {
    const udp = selected.filter((p) => ifaceFacts.get(p.interface)?.exists && (p.protocols === undefined || p.protocols.includes('udp')));
    if (udp.length)
      throw new WgsplitError(
        'ENVIRONMENT',
        `wg (wireguard-tools) is not installed, so the WireGuard endpoints of ${[...new Set(udp.map((p) => p.interface))].join(', ')} are unknown; profile ${udp.map((p) => p.name).join(', ')} can match UDP and would send the tunnel's own packets into the tunnel: install wireguard-tools (apt-get install wireguard-tools)`,
      );
  }
  // Read once per run: the caller holds the lock, so nobody else writes it meanwhile.
  const owned = state.load();
  const ruleSelectors = await selectorsFor(kernel, state, owned, profiles);
  const mayUseNft = profiles.some((p) => mayNeedNft(p, ruleSelectors));
  const observed = await observeWith(kernel, { nft: mayUseNft || !!owned.nft }, opts.routes);
  const stopped = new Set(owned.stopped ?? []);
  const remembered = new Map(Object.entries(owned.interfaces ?? {}).map(([name, r]) => [name, { name, exists: true, up: true, ...r }] as [string, InterfaceFacts]));
  if (cmd.kind === 'up') stopped.delete(cmd.iface);
  if (cmd.kind === 'down') {
    stopped.add(cmd.iface);
    remembered.delete(cmd.iface);
  }
  const changedSysctls = owned.sysctls ?? {};
  const rpFilterAll = mayUseNft ? (await kernel.readSysctls?.(['net/ipv4/conf/all/rp_filter']))?.['net/ipv4/conf/all/rp_filter'] : undefined;
  // Application profiles: which of their cgroups exist now, and with which ids (compile/apps.ts).
  const cgroups = profiles.some(hasApps) && kernel.cgroups ? await kernel.cgroups(cgroupPathsOf(profiles, ownCgroupBase())) : undefined;
  const forwarding = await forwardingFacts(kernel, profiles);
  const allFacts = makeFacts(ifaceFacts, { connected: observed.connected ?? [], remembered, stopped, ruleSelectors, rpFilterAll, changedSysctls, cgroups, forwarding });
  const cache = opts.noCache ? undefined : reuser(owned.plans ?? {}, allFacts, observed);
  const memo = opts.memo;
  const desired = compile(selected, allFacts, cache || memo ? (p) => cache?.(p) ?? memo?.reuse(p, allFacts) : undefined);
  memo?.remember(desired, allFacts);
  // The nftables table is one for all profiles: `up wg1` must not drop wg0's part.
  if (cmd.kind !== 'apply' && mayUseNft && profiles.length > selected.length) {
    const others = profiles.filter((p) => !selected.includes(p));
    const otherFacts = await kernel.interfaceFacts(others.map((p) => p.interface), { endpointsOf });
    for (const [k, v] of otherFacts) ifaceFacts.set(k, v);
    const all = compile(profiles, makeFacts(ifaceFacts, { connected: observed.connected ?? [], remembered, stopped, ruleSelectors, cgroups, forwarding }));
    desired.nft = all.nft;
    desired.domainFeeds = all.domainFeeds;
  }
  // sysctls: only those of the selected profiles' interfaces are in scope for up/down.
  const sysPaths = [...new Set([...(desired.sysctls ?? []).map((x) => x.path), ...Object.keys(changedSysctls)])].filter(
    (path) => cmd.kind === 'apply' || path.split('/')[3] === cmd.iface || (cmd.iface === PROXY_INTERFACE && path.startsWith('net/bridge/')),
  );
  if (sysPaths.length && kernel.readSysctls) {
    observed.sysctls = await kernel.readSysctls(sysPaths);
    observed.changedSysctls = Object.fromEntries(Object.entries(changedSysctls).filter(([k]) => sysPaths.includes(k)));
  }
  const scope = new Set<number>();
  if (cmd.kind === 'apply') {
    for (const r of observed.rules) scope.add(r.table);
    for (const r of observed.routes) scope.add(r.table);
    for (const s of observed.throws ?? []) scope.add(s.table);
  } else {
    for (const p of selected) scope.add(p.table);
    for (const [t, o] of Object.entries(owned.tables)) if (o.interface === cmd.iface) scope.add(Number(t));
  }
  for (const u of desired.units) scope.add(u.profile.table);
  return { desired, observed, facts: ifaceFacts, allFacts, scope, plan: diff(desired, observed, scope), owned };
}

/** kernel.observe, with the routes from the watcher's cache when nothing can have changed them. */
async function observeWith(kernel: KernelPort, o: { nft: boolean }, cache?: RouteCache): Promise<ObservedKernel> {
  const kept = cache?.get();
  if (kept) return { ...(await kernel.observe({ ...o, routes: false })), ...kept };
  cache?.begin();
  const observed = await kernel.observe(o);
  cache?.store(observed);
  return observed;
}

/** Gateway profiles need forwarding on (compile refuses otherwise); read only when one exists. */
async function forwardingFacts(kernel: KernelPort, profiles: Profile[]): Promise<Facts['forwarding']> {
  if (!kernel.readSysctls || !profiles.some((p) => isGateway(p.from))) return undefined;
  const v = await kernel.readSysctls([FORWARDING_SYSCTL[4], FORWARDING_SYSCTL[6]]);
  return { 4: v[FORWARDING_SYSCTL[4]], 6: v[FORWARDING_SYSCTL[6]] };
}

/** The rule-selector probe, run once per boot and kernel, only when a profile says auto. */
async function selectorsFor(kernel: KernelPort, state: StateStore, owned: OwnedTables, profiles: Profile[]) {
  if (!profiles.some((p) => p.mode === 'auto') || !kernel.probeRuleSelectors) return { supported: true, missing: [] as string[] };
  const key = kernelKey();
  if (owned.probe?.key === key) return owned.probe;
  const r = await kernel.probeRuleSelectors();
  // A probe that was refused says nothing about the kernel: never cache it.
  if (r.missing.some((m) => /EPERM|EACCES|not permitted/i.test(m))) {
    throw new WgsplitError('ENVIRONMENT', 'permission denied: wgsplit needs root (CAP_NET_ADMIN) to read and change policy routing');
  }
  if (r.definitive === false) return { supported: r.supported, missing: r.missing };
  // Only a cache: a state directory that cannot be written must not fail `diff` or `status`
  // (a write that matters fails in saveState, before anything is written to the kernel).
  // In the record this run loaded and saves again later (read once per run, under the lock).
  owned.probe = { key, supported: r.supported, missing: r.missing };
  try {
    state.save(owned);
  } catch {
    /* probed again next time */
  }
  return { supported: r.supported, missing: r.missing };
}

/** Refuse before writing anything: compile errors, tables that hold someone else's routes. */
export function preflight(c: Computed, lenient = false): void {
  // The watcher is lenient: a profile it cannot compile is logged and skipped, the rest applied.
  const problems = lenient ? [] : [...c.desired.errors];
  const seen = new Set<number>();
  for (const u of c.desired.units) {
    if ((u.status !== 'active' && u.status !== 'down') || seen.has(u.profile.table)) continue;
    seen.add(u.profile.table);
    const foreign = c.observed.foreignRoutes.get(u.profile.table);
    if (foreign?.length) {
      problems.push(
        `profile ${u.profile.name}: table ${u.profile.table} already holds ${foreign.length} route${foreign.length > 1 ? 's' : ''} wgsplit did not make (${foreign.slice(0, 2).join('; ')}${foreign.length > 2 ? '; ...' : ''}); choose another table`,
      );
    }
  }
  if (problems.length) throw new WgsplitError('ENVIRONMENT', problems.join('\n'));
}

export interface ApplyResult extends Computed {
  written: number;
  /** what happened to the dnsmasq drop-in (when a dnsmasq port was given) */
  dnsmasq?: DnsmasqSync;
}

/**
 * Apply the plan, then read the kernel back and compare. A kernel that stored something
 * else (old kernels ignore rule selectors they do not know and install a catch-all) fails
 * closed: every rule of ours that no profile wants is removed again, and the error says so.
 */
export async function applyCommand(
  kernel: KernelPort,
  state: StateStore,
  profiles: Profile[],
  cmd: Command,
  onProgress?: (done: number, total: number) => void,
  opts: { lenient?: boolean; retried?: boolean; dnsmasq?: DnsmasqPort; memo?: CompileMemo; routes?: RouteCache } = {},
): Promise<ApplyResult> {
  const c = await computePlan(kernel, state, profiles, cmd, { memo: opts.memo, routes: opts.routes });
  // What this run writes changes the routes the cache holds (their events come later).
  if (c.plan.ops.some(isRouteOp)) opts.routes?.invalidate();
  preflight(c, opts.lenient);
  // Domain sets are filled by dnsmasq: refuse before writing anything when it cannot. Not
  // for `down`, which only removes (wg-quick's PostDown must clean up whatever happened).
  const dropin = renderDropin(c.desired.domainFeeds ?? []);
  if (dropin && opts.dnsmasq && cmd.kind !== 'down') await opts.dnsmasq.check();
  // Record ownership before writing, so a crash mid-apply still lets `down` find it.
  saveState(state, c, cmd, 'before');
  try {
    if (c.plan.ops.length) await kernel.apply(c.plan, onProgress);
  } catch (e) {
    try {
      await failClosed(kernel, c, e);
    } catch (err) {
      await rollbackRoutes(kernel, c);
      throw err;
    }
  }
  // Nothing written, nothing to read back (the no-op `up` from every wg-quick PostUp); the
  // dnsmasq drop-in is still compared (it may have been deleted by hand).
  if (!c.plan.ops.length) {
    saveState(state, c, cmd, 'after');
    const dnsmasq = opts.dnsmasq ? await opts.dnsmasq.sync(dropin, false) : undefined;
    return { ...c, written: 0, dnsmasq };
  }
  // Read back what can be stored differently than asked: rules (old kernels drop selectors
  // they do not know) and the nft table. Routes are not dumped again: every route request
  // was acknowledged, and at 100k routes a second dump doubled the apply time; the next
  // diff, status or watcher pass sees any route drift anyway.
  const after = await kernel.observe({ nft: c.observed.nft !== undefined, routes: false });
  const residue = { ops: diff(c.desired, after, c.scope, { routes: false }).ops.filter((o) => o.kind === 'rule' || isNftOp(o)) };
  if (residue.ops.length) {
    const stray = residue.ops.filter((o) => o.kind === 'rule' && o.op === 'delete');
    if (stray.length) await kernel.apply({ ops: stray });
    const unseen = await removeUnseen(kernel, c, residue.ops, after.rules);
    if (!stray.length && !unseen.length) {
      // Nothing was stored differently: rules we added are simply gone again, or the nft
      // table changed under us. Someone else is changing the same state at this moment
      // (a script, a second manager): try once more, then say so.
      if (!opts.retried) return applyCommand(kernel, state, profiles, cmd, onProgress, { ...opts, retried: true });
      throw new WgsplitError(
        'KERNEL',
        `what was just written is gone again; another program is changing wgsplit's rules or nft table at the same time:\n` +
          residue.ops.map((o) => `  ${o.op} ${opText(o)}`).join('\n'),
      );
    }
    await rollbackRoutes(kernel, c);
    throw new WgsplitError(
      'KERNEL_UNSUPPORTED',
      `the kernel stored something other than what was asked for; removed the stray rules to fail closed:\n` +
        residue.ops.map((o) => `  ${o.op} ${opText(o)}`).join('\n') +
        `\n(rule selectors such as ipproto, dport and uidrange need Linux 4.17+)`,
    );
  }
  try {
    saveState(state, c, cmd, 'after');
  } catch (e) {
    // The kernel was written: not "nothing changed" (exit 2), but a partial state (exit 3).
    throw new WgsplitError('KERNEL', `the kernel was changed, but ${(e as Error).message}`, { cause: e });
  }
  // The sets exist now: only then is dnsmasq told about them (src/dnsmasq/dnsmasq.ts).
  const dnsmasq = opts.dnsmasq ? await opts.dnsmasq.sync(dropin, cacheStale(c.desired.domainFeeds ?? [], c.plan.ops)) : undefined;
  return { ...c, written: planSize(c.plan.ops), dnsmasq };
}

/**
 * A failed apply puts the routes of the tables it touched back as they were before it (the
 * rules are handled by failClosed: stray ones go, earlier ones stay), so a refused profile or
 * an old kernel leaves the routing tables exactly as they were. Best effort: a rollback that
 * fails too leaves the original error to be reported.
 */
async function rollbackRoutes(kernel: KernelPort, c: Computed): Promise<void> {
  try {
    const groups = new Map<string, { family: Family; table: number; routes: RouteSpec[]; throws: ThrowSet[] }>();
    const group = (family: Family, table: number) => {
      const k = `${family}|${table}`;
      return groups.get(k) ?? groups.set(k, { family, table, routes: [], throws: [] }).get(k)!;
    };
    for (const r of c.observed.routes) if (c.scope.has(r.table)) group(r.family, r.table).routes.push(r);
    for (const s of c.observed.throws ?? []) if (c.scope.has(s.table)) group(s.family, s.table).throws.push(s);
    const units = [...groups.values()].map((g) => ({
      profile: { name: '(before)', table: g.table } as Profile,
      family: g.family,
      status: 'active' as const,
      mode: 'rule' as const,
      rules: [],
      routes: g.routes,
      throws: g.throws,
      notes: [],
    }));
    const now = await kernel.observe();
    const back = diff({ units, errors: [], warnings: [] }, now, c.scope).ops.filter(isRouteOp);
    if (back.length) await kernel.apply({ ops: back });
  } catch {
    /* the original error is what the user needs to see */
  }
}

/**
 * After a failed apply: a rule this run wrote that no profile wants is one the kernel
 * stored wider than asked (an old kernel drops ipproto/dport, so tcp and udp collapse into
 * one catch-all and the second add fails with EEXIST). Remove those and say so; rules that
 * were there before stay, so a half-applied edit never leaks matching traffic to main.
 */
async function failClosed(kernel: KernelPort, c: Computed, failure: unknown): Promise<never> {
  let stray: Plan['ops'] = [];
  let residue: Plan['ops'] = [];
  let visible: RuleSpec[] = [];
  try {
    const before = new Set(c.observed.rules.map(ruleKey));
    const after = await kernel.observe();
    visible = after.rules;
    residue = diff(c.desired, after, c.scope).ops;
    stray = residue.filter((o) => o.kind === 'rule' && o.op === 'delete' && !before.has(ruleKey(o.rule)));
  } catch {
    throw failure;
  }
  if (stray.length) await kernel.apply({ ops: stray });
  const unseen = await removeUnseen(kernel, c, residue, visible);
  if (!stray.length && !unseen.length) throw failure;
  throw new WgsplitError(
    'KERNEL_UNSUPPORTED',
    `${(failure as Error).message}; the kernel stored rules other than what was asked for; removed them to fail closed:\n` +
      [...stray.map((o) => `  ${opText(o)}`), ...unseen].join('\n') +
      `\n(rule selectors such as ipproto, dport and uidrange need Linux 4.17+)`,
    { cause: failure },
  );
}

/**
 * Rules this run added that do not read back at all: a kernel before 4.17 ignores
 * FRA_PROTOCOL (our tag) along with ipproto and the port ranges, so the catch-all it stored
 * is invisible to observe(). The same request as a delete is stripped the same way and
 * rule_find matches what was stored; ENOENT means nothing was. A request that would also
 * match a rule that does read back (rule_find treats unset fields, e.g. a missing src, as
 * wildcards) is not sent. Returns what was removed.
 */
async function removeUnseen(kernel: KernelPort, c: Computed, residue: Plan['ops'], visible: RuleSpec[]): Promise<string[]> {
  const asked = new Set(c.plan.ops.filter((o) => o.kind === 'rule' && o.op === 'add').map((o) => ruleKey((o as { rule: RuleSpec }).rule)));
  const removed: string[] = [];
  for (const o of residue) {
    if (o.kind !== 'rule' || o.op !== 'add' || !asked.has(ruleKey(o.rule))) continue;
    const req = o.rule;
    if (visible.some((r) => kernelSameRule(req, r))) continue;
    try {
      await kernel.apply({ ops: [{ op: 'delete', kind: 'rule', rule: o.rule, profile: o.profile, mustExist: true }] });
      removed.push(`  ${opText(o)} (stored without its selectors)`);
    } catch {
      // not stored at all
    }
  }
  return removed;
}

/**
 * The state store follows the kernel: tables we own (before writing), interfaces as last
 * seen up (after), and which interfaces `down` stopped.
 */
function saveState(state: StateStore, c: Computed, cmd: Command, when: 'before' | 'after'): void {
  // The run's one copy (computePlan read it under the lock; 'before' updated it).
  const owned = c.owned;
  const before = JSON.stringify(owned);
  owned.interfaces ??= {};
  let stopped = new Set(owned.stopped ?? []);
  if (when === 'before') {
    for (const u of c.desired.units) {
      if (u.status === 'active' || u.status === 'down') owned.tables[String(u.profile.table)] = { interface: u.profile.interface, profile: u.profile.name };
    }
    if (cmd.kind === 'up') stopped.delete(cmd.iface);
  } else {
    const wanted = new Set(c.desired.units.filter((u) => u.status === 'active' || u.status === 'down').map((u) => String(u.profile.table)));
    // Tables emptied by this run are forgotten.
    for (const t of c.scope) if (!wanted.has(String(t))) delete owned.tables[String(t)];
    for (const [name, f] of c.facts) {
      if (f.exists && f.up && (f.addresses[4].length || f.addresses[6].length)) {
        const prev = owned.interfaces[name];
        // Keep a remembered family the interface lost (admin-down drops IPv6 addresses).
        owned.interfaces[name] = {
          addresses: { 4: f.addresses[4].length ? f.addresses[4] : prev?.addresses[4] ?? [], 6: f.addresses[6].length ? f.addresses[6] : prev?.addresses[6] ?? [] },
          endpoints: f.endpoints.length ? f.endpoints : prev?.endpoints ?? [],
        };
      }
    }
    if (cmd.kind === 'down') {
      stopped.add(cmd.iface);
      delete owned.interfaces[cmd.iface];
    }
    rememberPlans(owned, c.desired, c.allFacts);
  }
  owned.stopped = [...stopped].sort();
  owned.sysctls ??= {};
  for (const o of c.plan.ops) {
    if (o.kind !== 'sysctl') continue;
    if (when === 'before' && o.op === 'replace' && !(o.path in owned.sysctls) && o.was !== undefined) owned.sysctls[o.path] = o.was;
    if (when === 'after' && o.op === 'delete') delete owned.sysctls[o.path];
  }
  // After `down` the interface is usually gone, and a re-created one starts from the default.
  if (when === 'after' && cmd.kind === 'down') for (const k of Object.keys(owned.sysctls)) if (k.split('/')[3] === cmd.iface) delete owned.sysctls[k];
  if (when === 'before' && c.desired.nft) owned.nft = true;
  if (when === 'after' && !c.desired.nft) delete owned.nft;
  // Before writing to the kernel the record is saved even when unchanged: a state directory
  // that cannot be written (read-only /run, a bad WGSPLIT_STATE_DIR) must fail here, while
  // the kernel is still untouched, not after the writes.
  if (JSON.stringify(owned) !== before || (when === 'before' && c.plan.ops.length)) state.save(owned as OwnedTables);
}
