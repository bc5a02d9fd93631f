/**
 * `wgsplit watch`: keep the kernel converged. Reconciles at start, then on kernel events
 * (links, addresses, routes, rules; both families), on profile edits, on SIGHUP and on a
 * slow periodic re-sync, all coalesced by the Scheduler. Every run is the same idempotent
 * reconcile `wgsplit apply` does, so a restart (even after SIGKILL) adopts the kernel's
 * state with zero writes when nothing changed.
 */
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import type { Desired } from '../compile/desired.js';
import { ruleKey } from '../model/rule.js';
import { nftDigest } from '../model/nft.js';
import { formatProblem, WgsplitError } from '../errors.js';
import { classify } from '../kernel/events.js';
import { IpMonitor, NftMonitor } from '../kernel/monitor.js';
import { classifyNft } from '../kernel/nftEvents.js';
import { findNft } from '../kernel/nftPath.js';
import { wgEndpoints } from '../kernel/wg.js';
import type { KernelPort } from '../kernel/port.js';
import { loadProfileDir } from '../profile/load.js';
import type { Profile } from '../profile/types.js';
import { applyCommand, computePlan } from '../reconcile/reconcile.js';
import { RouteCache } from '../reconcile/routeCache.js';
import { CompileMemo, unitFingerprint } from '../reconcile/planCache.js';
import { opSize } from '../plan/plan.js';
import { renderMetrics, type WatcherStats } from '../metrics/prometheus.js';
import { unitStats, type UnitStats } from '../metrics/stats.js';
import { MetricsTextfile } from './metricsFile.js';
import { counterKey } from '../compile/counters.js';
import { acquireLock } from '../state/lock.js';
import type { StateStore } from '../state/owned.js';
import type { DnsmasqPort } from '../dnsmasq/dnsmasq.js';
import { suspects } from './culprit.js';
import { CgroupWatch } from './cgroupWatch.js';
import { cgroupPathsOf } from '../compile/apps.js';
import { cgroup2, ownCgroupBase } from '../kernel/cgroup.js';
import type { Logger } from './log.js';
import { DEFAULT_SCHEDULER, Scheduler, type RunResult, type SchedulerOptions, type Trigger } from './scheduler.js';

export interface WatchOptions {
  configDir: string;
  log: Logger;
  kernel: KernelPort;
  state: StateStore;
  lockPath: string;
  cleanupOnExit: boolean;
  resyncMs: number;
  scheduler?: SchedulerOptions;
  /** how often to look at WireGuard endpoints of UDP profiles' interfaces (0: never) */
  endpointPollMs?: number;
  /** the dnsmasq drop-in and reload (include_domains / exclude_domains) */
  dnsmasq?: DnsmasqPort;
  /** write the metrics here (node_exporter textfile), after each reconcile and every metricsIntervalMs */
  metricsTextfile?: string;
  metricsIntervalMs?: number;
}

/**
 * WireGuard endpoints change with no rtnetlink event (`wg set ... endpoint`, roaming), and a
 * profile that can match UDP needs its endpoint throw to follow, or the tunnel's own packets
 * loop into the tunnel. So those interfaces (only those: TCP-only profiles cost nothing) are
 * polled with `wg show IFACE endpoints`.
 */
const ENDPOINT_POLL_MS = 1000;

/**
 * What a run wanted, as text that changes when it does: per unit its rules and the
 * order-independent fingerprint of its routes (the plan cache's), the nft table's content
 * hash, the sysctls. At 10k routes, JSON of every route (and a hash of that) took ~30 ms of
 * each repair.
 */
function desiredKey(d: Desired): string {
  const units = d.units.map((x) => {
    const f = unitFingerprint(x);
    // Sorted: a unit from the plan cache holds its rules in the kernel's order.
    return `${x.profile.name}|${x.family}|${x.status}|${x.rules.map(ruleKey).sort().join(';')}|${f.n}:${f.sum}:${f.xor}`;
  });
  return `${units.join('\n')}\n${nftDigest(d.nft)}\n${JSON.stringify(d.sysctls ?? [])}`;
}

