/**
 * Namespaces, processes and cleanup for the benchmarks. Everything the bench changes lives
 * in network namespaces it creates (names start with `wgbn`); the root namespace is never
 * touched. Every process it starts is recorded by PID and start time and ended by PID only.
 * Every namespace, process and temporary directory is registered with `cleanup`, which
 * run.ts runs on success, on failure and on SIGINT/SIGTERM/SIGHUP.
 */
import { execa, type Options, type ResultPromise } from 'execa';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Repository root (this file runs from dist/bench/). */
export const REPO = fileURLToPath(new URL('../..', import.meta.url));

/**
 * System tools only: under `npm run`, node_modules/.bin comes first in PATH and holds an
 * unrelated `nft` (@vercel/nft).
 */
export const SYS_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: SYS_PATH, LC_ALL: 'C', ...extra };
}

/** Progress goes to stderr: stdout carries only the report. */
export function log(text: string): void {
  process.stderr.write(`bench: ${text}\n`);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// --- cleanup -------------------------------------------------------------------------------

class Cleanup {
  private steps: { label: string; fn: () => Promise<void> | void }[] = [];
  aborted = false;
  private running?: Promise<void>;

  /** Register an undo step; steps run last-registered first. Returns a handle to run it early. */
  add(label: string, fn: () => Promise<void> | void): () => Promise<void> {
    const step = { label, fn };
    this.steps.push(step);
    return async () => {
      const i = this.steps.indexOf(step);
      if (i < 0) return;
      this.steps.splice(i, 1);
      await runStep(step);
    };
  }

  /** A scope: `unwind(mark())` later undoes only what was registered after this point. */
  mark(): number {
    return this.steps.length;
  }

  async unwind(mark: number): Promise<void> {
    while (this.steps.length > mark) await runStep(this.steps.pop()!);
  }

  /** Run every registered step once (idempotent, concurrent callers share the run). */
  run(): Promise<void> {
    this.aborted = true;
    this.running ??= (async () => {
      while (this.steps.length) await runStep(this.steps.pop()!);
    })();
    return this.running;
  }
}

async function runStep(s: { label: string; fn: () => Promise<void> | void }): Promise<void> {
  try {
    await s.fn();
  } catch (e) {
    log(`cleanup: ${s.label}: ${(e as Error).message.split('\n')[0]}`);
  }
}

export const cleanup = new Cleanup();

function checkAborted(): void {
  if (cleanup.aborted) throw new Error('aborted');
}

// --- running programs ----------------------------------------------------------------------

/** Run a system program (clean PATH, C locale); rejects on a non-zero exit unless reject: false. */
export function run(file: string, args: string[], opts: Options = {}) {
  checkAborted();
  return execa(file, args, { env: childEnv(), ...opts });
}

/** `ip netns exec NS FILE ARGS` (the program itself runs inside the namespace). */
export function inNs(ns: string, file: string, args: string[], opts: Options = {}) {
  return run('ip', ['netns', 'exec', ns, file, ...args], opts);
}

/** `ip -n NS -batch -` with the given lines. */
export async function ipBatch(ns: string, lines: string[]): Promise<void> {
  await run('ip', ['-n', ns, '-batch', '-'], { input: lines.join('\n') + '\n' });
}

/** `ip -n NS ARGS...`, stdout. */
export async function ip(ns: string, ...args: string[]): Promise<string> {
  return String((await run('ip', ['-n', ns, ...args])).stdout);
}

// --- processes -----------------------------------------------------------------------------

/** Field 22 of /proc/PID/stat (start time in clock ticks), or undefined if gone or a zombie. */
export function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z') return undefined;
    return f[19];
  } catch {
    return undefined;
  }
}

/** SIGTERM the process if it is still the one we started, SIGKILL after `graceMs`. */
export async function endProcess(pid: number, start: string | undefined, graceMs = 2000): Promise<void> {
  if (!start || startTime(pid) !== start) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (startTime(pid) !== start) return;
    await sleep(20);
  }
  if (startTime(pid) === start) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
  }
}

export interface Tracked {
  proc: ResultPromise;
  pid: number;
  start: string | undefined;
  /** End it now (SIGTERM, then SIGKILL) and forget it. */
  stop(): Promise<void>;
}

/** Start a long-running program, recorded for cleanup by PID and start time. */
export function spawnTracked(label: string, file: string, args: string[], opts: Options = {}): Tracked {
  checkAborted();
  const proc = execa(file, args, { env: childEnv(), reject: false, buffer: false, stdin: 'ignore', ...opts });
  const pid = proc.pid;
  if (pid === undefined) throw new Error(`${label}: could not start ${file}`);
  const start = startTime(pid);
  const undo = cleanup.add(`stop ${label} (pid ${pid})`, async () => {
    await endProcess(pid, start);
    await proc.catch(() => undefined);
  });
  return { proc, pid, start, stop: undo };
}

// --- one bench at a time -------------------------------------------------------------------

const LOCK = '/run/wgsplit-bench.lock';

/**
 * The namespace names are fixed, and a new run clears a previous run's leftovers: two runs
 * at once would tear down each other's namespaces. A lock file holds the owner's PID; a
 * lock whose owner is gone is taken over.
 */
export function lockBench(): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(LOCK, `${process.pid}\n${startTime(process.pid)}\n`, { flag: 'wx' });
      cleanup.add('release the bench lock', () => rmSync(LOCK, { force: true }));
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const [pid, start] = readFileSync(LOCK, 'utf8').split('\n');
    if (startTime(Number(pid)) === start) throw new Error(`another bench run (pid ${pid}) is running; wait for it (lock ${LOCK})`);
    rmSync(LOCK, { force: true });
  }
  throw new Error(`cannot take ${LOCK}`);
}

// --- namespaces ----------------------------------------------------------------------------

export function nsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

/** End every process inside OUR namespace NAME (by PID), then delete the namespace. */
export async function deleteNetns(name: string): Promise<void> {
  if (!nsExists(name)) return;
  const pids = String((await execa('ip', ['netns', 'pids', name], { env: childEnv(), reject: false })).stdout)
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
  await Promise.all(pids.map((pid) => endProcess(pid, startTime(pid))));
  await execa('ip', ['netns', 'del', name], { env: childEnv(), reject: false });
}

/**
 * Create namespace NAME (a leftover of an interrupted bench run is removed first), loopback
 * up, registered for deletion.
 */
export async function createNetns(name: string): Promise<void> {
  if (!/^wgbn/.test(name)) throw new Error(`bench namespaces start with wgbn: ${name}`);
  await deleteNetns(name);
  checkAborted();
  await run('ip', ['netns', 'add', name]);
  cleanup.add(`delete netns ${name}`, () => deleteNetns(name));
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
}

/** test/sandbox/topology.sh up PREFIX IFACE (its own leftovers are torn down first). */
export async function topologyUp(prefix: string, iface: string): Promise<void> {
  checkAborted();
  const script = `${REPO}/test/sandbox/topology.sh`;
  cleanup.add(`topology down ${prefix}`, async () => {
    await execa('bash', [script, 'down', prefix], { env: childEnv(), reject: false });
  });
  await run('bash', [script, 'up', prefix, iface]);
}

export function rmDir(path: string): void {
  rmSync(path, { recursive: true, force: true });
}
