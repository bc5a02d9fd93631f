/**
 * Benchmark A (issue 3): `wgsplit watch` in the test sandbox with a real wireguard-go
 * interface. Event-to-converged latency for a deleted rule, an interface flap, a new
 * docker-like bridge on a public range and its removal, timed by the bench's own
 * `ip monitor` (see monitor.ts); idle CPU and RSS of the daemon with the example profile,
 * with the example profile widened to UDP (the daemon then also polls the WireGuard
 * endpoints) and with 10k excluded prefixes; a deleted rule again with those 10k.
 *
 * NOTE: the daemon rate-limits repairs (daemon/scheduler.ts: more than 8 repairs within
 * 10 s and it backs off for 1 s, doubling) so two managers never fight forever. The bench
 * paces its disturbances to stay under that limit (the Pacer below), otherwise it would be
 * measuring the back-off, not the reaction; the pacing is what makes this benchmark long.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { linkEvent, Monitor, type KEvent } from './monitor.js';
import { childEnv, ip, ipBatch, log, sleep, spawnTracked, startTime, topologyUp, type Tracked } from './ns.js';
import { randomSlash24s } from './prefixes.js';
import { clockTicks, cpuTicks, sample } from './procstat.js';
import { fmtInt, fmtMiB, fmtMs, max, percentile, table } from './stats.js';
import { configDir, exampleProfile, MAIN, tempDir, wgsplit } from './wgsplit.js';

const PREFIX = 'wgbn';
const IFACE = 'wgbn0';
const NS = `${PREFIX}-host`;
const TABLE = 10086;
const WG_ADDR = '10.253.0.2';

export interface WatcherOptions {
  quick: boolean;
}

interface Params {
  /** idle windows start this long after the daemon was started */
  settleMs: number;
  reps: number;
  reps10k: number;
  idleMs: number;
}

/** The scheduler's limits (daemon/scheduler.ts DEFAULT_SCHEDULER), with a safety margin. */
class Pacer {
  private done: number[] = [];
  constructor(
    private readonly limit = 8,
    private readonly windowMs = 10_000,
    private readonly marginMs = 300,
    private readonly gapMs = 100,
  ) {}

  /** A repair finished at wall-clock time t (ms). */
  record(t: number): void {
    this.done.push(t);
    this.done.sort((a, b) => a - b);
  }

  /**
   * Wait until one more repair cannot push the daemon over its limit, and until the daemon
   * has finished its last run (it reads everything back after writing: a disturbance during
   * that read-back would be measured as part of the previous repair).
   */
  async turn(pid: number): Promise<void> {
    const n = this.done.length;
    let at = n ? this.done[n - 1] + this.gapMs : 0;
    if (n >= this.limit) at = Math.max(at, this.done[n - this.limit] + this.windowMs + this.marginMs);
    const wait = at - Date.now();
    if (wait > 0) await sleep(wait);
    await quiet(pid);
  }
}

/** Until the process's CPU time stops growing (3 samples 30 ms apart), at most 5 s. */
async function quiet(pid: number): Promise<void> {
  let last = -1;
  let same = 0;
  const deadline = Date.now() + 5000;
  while (same < 3 && Date.now() < deadline) {
    let t: number;
    try {
      t = cpuTicks(pid);
    } catch {
      return; // gone
    }
    same = t === last ? same + 1 : 0;
    last = t;
    if (same < 3) await sleep(30);
  }
}

class Daemon {
  readonly lines: string[] = [];
  readonly spawnedAt = Date.now();
  private constructor(readonly t: Tracked) {
    createInterface({ input: t.proc.stderr! }).on('line', (l) => this.lines.push(l));
  }

  static start(config: string, stateDir: string): Daemon {
    const t = spawnTracked('wgsplit watch', 'ip', ['netns', 'exec', NS, process.execPath, MAIN, '--config', config, 'watch', '--resync', '0', '--log-level', process.env.WGBENCH_DAEMON_LOG_LEVEL ?? 'warn'], {
      env: childEnv({ WGSPLIT_STATE_DIR: stateDir }),
      extendEnv: false,
      stdout: 'ignore',
    });
    return new Daemon(t);
  }

