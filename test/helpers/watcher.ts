/**
 * `wgsplit watch` as a child process inside a sandbox namespace, for the watcher's
 * end-to-end tests (test/e2e/watch-*.test.ts). Starts the daemon with JSON logs at debug
 * level, collects its log lines, and waits for real state (a probe's answer, `diff`'s exit
 * code, a log line) by polling: never a fixed sleep as the assertion.
 *
 * The daemon shares the runner's WGSPLIT_STATE_DIR, so `wgsplit up/down/diff` run by the
 * test and the daemon see the same ownership record and lock. Processes are ended by PID
 * only (the daemon, and the `ip monitor` child it runs, which a SIGKILLed daemon leaves
 * behind until the next kernel event). Needs root.
 *
 * WGSPLIT_E2E_TIMING=1 makes assertConverged log how long each convergence check took.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { ExecutionContext } from 'ava';
import { ADDR, PORT, SANDBOX_DIR, type Sandbox } from './sandbox.js';
import { CLI, type WgsplitRunner } from './wgsplit.js';

export interface LogLine {
  time: string;
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  why?: string;
  changes?: string;
  [k: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface WatcherProc {
  /** The daemon's PID (`ip netns exec` and `env` exec, so it is node's own). */
  pid: number;
  /** Every JSON log line so far, in order. */
  lines: LogLine[];
  /** Lines of stdout/stderr that were not JSON (there should be none). */
  other: string[];
  /** Resolves when the daemon has exited. */
  exited: Promise<Exit>;
  /** The exit, once it happened. */
  exit?: Exit;
  alive(): boolean;
  /** A position in the log: `since(mark)` and `waitForLog(..., mark)` look only after it. */
  mark(): number;
  since(mark: number): LogLine[];
  /** Waits for a log line (after `from`) matching pred; rejects with the log tail on timeout. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number, from?: number, what?: string): Promise<LogLine>;
  signal(sig: NodeJS.Signals): void;
  /** Sends sig (default SIGTERM) and waits for the exit; SIGKILLs it after timeoutMs. */
  stop(sig?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
  /** SIGKILL, then end the daemon's children (its `ip monitor`) by PID. Idempotent. */
  kill(): Promise<Exit>;
  /** The last n log lines as text, for assertion messages. */
  tail(n?: number): string;
  /**
   * A barrier: adds and deletes a sentinel rule (priority 31000-31099, lookup main: no
   * effect) and waits until the daemon has logged the deletion's event and a reconcile run
   * after it. Kernel events arrive in order, so every change made before the call has been
   * seen and acted on. Returns that run's log line.
   */
  sync(timeoutMs?: number): Promise<LogLine>;
}

export interface StartOptions {
  /** More arguments after `watch` (e.g. `--cleanup-on-exit`). */
  args?: string[];
  /** How long to wait for the first reconcile (default 10 s). */
  timeoutMs?: number;
  /** Enter the namespace with `nsenter --net` (keeps /sys/fs/cgroup; see ExecOptions.nsenter). */
  nsenter?: boolean;
  /** Extra environment variables for the daemon. */
  env?: Record<string, string>;
}