export class Watcher {
  private profiles: Profile[] = [];
  private ourTables = new Set<number>();
  private readonly scheduler: Scheduler;
  private readonly monitor: IpMonitor;
  private fsWatcher?: FSWatcher;
  private resyncTimer?: NodeJS.Timeout;
  private reloadTimer?: NodeJS.Timeout;
  private stopping = false;
  private overflowLogged = 0;
  private endpointTimer?: NodeJS.Timeout;
  private readonly endpointsSeen = new Map<string, string>();
  private lastDesired?: string;
  /** what the watcher counts about itself, for the metrics */
  readonly stats: WatcherStats = { reconciles: 0, repairs: 0, errors: 0, eventSourceRestarts: { ip: 0, nft: 0 } };
  /** per profile and family as of the last reconcile (traffic counters are read at each write) */
  private lastUnits: UnitStats[] = [];
  private readonly textfile?: MetricsTextfile;
  /** `nft monitor`, running while wgsplit's table is wanted or present */
  private nftMonitor?: NftMonitor;
  /** sets whose elements someone else fills (their element events are not drift) */
  private externalSets = new Set<string>();
  // cgroups of `apps` profiles: a created or re-created one needs its rule loaded again
  private readonly cgroups = new CgroupWatch(
    (why) => this.scheduler.trigger(why, false),
    (msg, fields) => this.o.log.warn(msg, fields),
  );
  /** compile results of the loaded profiles (a reload loads new Profile objects) */
  private readonly memo = new CompileMemo();
  /** the last route dump, reused while only rule (or nft) events arrive (reconcile/routeCache.ts) */
  private readonly routes = new RouteCache();

  constructor(private readonly o: WatchOptions) {
    this.scheduler = new Scheduler((t) => this.reconcile(t), o.scheduler ?? DEFAULT_SCHEDULER, undefined, (n, ms, t) => this.backoff(n, ms, t));
    this.monitor = new IpMonitor({
      line: (l) => this.onLine(l),
      restarted: (attempt, reason) => {
        this.stats.eventSourceRestarts.ip++;
        this.routes.invalidate();
        this.o.log.warn('event source restarted; re-syncing', { reason, attempt });
        this.scheduler.trigger('event source restarted', false);
      },
    });
    if (o.metricsTextfile) {
      this.textfile = new MetricsTextfile(o.metricsTextfile, o.metricsIntervalMs ?? 10_000, () => this.metricsText(), (e) =>
        this.o.log.warn('cannot write the metrics textfile', { file: o.metricsTextfile, error: e.message }),
      );
    }
  }

  /** The metrics as Prometheus text: the last reconcile's units with fresh traffic counters. */
  async metricsText(): Promise<string> {
    const wants = this.lastUnits.some((u) => u.counters);
    const counters = wants ? await this.o.kernel.readCounters?.() : undefined;
    const units = this.lastUnits.map((u) => (u.counters && counters ? { ...u, counters: { out: counters.get(counterKey(u.profile, u.family, 'out')), in: counters.get(counterKey(u.profile, u.family, 'in')) } } : u));
    return renderMetrics(units, this.stats);
  }

  async start(): Promise<void> {
    this.reload('start');
    // Events first, then the initial reconcile: nothing that happens in between is missed.
    this.monitor.start();
    this.scheduler.trigger('start', false);
    this.fsWatcher = chokidarWatch(this.o.configDir, { ignoreInitial: true, depth: 0 });
    this.fsWatcher.on('all', (_ev, path) => {
      if (!String(path).endsWith('.toml')) return;
      // Editors write in several steps; settle for a moment before re-reading.
      clearTimeout(this.reloadTimer);
      this.reloadTimer = setTimeout(() => {
        if (this.reload(`profile ${_ev} ${path}`)) this.scheduler.trigger(`profile ${_ev}: ${path}`, false);
      }, 50);
    });
    this.fsWatcher.on('error', (e) => this.o.log.warn('config directory watch error', { error: String(e) }));
    if (this.o.resyncMs > 0) {
      this.resyncTimer = setInterval(() => {
        // A re-sync trusts nothing remembered: it dumps everything again.
        this.routes.invalidate();
        this.scheduler.trigger('periodic re-sync', false);
      }, this.o.resyncMs);
    }
    this.scheduleEndpointPoll();
  }

  private scheduleEndpointPoll(): void {
    const ms = this.o.endpointPollMs ?? ENDPOINT_POLL_MS;
    if (ms <= 0 || this.stopping) return;
    // Only profiles that can match UDP need it; without them the daemon stays asleep (a
    // profile reload calls this again).
    if (!this.profiles.some((p) => !p.proxy && (p.protocols === undefined || p.protocols.includes('udp')))) {
      this.endpointTimer = undefined;
      return;
    }
    if (this.endpointTimer) clearTimeout(this.endpointTimer);
    this.endpointTimer = setTimeout(() => void this.pollEndpoints().finally(() => this.scheduleEndpointPoll()), ms);
  }