  get pid(): number {
    return this.t.pid;
  }

  alive(): boolean {
    return startTime(this.pid) === this.t.start;
  }

  /** The daemon's "keeps undoing" warnings: each one means the rate limit kicked in. */
  backoffWarnings(): number {
    return this.lines.filter((l) => /keeps undoing/.test(l)).length;
  }

  async stop(): Promise<void> {
    await this.t.stop();
    // WGBENCH_KEEP_LOGS=DIR keeps the daemon's log lines for a post-mortem.
    const keep = process.env.WGBENCH_KEEP_LOGS;
    if (keep) writeFileSync(join(keep, `daemon-${this.pid}.log`), this.lines.join('\n') + '\n');
  }
}

/** Poll `wgsplit diff` until it says in sync (exit 0). Returns ms waited. */
async function waitInSync(config: string, stateDir: string, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const r = await wgsplit(NS, config, stateDir, ['diff']);
    if (r.exitCode === 0) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`not in sync after ${timeoutMs} ms: ${r.stdout.split('\n').slice(0, 5).join(' / ')} ${r.stderr}`);
    await sleep(100);
  }
}

interface Rep {
  /** disturbance event -> converged event, ms */
  lat: number;
  /** wall-clock time of the converged event */
  conv: number;
  /** a second latency for the same rep (flap: from the up event) */
  lat2?: number;
}

interface CaseResult {
  name: string;
  /** what `lat2` measures, when the case has a second latency */
  label2?: string;
  profile: string;
  lats: number[];
  lats2: number[];
  failed: number;
  goal?: number;
  /** the goal bounds the slowest rep (issue 14: 30 repairs at 10k), not p99 */
  goalOfMax?: boolean;
}

async function repeat(
  name: string,
  profile: string,
  reps: number,
  d: Daemon,
  pacer: Pacer,
  once: (i: number) => Promise<Rep>,
  recover: () => Promise<void>,
  goal?: number,
  label2?: string,
): Promise<CaseResult> {
  const res: CaseResult = { name, label2, profile, lats: [], lats2: [], failed: 0, goal };
  for (let i = 0; i < reps; i++) {
    await pacer.turn(d.pid);
    try {
      const r = await once(i);
      res.lats.push(r.lat);
      if (process.env.WGBENCH_WATCHER_10K_ONLY === '1') log(`A: ${name}: rep ${i + 1}: ${fmtMs(r.lat)}`);
      if (r.lat2 !== undefined) res.lats2.push(r.lat2);
      pacer.record(r.conv);
    } catch (e) {
      res.failed++;
      log(`A: ${name}: rep ${i + 1} failed: ${(e as Error).message}`);
      pacer.record(Date.now());
      await recover();
    }
    if ((i + 1) % 10 === 0 || i + 1 === reps) log(`A: ${name}: ${i + 1}/${reps} (p50 so far ${fmtMs(percentile(res.lats, 50))})`);
  }
  return res;
}

const OUR_RULE = /^10086: from 0\.0\.0\.0 iif lo ipproto tcp lookup 10086\b/;

function ruleDeleted(mon: Monitor) {
  return async (): Promise<Rep> => {
    mon.forget();
    const m = mon.mark();
    await ip(NS, 'rule', 'del', 'pref', String(TABLE), 'from', '0.0.0.0/32', 'iif', 'lo', 'ipproto', 'tcp', 'lookup', String(TABLE));
    const del = await mon.waitFor((e) => e.obj === 'RULE' && e.deleted && OUR_RULE.test(e.body), { from: m, timeoutMs: 2000 });
    const add = await mon.waitFor((e) => e.obj === 'RULE' && !e.deleted && OUR_RULE.test(e.body), { from: m, timeoutMs: 5000 });
    return { lat: add.t - del.t, conv: add.t };
  };
}