/** PID -> start time (field 22 of /proc/PID/stat), or undefined if gone or a zombie. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return f[0] === 'Z' ? undefined : f[19];
  } catch {
    return undefined;
  }
}

/** The daemon's children, each with its start time (so a recycled PID is never hit). */
function children(pid: number): { pid: number; start: string }[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number)
      .map((p) => ({ pid: p, start: startTime(p) ?? '' }))
      .filter((c) => c.start);
  } catch {
    return [];
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls fn until pred holds for its value; returns that value. On timeout returns the
 * last value (the caller asserts on it, so a failure shows what was seen instead).
 */
export async function waitFor<T>(fn: () => Promise<T> | T, pred: (v: T) => boolean, timeoutMs = 5000, intervalMs = 25): Promise<{ ok: boolean; value: T; ms: number }> {
  const start = performance.now();
  for (;;) {
    const value = await fn();
    const ms = performance.now() - start;
    if (pred(value)) return { ok: true, value, ms };
    if (ms > timeoutMs) return { ok: false, value, ms };
    await sleep(intervalMs);
  }
}

/** Is a "converged" line one that wrote something? (The daemon logs "in sync" otherwise.) */
export const isConverged = (l: LogLine) => l.msg === 'converged';
/** Any completed reconcile run. */
export const isRun = (l: LogLine) => l.msg === 'converged' || l.msg === 'in sync';

export async function startWatcher(sb: Sandbox, run: WgsplitRunner, configDir: string, opts: StartOptions = {}): Promise<WatcherProc> {
  const enter = opts.nsenter ? ['nsenter', `--net=/run/netns/${sb.ns.host}`, '--'] : ['ip', 'netns', 'exec', sb.ns.host];
  const argv = [
    ...enter.slice(1),
    'env', `WGSPLIT_STATE_DIR=${run.stateDir}`, ...Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`),
    process.execPath, CLI, '--config', configDir,
    'watch', '--log-json', '--log-level', 'debug', '--resync', '0', ...(opts.args ?? []),
  ];
  const child: ChildProcess = spawn(enter[0], argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('could not start wgsplit watch');
  const pid = child.pid;
  const lines: LogLine[] = [];
  const other: string[] = [];
  const onLine = (l: string) => {
    if (!l.trim()) return;
    try {
      const j = JSON.parse(l);
      if (j && typeof j === 'object' && typeof j.msg === 'string') lines.push(j as LogLine);
      else other.push(l);
    } catch {
      other.push(l);
    }
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);

  let lastChildren: { pid: number; start: string }[] = [];
  let sentinel = 0;
  const w: WatcherProc = {
    pid,
    lines,
    other,
    exited: new Promise<Exit>((resolve) =>
      child.on('exit', (code, signal) => {
        w.exit = { code, signal };
        resolve(w.exit);
      }),
    ),
    alive: () => w.exit === undefined && startTime(pid) !== undefined,
    mark: () => lines.length,
    since: (m) => lines.slice(m),
    async waitForLog(pred, timeoutMs = 5000, from = 0, what = 'a log line') {
      const r = await waitFor(() => lines.slice(from).find(pred), (l) => l !== undefined || w.exit !== undefined, timeoutMs);
      if (r.value) return r.value;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${w.exit ? ` (daemon exited: ${JSON.stringify(w.exit)})` : ''}; log tail:\n${w.tail(15)}`);
    },
    signal(sig) {
      if (w.alive()) process.kill(pid, sig);
    },
    async stop(sig = 'SIGTERM', timeoutMs = 5000) {
      if (w.exit) return w.exit;
      lastChildren = children(pid);
      w.signal(sig);
      const r = await Promise.race([w.exited, sleep(timeoutMs).then(() => undefined)]);
      if (r) return r;
      return w.kill();
    },
    async kill() {
      if (!w.exit) {
        lastChildren = [...lastChildren, ...children(pid)];
        if (w.alive()) process.kill(pid, 'SIGKILL');
        await w.exited;
      }
      // A SIGKILLed daemon cannot stop its `ip monitor`; it would exit on its next event
      // (SIGPIPE), but a test must leave nothing of its own running.
      for (const c of lastChildren) if (startTime(c.pid) === c.start) process.kill(c.pid, 'SIGTERM');
      lastChildren = [];
      return w.exit!;
    },
    async sync(timeoutMs = 5000) {
      const pref = 31000 + (sentinel++ % 100);
      const from = lines.length;
      for (const op of ['add', 'del']) {
        const r = await sb.exec('host', ['ip', 'rule', op, 'pref', String(pref), 'lookup', 'main']);
        if (r.exitCode !== 0) throw new Error(`sentinel rule ${op}: ${r.stderr}`);
      }
      const ev = await w.waitForLog((l) => l.msg === 'event' && String(l.event).startsWith(`rule deleted: ${pref}:`), timeoutMs, from, `the sentinel rule ${pref}'s event`);
      return w.waitForLog(isRun, timeoutMs, lines.indexOf(ev) + 1, 'a run after the sentinel');
    },
    tail(n = 20) {
      return [...lines.slice(-n).map((l) => JSON.stringify(l)), ...other.slice(-5)].join('\n');
    },
  };
  // Ready: it logged "watching" and finished the first reconcile.
  const timeoutMs = opts.timeoutMs ?? 10_000;
  try {
    await w.waitForLog((l) => l.msg === 'watching', timeoutMs, 0, '"watching"');
    await w.waitForLog((l) => isRun(l) && /\bstart\b/.test(l.why ?? ''), timeoutMs, 0, 'the first reconcile');
  } catch (e) {
    await w.kill();
    throw e;
  }
  return w;
}

// --- what every scenario checks afterwards ------------------------------------------------