  private async pollEndpoints(): Promise<void> {
    const ifaces = new Set(this.profiles.filter((p) => !p.proxy && (p.protocols === undefined || p.protocols.includes('udp'))).map((p) => p.interface));
    for (const name of this.endpointsSeen.keys()) if (!ifaces.has(name)) this.endpointsSeen.delete(name);
    for (const name of ifaces) {
      const { endpoints } = await wgEndpoints(name);
      const key = endpoints.map((e) => e.address).sort().join(',');
      const before = this.endpointsSeen.get(name);
      this.endpointsSeen.set(name, key);
      // First sight too: the endpoint may have moved between the last reconcile and now
      // (a profile added a moment before `wg set`); a reconcile that finds nothing writes nothing.
      if (before !== key && !this.stopping) this.scheduler.trigger(before === undefined ? `endpoints of ${name} first seen: ${key || '(none)'}` : `endpoints of ${name} changed: ${key || '(none)'}`, before !== undefined);
    }
  }

  /** SIGHUP: re-read profiles and re-sync. */
  hangup(): void {
    this.reload('SIGHUP');
    this.scheduler.trigger('SIGHUP', false);
  }

  /** Re-read the profiles; on problems keep the last good set. Returns whether it changed. */
  private reload(why: string): boolean {
    this.routes.invalidate();
    try {
      const { profiles } = loadProfileDir(this.o.configDir);
      this.profiles = profiles;
      this.ourTables = new Set(profiles.map((p) => p.table));
      for (const t of Object.keys(this.o.state.load().tables)) this.ourTables.add(Number(t));
      this.o.log.info('profiles loaded', { why, profiles: profiles.map((p) => p.name).join(',') || '(none)' });
      const cgroupPaths = cgroupPathsOf(profiles, ownCgroupBase());
      this.cgroups.set(cgroupPaths.length ? cgroup2().mount : undefined, cgroupPaths);
      if (why !== 'start') this.scheduleEndpointPoll(); // a UDP profile may have come or gone
      return true;
    } catch (e) {
      const err = e as WgsplitError;
      if (err.problems?.length) for (const p of err.problems) this.o.log.error(`profile problem, keeping the last good profiles: ${formatProblem(p)}`);
      else this.o.log.error('cannot load profiles, keeping the last good ones', { error: err.message });
      return false;
    }
  }

  private onLine(line: string): void {
    const ev = classify(line, this.ourTables);
    if (ev.kind === 'overflow') {
      const now = Date.now();
      if (now - this.overflowLogged > 10_000) this.o.log.warn('kernel event burst overflowed the event buffer; re-syncing from a full dump');
      this.overflowLogged = now;
      this.routes.invalidate();
      this.scheduler.trigger('event overflow', true);
      return;
    }
    if (!ev.relevant) return;
    if (ev.kind !== 'rule') this.routes.invalidate();
    this.o.log.debug('event', { event: ev.summary });
    this.scheduler.trigger(ev.summary, true);
  }

  private async reconcile(triggers: Trigger[]): Promise<RunResult> {
    if (this.stopping) return { wrote: 0 };
    const started = performance.now();
    const lock = await acquireLock(this.o.lockPath);
    try {
      const r = await applyCommand(this.o.kernel, this.o.state, this.profiles, { kind: 'apply' }, undefined, { lenient: true, dnsmasq: this.o.dnsmasq, memo: this.memo, routes: this.routes });
      for (const t of Object.keys(this.o.state.load().tables)) this.ourTables.add(Number(t));
      const reasons = [...new Set(triggers.map((t) => t.reason))];
      const fields = {
        why: reasons.slice(0, 3).join('; ') + (reasons.length > 3 ? `; +${reasons.length - 3} more` : ''),
        took_ms: +(performance.now() - Math.min(...triggers.map((t) => t.at))).toFixed(1),
        apply_ms: +(performance.now() - started).toFixed(1),
      };
      for (const e of r.desired.errors) this.o.log.error(e);
      if (r.dnsmasq?.reloaded) this.o.log.info(r.dnsmasq.reloaded === 'config' ? 'dnsmasq drop-in changed, reloaded dnsmasq' : 'domain sets created empty, reloaded dnsmasq to drop its cache', { conf: r.dnsmasq.conf });
      if (r.written) {
        const counts = new Map<string, number>();
        for (const o of r.plan.ops) {
          const k = `${o.op === 'add' ? '+' : o.op === 'delete' ? '-' : '~'}${o.kind === 'throws' ? 'route' : o.kind}`;
          counts.set(k, (counts.get(k) ?? 0) + opSize(o));
        }
        const profiles = [...new Set(r.plan.ops.map((o) => o.profile ?? '(none)'))].join(',');
        this.o.log.info('converged', { changes: [...counts].map(([k, n]) => `${k.slice(0, 1)}${n} ${k.slice(1)}${n > 1 ? 's' : ''}`).join(', '), profiles, ...fields });
      } else this.o.log.debug('in sync', fields);
      // Only writes that restore the same desired state as the last run undo someone else's
      // change and count as repairs for the rate limit; writes after the desired state itself
      // changed (an address, a link, a docker bridge, an endpoint) adapt to the machine.
      const desired = desiredKey(r.desired);
      const changed = desired !== this.lastDesired;
      this.lastDesired = desired;
      this.externalSets = new Set((r.desired.nft?.sets ?? []).filter((x) => x.external).map((x) => x.name));
      this.followNft(!!r.desired.nft || !!r.observed.nft?.present);
      // Converged: nothing differs any more (the apply read its rules and nft table back).
      this.lastUnits = unitStats(r.desired.units, [], undefined);
      this.finished(started, r.written > 0 && !changed);
      return { wrote: r.written, repair: !changed };
    } catch (e) {
      const err = e as WgsplitError;
      this.o.log.error('reconcile failed', { code: err.code ?? 'INTERNAL', error: err.message });
      this.routes.invalidate();
      this.stats.errors++;
      // What is left differing, for the drift metric (read-only; under the same lock; a
      // failed reconcile is rare, so this costs nothing while all is well).
      try {
        const c = await computePlan(this.o.kernel, this.o.state, this.profiles, { kind: 'apply' });
        this.lastUnits = unitStats(c.desired.units, c.plan.ops, undefined);
      } catch {
        /* keep the last known units */
      }
      this.finished(started, false);
      throw e;
    } finally {
      lock.release();
    }
  }