const OUR_DEFAULT = new RegExp(`^default dev ${IFACE} table ${TABLE} .*src ${WG_ADDR.replace(/\./g, '\\.')}\\b`);

function linkFlap(mon: Monitor) {
  return async (): Promise<Rep> => {
    mon.forget();
    const m = mon.mark();
    await ipBatch(NS, [`link set ${IFACE} down`, `link set ${IFACE} up`]);
    const isLink = (up: boolean) => (e: KEvent) => {
      const l = linkEvent(e);
      return !!l && l.name === IFACE && l.up === up;
    };
    const down = await mon.waitFor(isLink(false), { from: m, timeoutMs: 2000 });
    const up = await mon.waitFor((e) => isLink(true)(e) && e.t >= down.t, { from: m, timeoutMs: 2000 });
    const conv = await mon.waitFor((e) => e.obj === 'ROUTE' && !e.deleted && OUR_DEFAULT.test(e.body) && e.t >= down.t, { from: m, timeoutMs: 5000 });
    return { lat: conv.t - down.t, lat2: conv.t - up.t, conv: conv.t };
  };
}

interface Bridge {
  name: string;
  net: string;
}

/**
 * Even third octets only: wgsplit aggregates its exclusions, so bridges on 44.100.0.0/24 and
 * 44.100.1.0/24 at once become one `throw 44.100.0.0/23`, and the /24's throw never appears.
 */
function bridgeFor(i: number): Bridge {
  return { name: `wgbnbr${i}`, net: `44.${100 + (i >> 7)}.${(i & 127) * 2}` };
}

/**
 * One rep: a bridge with an address on a public /24 appears (connected route -> its throw),
 * then is deleted again (its first link event -> its throw gone). IPv4 routes through a
 * deleted link vanish without RTM_DELROUTE (DESIGN.md), so the link event is the removal's
 * disturbance.
 */
function bridgeAddedRemoved(mon: Monitor, quietPid: number) {
  return async (i: number): Promise<Rep> => {
    mon.forget();
    const b = bridgeFor(i);
    let m = mon.mark();
    await ipBatch(NS, [`link add ${b.name} type bridge`, `addr add ${b.net}.1/24 dev ${b.name}`, `link set ${b.name} up`]);
    const connected = await mon.waitFor((e) => e.obj === 'ROUTE' && !e.deleted && e.body.startsWith(`${b.net}.0/24 dev ${b.name} proto kernel scope link`), { from: m, timeoutMs: 2000 });
    const thr = await mon.waitFor((e) => e.obj === 'ROUTE' && !e.deleted && e.body.startsWith(`throw ${b.net}.0/24 table ${TABLE}`), { from: m, timeoutMs: 5000 });
    await quiet(quietPid);
    m = mon.mark();
    await ip(NS, 'link', 'del', b.name);
    const gone = await mon.waitFor((e) => linkEvent(e)?.name === b.name, { from: m, timeoutMs: 2000 });
    const unthrow = await mon.waitFor((e) => e.obj === 'ROUTE' && e.deleted && e.body.startsWith(`throw ${b.net}.0/24 table ${TABLE}`), { from: m, timeoutMs: 5000 });
    return { lat: thr.t - connected.t, lat2: unthrow.t - gone.t, conv: unthrow.t };
  };
}

interface Idle {
  profile: string;
  installed: string;
  windowMs: number;
  cpuMs: number;
  reapedMs: number;
  childCpu: string;
  rssKiB: number;
  childRss: string;
  events: number;
  syncMs: number;
}

async function installedCounts(): Promise<string> {
  const rules = (await ip(NS, '-4', 'rule', 'show')).split('\n').filter((l) => /proto (87|wgsplit)\b/.test(l)).length + (await ip(NS, '-6', 'rule', 'show')).split('\n').filter((l) => /proto (87|wgsplit)\b/.test(l)).length;
  const routes = (await ip(NS, '-4', 'route', 'show', 'table', String(TABLE))).split('\n').filter(Boolean).length + (await ip(NS, '-6', 'route', 'show', 'table', String(TABLE))).split('\n').filter(Boolean).length;
  return `${fmtInt(rules)} rules, ${fmtInt(routes)} routes`;
}