export interface Paths {
  tcp4: string;
  tcp6: string;
  udp4: string;
  udp6: string;
  lan: string;
}

/** What a converged host with the example profile (TCP to the internet through wg) sees. */
export const TUNNEL_PATHS: Paths = {
  tcp4: ADDR.vpnPublic,
  tcp6: ADDR.vpnPublic6,
  udp4: ADDR.routerWan,
  udp6: ADDR.hostLan6,
  lan: ADDR.hostLan,
};

const PROBE_MANY = path.join(SANDBOX_DIR, 'probe-many.mjs');

/**
 * Real connections from the host: public TCP (v4, v6), public UDP (v4, v6), LAN TCP, all
 * at once from one process (test/sandbox/probe-many.mjs).
 */
export async function probePaths(sb: Sandbox, timeoutMs = 1000): Promise<Paths> {
  const specs = [
    `tcp:${ADDR.internet}:${PORT.https}`,
    `tcp:[${ADDR.internet6}]:${PORT.https}`,
    `udp:${ADDR.internet}:${PORT.dns}`,
    `udp:[${ADDR.internet6}]:${PORT.dns}`,
    `tcp:${ADDR.lan}:${PORT.http}`,
  ];
  const r = await sb.exec('host', [process.execPath, PROBE_MANY, '--timeout', String(timeoutMs), ...specs], { timeoutMs: timeoutMs + 10_000 });
  const out = r.stdout.split('\n');
  const at = (i: number) => out[i]?.trim() || `ERR EPROBE exit ${r.exitCode}: ${r.stderr.trim()}`;
  return { tcp4: at(0), tcp6: at(1), udp4: at(2), udp6: at(3), lan: at(4) };
}

const samePaths = (a: Paths, b: Paths) => (Object.keys(b) as (keyof Paths)[]).every((k) => a[k] === b[k]);

/**
 * The end state every scenario must reach: `wgsplit diff` exits 0, public TCP goes through
 * the tunnel in both families, UDP and the LAN go direct (or `expect`), and the daemon is
 * still alive. Polls (diff and the connections together, round after round) up to
 * timeoutMs for the daemon to get there, then asserts on the last round.
 */
export async function assertConverged(
  t: ExecutionContext,
  ctx: { sb: Sandbox; run: WgsplitRunner; dir: string; w: WatcherProc },
  what: string,
  opts: { expect?: Paths; timeoutMs?: number } = {},
): Promise<void> {
  const expect = opts.expect ?? TUNNEL_PATHS;
  const timeoutMs = opts.timeoutMs ?? 5000;
  // diff and the connections in parallel, round after round, until both are right.
  let rounds = 0;
  const r = await waitFor(
    async () => {
      rounds++;
      const [diff, paths] = await Promise.all([ctx.run(ctx.dir, ['diff']), probePaths(ctx.sb)]);
      return { diff, paths };
    },
    (v) => v.diff.exitCode === 0 && samePaths(v.paths, expect),
    timeoutMs,
    50,
  );
  t.is(r.value.diff.exitCode, 0, `${what}: wgsplit diff\n${r.value.diff.stdout}${r.value.diff.stderr}\nlog:\n${ctx.w.tail()}`);
  t.deepEqual(r.value.paths, expect, `${what}: paths\nlog:\n${ctx.w.tail()}`);
  t.true(ctx.w.alive(), `${what}: the daemon died: ${JSON.stringify(ctx.w.exit)}\n${ctx.w.tail()}`);
  if (process.env.WGSPLIT_E2E_TIMING) t.log(`${what}: ${r.ms.toFixed(0)} ms, ${rounds} round(s)`);
}

/** A background process of the test's own (a disturbance loop), ended by PID. */
export interface Background {
  pid: number;
  exited: Promise<Exit>;
  /** The exit, once it happened. */
  readonly exit: Exit | undefined;
  output: () => string;
  stop(): Promise<Exit>;
}

export function background(sb: Sandbox, ns: string, argv: string[]): Background {
  const child = spawn('ip', ['netns', 'exec', sb.ns[ns as keyof Sandbox['ns']] ?? ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`could not start ${argv.join(' ')}`);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => child.on('exit', (code, signal) => resolve((exit = { code, signal }))));
  return {
    pid: child.pid,
    exited,
    get exit() {
      return exit;
    },
    output: () => out,
    async stop() {
      if (!exit && startTime(child.pid!) !== undefined) process.kill(child.pid!, 'SIGTERM');
      return exited;
    },
  };
}