  private finished(started: number, repair: boolean): void {
    this.stats.reconciles++;
    if (repair) this.stats.repairs++;
    this.stats.lastReconcileAt = Date.now() / 1000;
    this.stats.lastReconcileSeconds = (performance.now() - started) / 1000;
    this.textfile?.request();
  }

  private backoff(repairs: number, backoffMs: number, triggers: Trigger[]): void {
    const who = suspects();
    const culprit = who.length
      ? who.map((s) => `${s.name} is running: ${s.fix}`).join('; ')
      : 'no known network manager found; look for a script or service that deletes routing rules or flushes tables (e.g. `ip rule flush`, `nft flush ruleset`)';
    this.o.log.warn(`another program keeps undoing wgsplit's state (${repairs} repairs in ${DEFAULT_SCHEDULER.windowMs / 1000} s); repairs are rate-limited to one per ${backoffMs / 1000} s`, {
      last: triggers[triggers.length - 1]?.reason,
      likely: culprit,
    });
  }

  /**
   * The nft event source follows the table: started when a reconcile wants or finds it,
   * stopped when neither (a rule-mode-only setup runs no `nft monitor` at all).
   */
  private followNft(wanted: boolean): void {
    if (this.stopping) return;
    if (wanted && !this.nftMonitor) {
      const nft = findNft();
      if (!nft) return;
      this.nftMonitor = new NftMonitor(
        {
          line: (l) => this.onNftLine(l),
          restarted: (attempt, reason) => {
            this.stats.eventSourceRestarts.nft++;
            this.o.log.warn('nft event source restarted; re-syncing', { reason, attempt });
            this.scheduler.trigger('nft event source restarted', false);
          },
        },
        nft,
      );
      this.nftMonitor.start();
      // Events may have been missed before the monitor listened: look once more.
      this.scheduler.trigger('nft event source started', false);
    } else if (!wanted && this.nftMonitor) {
      this.nftMonitor.stop();
      this.nftMonitor = undefined;
    }
  }

  /** The nft monitor child's pid (tests end it to prove supervision). */
  get nftMonitorPid(): number | undefined {
    return this.nftMonitor?.pid;
  }

  private onNftLine(line: string): void {
    const ev = classifyNft(line, this.externalSets);
    if (!ev.relevant) return;
    this.o.log.debug('event', { event: ev.summary });
    this.scheduler.trigger(ev.summary, true);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.monitor.stop();
    this.nftMonitor?.stop();
    clearInterval(this.resyncTimer);
    clearTimeout(this.reloadTimer);
    clearTimeout(this.endpointTimer);
    await this.textfile?.stop();
    this.cgroups.close();
    await this.fsWatcher?.close();
    if (this.o.cleanupOnExit) {
      const lock = await acquireLock(this.o.lockPath);
      try {
        const r = await applyCommand(this.o.kernel, this.o.state, [], { kind: 'apply' }, undefined, { lenient: true, dnsmasq: this.o.dnsmasq });
        this.o.log.info('cleaned up on exit', { removed: r.written });
      } finally {
        lock.release();
      }
    }
    this.o.kernel.close();
  }
}