async function measureIdle(d: Daemon, mon: Monitor, profile: string, windowMs: number, syncMs: number, settleMs: number): Promise<Idle> {
  const hz = await clockTicks();
  // NOTE: a freshly started node process still spends ~90 ms of CPU in the first ~15 s
  // (V8 compiling and its memory reducer's garbage collections), once; measured here: the
  // daemon's CPU ticks stop growing ~15 s after start. The window starts after that.
  await sleep(Math.max(1000, d.spawnedAt + settleMs - Date.now()));
  mon.forget();
  const m = mon.mark();
  const a = sample(d.pid);
  const t0 = performance.now();
  await sleep(windowMs);
  const b = sample(d.pid);
  const took = performance.now() - t0;
  const kids = b.children.map((c) => {
    const before = a.children.find((x) => x.pid === c.pid);
    const ms = before ? ((c.ticks - before.ticks) * 1000) / hz : NaN;
    return { comm: c.comm, cpu: `${c.comm}: ${fmtMs(ms)}`, rss: `${c.comm}: ${fmtMiB(c.rssKiB)}` };
  });
  return {
    profile,
    installed: await installedCounts(),
    windowMs: took,
    cpuMs: ((b.ticks - a.ticks) * 1000) / hz,
    reapedMs: ((b.reapedTicks - a.reapedTicks) * 1000) / hz,
    childCpu: kids.map((k) => k.cpu).join(', ') || 'none',
    rssKiB: b.rssKiB,
    childRss: kids.map((k) => k.rss).join(', ') || 'none',
    events: mon.events.length - m,
    syncMs,
  };
}

function latencyRow(c: CaseResult, lats: number[], label = c.name): string[] {
  const p99 = percentile(lats, 99);
  const worst = c.goalOfMax ? max(lats) : p99;
  const goal = c.goal === undefined ? '-' : `${c.goalOfMax ? `max of ${lats.length}` : 'p99'} < ${c.goal} ms: ${worst < c.goal ? 'met' : '**not met**'}`;
  return [label, c.profile, String(lats.length) + (c.failed ? ` (+${c.failed} failed)` : ''), fmtMs(percentile(lats, 50)), fmtMs(p99), fmtMs(max(lats)), goal];
}

/** ERROR/WARN lines of the daemon other than the rate-limit warning, deduplicated (timestamps dropped). */
function oddLines(lines: string[]): string[] {
  const seen = new Map<string, number>();
  for (const l of lines) {
    if (/keeps undoing/.test(l) || !/\b(ERROR|WARN)\b/.test(l)) continue;
    const key = l.replace(/^\S+\s+/, '');
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  return [...seen].map(([k, n]) => `${n} x \`${k.slice(0, 600)}\``);
}

export async function watcherBench(o: WatcherOptions): Promise<string> {
  const p: Params = o.quick ? { settleMs: 5000, reps: 10, reps10k: 5, idleMs: 3000 } : { settleMs: 20_000, reps: 100, reps10k: 30, idleMs: 10_000 };
  log(`A: sandbox ${PREFIX} with wireguard-go ${IFACE}`);
  await topologyUp(PREFIX, IFACE);
  const mon = new Monitor(NS);
  await mon.start();

  // WGBENCH_WATCHER_10K_ONLY=1 (for profiling the daemon): only the 10k case; the report then
  // lacks the other rows.
  const only10k = process.env.WGBENCH_WATCHER_10K_ONLY === '1';
  const cases: CaseResult[] = [];
  const idle: Idle[] = [];
  let [synced1, alive1, backoff1, odd1, odd3] = ['skipped', true, 0, [] as string[], [] as string[]] as [string, boolean, number, string[], string[]];
  let d: Daemon;
  if (!only10k) {
    // --- the example profile ---
    const small = configDir('watch', { 'tcp.toml': exampleProfile(IFACE) });
    const state = tempDir('watch-state');
    d = Daemon.start(small, state);
    const sync1 = await waitInSync(small, state, 15_000);
    log(`A: daemon pid ${d.pid} in sync after ~${sync1} ms; idle ${p.idleMs / 1000} s`);
    idle.push(await measureIdle(d, mon, 'example (tcp-internet.toml)', p.idleMs, sync1, p.settleMs));

    const pacer = new Pacer();
    const recover = async () => {
      await waitInSync(small, state, 10_000).catch((e) => log(`A: not recovered: ${(e as Error).message}`));
    };
    cases.push(await repeat('one of our rules deleted (`ip rule del`)', 'example', p.reps, d, pacer, ruleDeleted(mon), recover, 100));
    cases.push(await repeat(`${IFACE} flap (\`ip link set down; up\`), from the down event`, 'example', p.reps, d, pacer, linkFlap(mon), recover, 100, `${IFACE} flap, from the up event`));
    // NOTE: the bridges stay until the end of the case: removing each between reps would be a
    // second repair per rep and, under the daemon's rate limit, double the case's length.
    // A bridge coming or going changes what is wanted; the daemon does not count the write
    // that follows as a repair (since 19b11b4), so these cases are not paced to its limit.
    // Should that change, the rate-limit warnings below (and the latencies) will show it.
    cases.push(
      await repeat(
        'new docker-like bridge on a public 44.x.y.0/24 (connected route -> its throw)',
        'example',
        p.reps,
        d,
        new Pacer(Infinity),
        bridgeAddedRemoved(mon, d.pid),
        recover,
        undefined,
        'that bridge deleted again (`ip link del`: its first link event -> its throw gone)',
      ),
    );
    synced1 = await waitInSync(small, state, 10_000).then(
      () => 'in sync',
      (e) => `**not in sync**: ${(e as Error).message}`,
    );
    alive1 = d.alive();
    backoff1 = d.backoffWarnings();
    odd1 = oddLines(d.lines);
    await d.stop();

    // --- a profile that can match UDP: the daemon also watches the WireGuard endpoints ---
    const udp = configDir('watchudp', { 'tcp.toml': exampleProfile(IFACE).replace(/^protocols\s*=.*$/m, 'protocols = ["tcp", "udp"]') });
    const state3 = tempDir('watchudp-state');
    d = Daemon.start(udp, state3);
    const sync3 = await waitInSync(udp, state3, 15_000);
    log(`A: daemon with a TCP+UDP profile (pid ${d.pid}) in sync after ~${sync3} ms; idle ${p.idleMs / 1000} s`);
    idle.push(await measureIdle(d, mon, 'example with `protocols = ["tcp", "udp"]`', p.idleMs, sync3, p.settleMs));
    odd3 = oddLines(d.lines);
    await d.stop();
  }

  // --- 10k excluded prefixes ---
  const list = randomSlash24s(10_000, 3);
  const big = configDir('watch10k', { 'tcp.toml': exampleProfile(IFACE, ['exclude_files = ["list.txt"]']), 'list.txt': list.join('\n') + '\n' });
  const state2 = tempDir('watch10k-state');
  d = Daemon.start(big, state2);
  const sync2 = await waitInSync(big, state2, 60_000);
  log(`A: daemon with 10k excluded prefixes (pid ${d.pid}) in sync after ~${sync2} ms; idle ${p.idleMs / 1000} s`);
  idle.push(await measureIdle(d, mon, '10k excluded prefixes (exclude_files)', p.idleMs, sync2, p.settleMs));
  const pacer2 = new Pacer();
  const recover2 = async () => {
    await waitInSync(big, state2, 10_000).catch((e) => log(`A: not recovered: ${(e as Error).message}`));
  };
  cases.push({ ...(await repeat('one of our rules deleted (`ip rule del`)', '10k excluded', p.reps10k, d, pacer2, ruleDeleted(mon), recover2, 100)), goalOfMax: true });
  const synced2 = await waitInSync(big, state2, 10_000).then(
    () => 'in sync',
    (e) => `**not in sync**: ${(e as Error).message}`,
  );
  const alive2 = d.alive();
  const backoff2 = d.backoffWarnings();
  const odd2 = oddLines(d.lines);
  await d.stop();

  await mon.stop();

  // --- report ---
  const rows: string[][] = [];
  for (const c of cases) {
    rows.push(latencyRow(c, c.lats));
    if (c.lats2.length) rows.push(latencyRow({ ...c, goal: undefined }, c.lats2, c.label2 ?? '(second latency)'));
  }
  const idleRows = idle.map((i) => [
    i.profile,
    i.installed,
    `~${(i.syncMs / 1000).toFixed(1)} s`,
    `${(i.windowMs / 1000).toFixed(1)} s`,
    `${fmtMs(i.cpuMs)} (${((i.cpuMs / i.windowMs) * 100).toFixed(2)}% of a CPU)`,
    i.childCpu,
    fmtMs(i.reapedMs),
    fmtMiB(i.rssKiB),
    i.childRss,
    String(i.events),
  ]);
  const odd = [...odd1.map((l) => `example profile: ${l}`), ...odd2.map((l) => `10k profile: ${l}`), ...odd3.map((l) => `TCP+UDP profile: ${l}`)];
  return [
    '## A. Watcher: event-to-converged latency, idle cost (issue 3)',
    '',
    `Sandbox \`test/sandbox/topology.sh up ${PREFIX} ${IFACE}\` (wireguard-go), profile \`profiles/tcp-internet.toml\` with \`interface = "${IFACE}"\`, ` +
      `daemon \`ip netns exec ${NS} node dist/src/cli/main.cjs --config DIR watch --resync 0 --log-level warn\`. ` +
      'Latency = kernel event of the disturbance -> kernel event of the repair, both timestamped by the bench\'s own `ip -ts -o monitor` in the namespace ' +
      '(independent of the daemon\'s logs). p99 is nearest-rank (with 100 samples: the 2nd largest). Disturbances are paced to stay under the daemon\'s ' +
      'repair rate limit (8 repairs per 10 s; bridge changes are not repairs) and start only once the daemon\'s CPU time has stopped growing (its previous run is over). ' +
      'Each bridge rep creates a bridge on a new public /24 and deletes it again once its throw is in.',
    '',
    table(['disturbance', 'profile', 'reps', 'p50', 'p99', 'max', 'goal (issue 3; 10k: issue 14)'], rows),
    '',
    `After the cases: example profile ${synced1}, daemon ${alive1 ? 'alive' : '**dead**'}, ${backoff1} rate-limit warnings; ` +
      `10k profile ${synced2}, daemon ${alive2 ? 'alive' : '**dead**'}, ${backoff2} rate-limit warnings.`,
    ...(odd.length ? ['', 'Daemon errors and warnings during the run:', '', ...odd.map((l) => `- ${l}`)] : ['No other daemon errors or warnings.']),
    '',
    `Idle cost, in a window starting ${p.settleMs / 1000} s after the daemon was started (a fresh node process spends ~90 ms of CPU on compilation and garbage collection in its first ~15 s, once); nothing happening; CPU = utime+stime from /proc/PID/stat at 100 Hz, so one tick is 10 ms; ` +
      '"exited children" = cutime+cstime, short-lived programs the daemon ran and reaped; RSS = VmRSS):',
    '',
    table(['profile', 'installed', 'start -> in sync (polled)', 'window', 'daemon CPU', 'live child CPU', 'exited children CPU', 'daemon RSS', 'child RSS', 'kernel events in window'], idleRows),
  ].join('\n');
}
